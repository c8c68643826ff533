//! `method:` — which parameters train (Li et al. 2022, Table 2). The YAML keeps the keys the user wrote
//! (so that `config.yaml` and the config hash are what they were); [`MethodSection::method`] gives the
//! typed [`Method`] with each method's own keys and their defaults, and keys that belong to another
//! method are refused when the file is read, so that a sweep cannot silently ignore them.

use serde::{Deserialize, Serialize};

use super::choices::MethodName;

/// `method:` as written.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MethodSection {
    /// `full` (all parameters), `topk` (only the top `top_k` blocks and the final LayerNorm / the head),
    /// `retrain` (the same architecture from a random initialisation, all parameters), `lora` (rank-`rank`
    /// updates of GPT-2's `c_attn` or the encoders' query and value, everything else frozen), `prefix`
    /// (prefix-tuning: `prefix_length` positions through an MLP of width `mid_dim`; GPT-2) or `rgp`
    /// (reparametrized gradient perturbation of rank `rank`; GPT-2).
    #[serde(default = "full")]
    pub name: MethodName,
    /// Blocks that train with `topk` (default 2, the paper's); 0 on an encoder with a classification head
    /// trains the head alone (linear probing). The model checks the range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<usize>,
    /// Rank: LoRA (default 4) or RGP (default 1), the paper's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<i64>,
    /// LoRA α; the update is scaled by α/r (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// Prefix length L (default 10, the paper's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_length: Option<i64>,
    /// Width of the prefix's MLP reparametrisation (default 512, the paper's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mid_dim: Option<i64>,
    /// LoRA: the projections to adapt, by their short Hugging Face names (Llama family: any of q_proj,
    /// k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj; default the paper's q_proj and v_proj;
    /// GPT-2: c_attn).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_modules: Vec<String>,
}

fn full() -> MethodName {
    MethodName::Full
}

impl Default for MethodSection {
    fn default() -> Self {
        Self {
            name: MethodName::Full,
            top_k: None,
            rank: None,
            alpha: None,
            prefix_length: None,
            mid_dim: None,
            target_modules: Vec::new(),
        }
    }
}

/// A method with its own settings, defaults filled in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    /// Every parameter trains.
    Full,
    /// Only the top `top_k` blocks (and the final LayerNorm / the head).
    Topk {
        /// Blocks that train.
        top_k: usize,
    },
    /// The same architecture from a random initialisation.
    Retrain,
    /// LoRA: rank-`rank` updates scaled by `alpha / rank`.
    Lora {
        /// r.
        rank: i64,
        /// α.
        alpha: f64,
    },
    /// Prefix-tuning.
    Prefix {
        /// Positions of the prefix.
        prefix_length: i64,
        /// Width of its MLP reparametrisation.
        mid_dim: i64,
    },
    /// Reparametrized gradient perturbation.
    Rgp {
        /// Rank of the gradient carriers.
        rank: i64,
    },
}

impl MethodSection {
    /// The typed method. Call after [`check`](Self::check) (the config loader does).
    pub fn method(&self) -> Method {
        match self.name {
            MethodName::Full => Method::Full,
            MethodName::Topk => Method::Topk { top_k: self.top_k.unwrap_or(2) },
            MethodName::Retrain => Method::Retrain,
            MethodName::Lora => Method::Lora { rank: self.rank.unwrap_or(4), alpha: self.alpha.unwrap_or(8.0) },
            MethodName::Prefix => {
                Method::Prefix { prefix_length: self.prefix_length.unwrap_or(10), mid_dim: self.mid_dim.unwrap_or(512) }
            }
            MethodName::Rgp => Method::Rgp { rank: self.rank.unwrap_or(1) },
        }
    }

    /// Refuses keys of other methods and out-of-range values, naming the key.
    pub(super) fn check(&self) -> Result<(), String> {
        use MethodName::{Lora, Prefix, Rgp, Topk};
        let given = [
            ("top_k", self.top_k.is_some(), &[Topk][..]),
            ("rank", self.rank.is_some(), &[Lora, Rgp][..]),
            ("alpha", self.alpha.is_some(), &[Lora][..]),
            ("prefix_length", self.prefix_length.is_some(), &[Prefix][..]),
            ("mid_dim", self.mid_dim.is_some(), &[Prefix][..]),
            ("target_modules", !self.target_modules.is_empty(), &[Lora][..]),
        ];
        for (key, present, methods) in given {
            if present && !methods.contains(&self.name) {
                let owners: Vec<&str> = methods.iter().map(|m| m.name()).collect();
                return Err(format!(
                    "method.{key} applies to method.name = {} only, not {}; remove it",
                    owners.join(" or "),
                    self.name
                ));
            }
        }
        match self.method() {
            Method::Lora { rank, .. } | Method::Rgp { rank } if rank < 1 => {
                Err(format!("method.rank = {rank} must be at least 1"))
            }
            Method::Lora { alpha, .. } if !(alpha.is_finite() && alpha > 0.0) => {
                Err(format!("method.alpha = {alpha} must be > 0"))
            }
            Method::Prefix { prefix_length, mid_dim } if prefix_length < 1 || mid_dim < 1 => {
                Err("method.prefix_length and method.mid_dim must be at least 1".into())
            }
            _ => Ok(()),
        }
    }
}
