//! DP-aware LayerNorm, y = x̂ ⊙ γ + β with x̂ = (x − mean)/sqrt(var + eps) over the last dim.
//!
//! Per-example gradients are small (`[d]`), so they are always instantiated (Li et al. 2022, App.):
//! ∇γ_i = Σ_t x̂_t ⊙ g_t, ∇β_i = Σ_t g_t.

use tch::{Kind, Tensor};

use super::{as_btn, per_example_sq_sum, DpLayer, NormMethod};
use crate::engine::tape::{DpRecord, Tape};

/// A LayerNorm whose γ and β the engine can clip per example.
#[derive(Debug)]
pub struct LayerNorm {
    /// Module path, e.g. `h.0.ln_1`.
    pub name: String,
    /// γ `[d]`.
    pub weight: Tensor,
    /// β `[d]`.
    pub bias: Tensor,
    /// ε inside the square root (Hugging Face `layer_norm_epsilon`).
    pub eps: f64,
}

/// (name, tensor) of γ and β.
fn named(name: &str, weight: &Tensor, bias: &Tensor) -> Vec<(String, Tensor)> {
    vec![(format!("{name}.weight"), weight.shallow_clone()), (format!("{name}.bias"), bias.shallow_clone())]
}

impl DpLayer for LayerNorm {
    fn name(&self) -> &str {
        &self.name
    }

    fn parameters(&self) -> Vec<(String, Tensor)> {
        named(&self.name, &self.weight, &self.bias)
    }
}

impl LayerNorm {
    /// Normalises the last dim of `x`, recording x̂ on the tape when it is on.
    pub fn forward(&self, x: &Tensor, tape: &mut Tape) -> Tensor {
        let d = self.weight.size();
        if !tape.is_on() {
            // libtorch's fused kernel, as torch.nn.LayerNorm.
            return x.layer_norm(&d, Some(&self.weight), Some(&self.bias), self.eps, false);
        }
        // The fused kernel without the affine part gives x̂, which the record needs.
        let (normalized, _, _) = Tensor::native_layer_norm(x, &d, None::<&Tensor>, None::<&Tensor>, self.eps);
        let (y, probe) = super::plus_bias_probed(&normalized * &self.weight, &self.bias);
        tape.record(Box::new(LayerNormRecord {
            name: self.name.clone(),
            normalized: as_btn(&normalized.detach()).to_kind(super::accumulation_kind(normalized.kind())),
            output: probe,
            weight: self.weight.shallow_clone(),
            bias: self.bias.shallow_clone(),
        }));
        y
    }
}

struct LayerNormRecord {
    name: String,
    normalized: Tensor, // [B, T, d]
    output: Tensor,
    weight: Tensor,
    bias: Tensor,
}

impl DpRecord for LayerNormRecord {
    fn layer(&self) -> &str {
        &self.name
    }

    fn parameters(&self) -> Vec<(String, Tensor)> {
        named(&self.name, &self.weight, &self.bias)
    }

    fn output(&self) -> &Tensor {
        &self.output
    }

    fn sq_norms(&self, grad_output: &Tensor, _method: NormMethod) -> Vec<Tensor> {
        self.per_example_grads(grad_output).iter().map(per_example_sq_sum).collect()
    }

    fn weighted_grads(&self, grad_output: &Tensor, c: &Tensor) -> Vec<Tensor> {
        let g = as_btn(grad_output);
        vec![
            Tensor::einsum("btd,btd,b->d", &[&self.normalized, &g, c], None::<i64>),
            Tensor::einsum("btd,b->d", &[&g, c], None::<i64>),
        ]
    }

    fn per_example_grads(&self, grad_output: &Tensor) -> Vec<Tensor> {
        let g = as_btn(grad_output);
        vec![
            (&self.normalized * &g).sum_dim_intlist([1i64].as_slice(), false, None::<Kind>),
            g.sum_dim_intlist([1i64].as_slice(), false, None::<Kind>),
        ]
    }
}
