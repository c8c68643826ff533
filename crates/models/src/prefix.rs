//! Prefix-tuning (Li & Liang 2021, "Prefix-Tuning: Optimizing Continuous Prompts for Generation") for
//! GPT-2, as the paper's Table 2 baseline runs it (Li et al. 2022: prefix length 10, MLP mid-dim 512).
//!
//! Every block's attention sees L extra key/value positions in front of the text. They are not free
//! tensors but come from the reparametrisation of Li & Liang (Sec. 4.3):
//! P = control_trans(wte(0 … L−1)), with control_trans = Linear(d, mid) → tanh → Linear(mid, 2·n_layer·d),
//! and P `[L, 2·n_layer·d]` cut into (key, value) per block and per head. Only `wte`, `control_trans.0`
//! and `control_trans.2` train; the language model is frozen.
//!
//! Under DP the prefix is the same for every example, but its gradient is not: each example's loss
//! reaches P through its own attention. The prefix is therefore computed per example — ids `[B, L]` through
//! DP-aware [`Embedding`] and [`Linear`] layers — so that the engine sees one (input, output-gradient) pair
//! per example and its per-example norms are exact. Without a tape (evaluation, generation) it is computed
//! once and broadcast.
//!
//! Positions: the text's positions start at L, as in Hugging Face GPT-2 fed the prefix as
//! `past_key_values` (the reference implementations did this); every query may attend to every prefix
//! position.

use dp_core::engine::{DpLayer, Embedding, Linear, Tape, WeightLayout};
use tch::{Kind, Tensor};

use crate::ModelError;

/// The prefix and its reparametrisation.
#[derive(Debug)]
pub struct Prefix {
    /// Prefix embeddings `prefix.wte` `[L, d]`, N(0, 1) initialised (torch's `nn.Embedding`).
    pub wte: Embedding,
    /// `prefix.control_trans.0`, `[mid, d]`.
    pub control_trans_0: Linear,
    /// `prefix.control_trans.2`, `[2·n_layer·d, mid]`.
    pub control_trans_2: Linear,
    /// L.
    pub length: i64,
    n_layer: i64,
    n_head: i64,
    /// P `[L, 2·n_layer·d]` given directly (an adapter loaded for inference): the reparametrisation is
    /// then not used.
    fixed: Option<Tensor>,
}

/// torch's default `nn.Linear` initialisation: weight and bias uniform in ±1/sqrt(in).
fn torch_linear(name: String, d_in: i64, d_out: i64, like: &Tensor) -> Linear {
    let bound = 1.0 / (d_in as f64).sqrt();
    let uniform = |shape: &[i64]| {
        (Tensor::rand(shape, (Kind::Float, like.device())).to_kind(like.kind()) * (2.0 * bound) - bound)
            .set_requires_grad(true)
    };
    Linear { name, weight: uniform(&[d_out, d_in]), bias: Some(uniform(&[d_out])), layout: WeightLayout::OutIn }
}

impl Prefix {
    /// A prefix of `length` positions with an MLP of width `mid_dim` for a model of `n_layer` blocks,
    /// `n_head` heads and width `n_embd`, on the device and dtype of `like` (initialised from libtorch's
    /// generator: seed it first).
    pub fn new(
        length: i64,
        mid_dim: i64,
        n_layer: i64,
        n_head: i64,
        n_embd: i64,
        like: &Tensor,
    ) -> Result<Self, ModelError> {
        Self::with_width(length, mid_dim, n_layer, n_head, n_embd, n_embd, like)
    }

    /// [`new`](Self::new) for a model whose keys and values are narrower than its hidden states
    /// (grouped-query attention: `kv_heads` heads of total width `kv_width`): the prefix embeddings have
    /// the hidden width `n_embd`, P has `2·n_layer·kv_width` columns.
    pub fn with_width(
        length: i64,
        mid_dim: i64,
        n_layer: i64,
        kv_heads: i64,
        n_embd: i64,
        kv_width: i64,
        like: &Tensor,
    ) -> Result<Self, ModelError> {
        let n_head = kv_heads;
        if length < 1 || mid_dim < 1 {
            return Err(ModelError::Invalid(format!("prefix length {length} and mid_dim {mid_dim} must both be ≥ 1")));
        }
        let wte = Tensor::randn([length, n_embd], (Kind::Float, like.device())).to_kind(like.kind());
        Ok(Self {
            wte: Embedding { name: "prefix.wte".into(), weight: wte.set_requires_grad(true), padding_idx: None },
            control_trans_0: torch_linear("prefix.control_trans.0".into(), n_embd, mid_dim, like),
            control_trans_2: torch_linear("prefix.control_trans.2".into(), mid_dim, 2 * n_layer * kv_width, like),
            length,
            n_layer,
            n_head,
            fixed: None,
        })
    }

    /// Width of the reparametrisation's MLP.
    pub fn mid_dim(&self) -> i64 {
        self.control_trans_0.weight.size()[0]
    }

    /// P `[L, 2·n_layer·d]`, the reparametrisation's output (what an adapter folder stores).
    pub fn embeddings(&self) -> Tensor {
        tch::no_grad(|| self.p(1, &mut Tape::off()).squeeze_dim(0))
    }

    /// Uses `p` `[L, 2·n_layer·d]` as the prefix from now on (inference; the reparametrisation is bypassed).
    pub fn set_embeddings(&mut self, p: Tensor) -> Result<(), ModelError> {
        let want = [self.length, self.control_trans_2.weight.size()[0]];
        if p.size() != want {
            return Err(ModelError::Invalid(format!("prefix embeddings of shape {:?}, expected {want:?}", p.size())));
        }
        self.fixed = Some(p);
        Ok(())
    }

    /// P for `rows` rows `[rows, L, 2·n_layer·d]`, recorded when the tape is on.
    fn p(&self, rows: i64, tape: &mut Tape) -> Tensor {
        if let Some(p) = &self.fixed {
            return p.unsqueeze(0).expand([rows, -1, -1], false);
        }
        let device = self.wte.weight.device();
        let ids = Tensor::arange(self.length, (Kind::Int64, device)).unsqueeze(0).expand([rows, self.length], true);
        let hidden = self.control_trans_0.forward(&self.wte.forward(&ids, tape), tape).tanh();
        self.control_trans_2.forward(&hidden, tape)
    }

    /// The layers, for the engine's ownership check.
    pub fn layers(&self) -> Vec<&dyn DpLayer> {
        vec![&self.wte, &self.control_trans_0, &self.control_trans_2]
    }

    /// Per block, the prefix keys and values `[B, H, L, h]` for a batch of `batch` rows. With the tape on
    /// they are computed per example (recorded); otherwise once and expanded.
    pub fn key_values(&self, batch: i64, tape: &mut Tape) -> Vec<(Tensor, Tensor)> {
        let rows = if tape.is_on() { batch } else { 1 };
        let p = self.p(rows, tape); // [rows, L, 2·n_layer·d]
        let d = p.size()[2] / (2 * self.n_layer);
        // [rows, L, 2·n_layer, H, h] → [2·n_layer, rows, H, L, h]
        let p = p.reshape([rows, self.length, 2 * self.n_layer, self.n_head, d / self.n_head]).permute([2, 0, 3, 1, 4]);
        (0..self.n_layer)
            .map(|i| {
                let (k, v) = (p.get(2 * i), p.get(2 * i + 1));
                if rows == batch {
                    (k, v)
                } else {
                    (k.expand([batch, -1, -1, -1], false), v.expand([batch, -1, -1, -1], false))
                }
            })
            .collect()
    }
}
