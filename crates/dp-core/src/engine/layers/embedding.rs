//! DP-aware embedding (token or position), with an optional padding index whose row gets no gradient
//! (Li et al. 2022, App. "ghost clipping for embeddings").
//!
//! Per example i with ids k_t and output gradients g_t: ∇E_i = Σ_t e_{k_t} g_tᵀ (positions with the
//! padding id excluded), ‖∇E_i‖² = Σ_{t,s} 1[k_t = k_s] (g_t·g_s) (ghost) or instantiated `[V, d]`.

use tch::{Kind, Tensor};

use super::{per_example_sq_sum, DpLayer, Factor, NormMethod};
use crate::engine::tape::{DpRecord, Tape};

/// An embedding table `[V, d]` whose rows the engine can clip per example.
#[derive(Debug)]
pub struct Embedding {
    /// Module path, e.g. `wte`.
    pub name: String,
    /// The table `[V, d]`.
    pub weight: Tensor,
    /// Id whose row receives no gradient (Hugging Face `padding_idx`).
    pub padding_idx: Option<i64>,
}

impl DpLayer for Embedding {
    fn name(&self) -> &str {
        &self.name
    }

    fn factorable(&self) -> bool {
        true
    }

    fn parameters(&self) -> Vec<(String, Tensor)> {
        vec![(format!("{}.weight", self.name), self.weight.shallow_clone())]
    }
}

impl Embedding {
    /// Looks up `ids` `[B, T]` → `[B, T, d]`, recording on the tape when it is on.
    pub fn forward(&self, ids: &Tensor, tape: &mut Tape) -> Tensor {
        let y = Tensor::embedding(&self.weight, ids, self.padding_idx.unwrap_or(-1), false, false);
        if tape.is_on() {
            let b = ids.size()[0];
            let (y, probe) = super::probed(y);
            tape.record(Box::new(EmbeddingRecord {
                name: self.name.clone(),
                ids: ids.reshape([b, -1]),
                output: probe,
                weight: self.weight.shallow_clone(),
                padding_idx: self.padding_idx,
            }));
            return y;
        }
        y
    }
}

struct EmbeddingRecord {
    name: String,
    ids: Tensor, // [B, T]
    output: Tensor,
    weight: Tensor,
    padding_idx: Option<i64>,
}

impl EmbeddingRecord {
    /// Output gradients `[B, T, d]` with padding positions zeroed.
    fn masked(&self, grad_output: &Tensor) -> Tensor {
        let size = grad_output.size();
        let g = grad_output.reshape([size[0], -1, size[size.len() - 1]]);
        match self.padding_idx {
            Some(pad) => g * self.ids.ne(pad).unsqueeze(-1).to_kind(grad_output.kind()),
            None => g,
        }
    }
}

impl DpRecord for EmbeddingRecord {
    fn layer(&self) -> &str {
        &self.name
    }

    fn parameters(&self) -> Vec<(String, Tensor)> {
        vec![(format!("{}.weight", self.name), self.weight.shallow_clone())]
    }

    fn output(&self) -> &Tensor {
        &self.output
    }

    fn sq_norms(&self, grad_output: &Tensor, method: NormMethod) -> Vec<Tensor> {
        let g = self.masked(grad_output);
        let (t, v, d) = (g.size()[1], self.weight.size()[0], self.weight.size()[1]);
        if method.use_ghost(t, v, d) {
            let same = self.ids.unsqueeze(2).eq_tensor(&self.ids.unsqueeze(1)).to_kind(g.kind()); // [B, T, T]
            let gg = g.bmm(&g.transpose(1, 2));
            vec![(same * gg).sum_dim_intlist([1i64, 2].as_slice(), false, None::<Kind>)]
        } else {
            vec![per_example_sq_sum(&self.per_example_grads(grad_output)[0])]
        }
    }

    fn weighted_grads(&self, grad_output: &Tensor, c: &Tensor) -> Vec<Tensor> {
        let g = self.masked(grad_output) * c.reshape([-1, 1, 1]);
        let d = g.size()[2];
        // Into the zeros in place: no second table of the vocabulary's size (154 MB for GPT-2's wte).
        let mut grad = self.weight.zeros_like();
        let _ = grad.index_add_(0, &self.ids.reshape([-1]), &g.reshape([-1, d]));
        vec![grad]
    }

    fn factorable(&self, _param: usize) -> bool {
        true
    }

    fn factors(&self, grad_output: &Tensor, _param: usize) -> Option<(Factor, Factor)> {
        Some((Factor::OneHot(self.ids.shallow_clone()), Factor::Dense(self.masked(grad_output))))
    }

    fn per_example_grads(&self, grad_output: &Tensor) -> Vec<Tensor> {
        let g = self.masked(grad_output);
        let (b, t, d) = (g.size()[0], g.size()[1], g.size()[2]);
        let v = self.weight.size()[0];
        // Row index b·V + k_{b,t} in a [B·V, d] table.
        let offsets = Tensor::arange(b, (Kind::Int64, g.device())).unsqueeze(1) * v;
        let rows = (&self.ids + offsets).reshape([-1]);
        let flat = Tensor::zeros([b * v, d], (g.kind(), g.device())).index_add(0, &rows, &g.reshape([b * t, d]));
        vec![flat.reshape([b, v, d])]
    }
}
