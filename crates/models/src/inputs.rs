//! The inputs of one forward pass, named as in Hugging Face (`input_ids`, `attention_mask`,
//! `position_ids`, `token_type_ids`), and their validation: ids out of the vocabulary or masks of the wrong
//! shape are errors here, not crashes inside libtorch.

use tch::{Kind, Tensor};

use crate::ModelError;

/// Inputs of one forward pass; build with [`Inputs::ids`] and the `with_*` methods.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// Token ids `[B, T]`.
    pub input_ids: &'a Tensor,
    /// 1 = token, 0 = padding; `[B, S + T]` with S cached positions (GPT-2) or `[B, T]`.
    pub attention_mask: Option<&'a Tensor>,
    /// Position ids `[B, T]` (default: the model's own numbering).
    pub position_ids: Option<&'a Tensor>,
    /// Segment ids `[B, T]` (BERT; default zeros).
    pub token_type_ids: Option<&'a Tensor>,
}

impl<'a> Inputs<'a> {
    /// Token ids alone.
    pub fn ids(input_ids: &'a Tensor) -> Self {
        Self { input_ids, attention_mask: None, position_ids: None, token_type_ids: None }
    }

    /// With an attention mask.
    pub fn with_mask(self, attention_mask: &'a Tensor) -> Self {
        Self { attention_mask: Some(attention_mask), ..self }
    }

    /// With position ids.
    pub fn with_positions(self, position_ids: &'a Tensor) -> Self {
        Self { position_ids: Some(position_ids), ..self }
    }

    /// With token-type (segment) ids.
    pub fn with_token_types(self, token_type_ids: &'a Tensor) -> Self {
        Self { token_type_ids: Some(token_type_ids), ..self }
    }

    /// (B, T) after checking every tensor: ids in [0, vocab), mask `[B, past + T]`, positions and token
    /// types `[B, T]` with values below `positions` / `token_types` rows.
    pub fn check(
        &self,
        vocab: i64,
        past: i64,
        positions: i64,
        token_types: Option<i64>,
    ) -> Result<(i64, i64), ModelError> {
        let (b, t) = self.input_ids.size2().map_err(|_| {
            ModelError::Invalid(format!("input_ids must be [batch, length], got {:?}", self.input_ids.size()))
        })?;
        if t == 0 || b == 0 {
            return Err(ModelError::Invalid("input_ids is empty".into()));
        }
        in_range("input_ids", self.input_ids, vocab, "the vocabulary size")?;
        if let Some(m) = self.attention_mask {
            if m.size() != [b, past + t] {
                return Err(ModelError::Invalid(format!(
                    "attention_mask has shape {:?}, expected [{b}, {}] (batch, cached + new positions)",
                    m.size(),
                    past + t
                )));
            }
        }
        if let Some(p) = self.position_ids {
            if p.size() != [b, t] {
                return Err(ModelError::Invalid(format!(
                    "position_ids has shape {:?}, expected [{b}, {t}] (one row per example)",
                    p.size()
                )));
            }
            in_range("position_ids", p, positions, "the number of positions")?;
        }
        match (self.token_type_ids, token_types) {
            (Some(_), None) => return Err(ModelError::Invalid("this model takes no token_type_ids".into())),
            (Some(tt), Some(n)) => {
                if tt.size() != [b, t] {
                    return Err(ModelError::Invalid(format!(
                        "token_type_ids has shape {:?}, expected [{b}, {t}]",
                        tt.size()
                    )));
                }
                in_range("token_type_ids", tt, n, "type_vocab_size")?;
            }
            _ => {}
        }
        Ok((b, t))
    }
}

fn in_range(name: &str, x: &Tensor, end: i64, what: &str) -> Result<(), ModelError> {
    if !matches!(x.kind(), Kind::Int64 | Kind::Int) {
        return Err(ModelError::Invalid(format!("{name} must hold integers, not {:?}", x.kind())));
    }
    let (lo, hi) = (i64::try_from(x.min())?, i64::try_from(x.max())?);
    if lo < 0 || hi >= end {
        return Err(ModelError::Invalid(format!(
            "{name} holds {} outside [0, {end}) ({what})",
            if lo < 0 { lo } else { hi }
        )));
    }
    Ok(())
}
