//! DP-aware RMSNorm (Zhang & Sennrich 2019), the normalisation of Llama, Qwen2 and Mistral:
//! y = γ ⊙ x̂ with x̂ = x / sqrt(mean(x²) + eps) over the last dim, computed in at least f32 as Hugging Face's
//! `LlamaRMSNorm` does (half-precision inputs upcast, x̂ cast back to the input's dtype before the scale).
//! Unlike transformers, an f64 input stays f64 (transformers casts it down to f32): the engine's f64
//! oracle tests need every operation in f64, and the model tests compare against transformers with that
//! cast lifted (`python/oracles/tiny_llama.py`).
//!
//! Like LayerNorm's, its per-example gradient is small (`[d]`) and always instantiated:
//! ∇γ_i = Σ_t x̂_t ⊙ g_t (there is no β).

use tch::{Kind, Tensor};

use super::{as_btn, per_example_sq_sum, DpLayer, NormMethod};
use crate::engine::tape::{DpRecord, Tape};

/// An RMSNorm whose γ the engine can clip per example.
#[derive(Debug)]
pub struct RmsNorm {
    /// Module path, e.g. `model.layers.0.input_layernorm`.
    pub name: String,
    /// γ `[d]`.
    pub weight: Tensor,
    /// ε inside the square root (Hugging Face `rms_norm_eps`).
    pub eps: f64,
}

impl DpLayer for RmsNorm {
    fn name(&self) -> &str {
        &self.name
    }

    fn parameters(&self) -> Vec<(String, Tensor)> {
        vec![(format!("{}.weight", self.name), self.weight.shallow_clone())]
    }
}

impl RmsNorm {
    /// x̂ = x / sqrt(mean(x²) + eps), in the input's dtype (computed in f32 for half-precision inputs).
    pub fn normalize(&self, x: &Tensor) -> Tensor {
        let kind = x.kind();
        let wide = if kind == Kind::Double { Kind::Double } else { Kind::Float };
        let h = x.to_kind(wide);
        let variance = h.square().mean_dim([-1i64].as_slice(), true, None::<Kind>);
        (h * (variance + self.eps).rsqrt()).to_kind(kind)
    }

    /// Normalises the last dim of `x`, recording x̂ on the tape when it is on.
    pub fn forward(&self, x: &Tensor, tape: &mut Tape) -> Tensor {
        let normalized = self.normalize(x);
        let y = &self.weight * &normalized;
        if tape.is_on() {
            let (y, probe) = super::probed(y);
            tape.record(Box::new(RmsNormRecord {
                name: self.name.clone(),
                normalized: as_btn(&normalized.detach()).to_kind(super::accumulation_kind(normalized.kind())),
                output: probe,
                weight: self.weight.shallow_clone(),
            }));
            return y;
        }
        y
    }
}

struct RmsNormRecord {
    name: String,
    normalized: Tensor, // [B, T, d]
    output: Tensor,
    weight: Tensor,
}

impl DpRecord for RmsNormRecord {
    fn layer(&self) -> &str {
        &self.name
    }

    fn parameters(&self) -> Vec<(String, Tensor)> {
        vec![(format!("{}.weight", self.name), self.weight.shallow_clone())]
    }

    fn output(&self) -> &Tensor {
        &self.output
    }

    fn sq_norms(&self, grad_output: &Tensor, _method: NormMethod) -> Vec<Tensor> {
        self.per_example_grads(grad_output).iter().map(per_example_sq_sum).collect()
    }

    fn weighted_grads(&self, grad_output: &Tensor, c: &Tensor) -> Vec<Tensor> {
        let g = as_btn(grad_output);
        vec![Tensor::einsum("btd,btd,b->d", &[&self.normalized, &g, c], None::<i64>)]
    }

    fn per_example_grads(&self, grad_output: &Tensor) -> Vec<Tensor> {
        let g = as_btn(grad_output);
        vec![(&self.normalized * &g).sum_dim_intlist([1i64].as_slice(), false, None::<Kind>)]
    }
}
