//! DP-aware linear layer, y = a·Wᵀ + b, in both weight layouts: torch's `[out, in]` and the `[in, out]` of
//! Hugging Face GPT-2's `Conv1D` (same math, transposed storage; Li et al. 2022, Sec. 4).
//!
//! Per example i with A_i = inputs `[T, p]` and G_i = output gradients `[T, d]`:
//! ∇W_i = G_iᵀ A_i, ‖∇W_i‖²_F = ⟨A_i A_iᵀ, G_i G_iᵀ⟩ (ghost) or instantiated; ∇b_i = Σ_t g_t.
//! Weighted gradient Σ_i c_i ∇W_i = Σ_i G_iᵀ (c_i A_i): A is scaled, not G (G can be the huge logits
//! gradient).

use tch::{Kind, Tensor};

use super::{as_btn, ghost_sq_norm, per_example_sq_sum, DpLayer, Factor, NormMethod};
use crate::engine::tape::{DpRecord, Tape};

/// How the weight is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightLayout {
    /// `[out, in]` (torch `nn.Linear`).
    OutIn,
    /// `[in, out]` (Hugging Face GPT-2 `Conv1D`).
    InOut,
}

/// A linear layer whose weight (and optional bias) the engine can clip per example.
#[derive(Debug)]
pub struct Linear {
    /// Module path, e.g. `h.0.attn.c_attn`.
    pub name: String,
    /// The weight, in `layout`.
    pub weight: Tensor,
    /// The bias `[out]`, if any.
    pub bias: Option<Tensor>,
    /// Storage layout of the weight.
    pub layout: WeightLayout,
}

/// (name, tensor) of a linear layer's weight and optional bias.
fn named(name: &str, weight: &Tensor, bias: Option<&Tensor>) -> Vec<(String, Tensor)> {
    let mut p = vec![(format!("{name}.weight"), weight.shallow_clone())];
    if let Some(b) = bias {
        p.push((format!("{name}.bias"), b.shallow_clone()));
    }
    p
}

impl DpLayer for Linear {
    fn name(&self) -> &str {
        &self.name
    }

    fn factorable(&self) -> bool {
        true
    }

    fn parameters(&self) -> Vec<(String, Tensor)> {
        named(&self.name, &self.weight, self.bias.as_ref())
    }
}

impl Linear {
    /// Forward pass `[…, in] → […, out]`, recording on the tape when it is on.
    pub fn forward(&self, x: &Tensor, tape: &mut Tape) -> Tensor {
        if !tape.is_on() {
            return match (self.layout, &self.bias) {
                (WeightLayout::OutIn, b) => x.linear(&self.weight, b.as_ref()),
                (WeightLayout::InOut, Some(b)) => x.matmul(&self.weight) + b,
                (WeightLayout::InOut, None) => x.matmul(&self.weight),
            };
        }
        // The tape's stand-in for the output: the broadcast bias where the bias is added on its own.
        let (y, probe) = match (self.layout, &self.bias) {
            (WeightLayout::InOut, Some(b)) => super::plus_bias_probed(x.matmul(&self.weight), b),
            (WeightLayout::InOut, None) => super::probed(x.matmul(&self.weight)),
            (WeightLayout::OutIn, b) => super::probed(x.linear(&self.weight, b.as_ref())),
        };
        tape.record(Box::new(LinearRecord {
            name: self.name.clone(),
            input: as_btn(&x.detach()).to_kind(super::accumulation_kind(x.kind())),
            output: probe,
            weight: self.weight.shallow_clone(),
            bias: self.bias.as_ref().map(Tensor::shallow_clone),
            layout: self.layout,
        }));
        y
    }
}

struct LinearRecord {
    name: String,
    input: Tensor, // [B, T, in]
    output: Tensor,
    weight: Tensor,
    bias: Option<Tensor>,
    layout: WeightLayout,
}

impl LinearRecord {
    /// Per-example weight gradients `[B, …weight shape]`.
    fn weight_grads(&self, g: &Tensor) -> Tensor {
        match self.layout {
            WeightLayout::OutIn => Tensor::einsum("btd,btp->bdp", &[g, &self.input], None::<i64>),
            WeightLayout::InOut => Tensor::einsum("btp,btd->bpd", &[&self.input, g], None::<i64>),
        }
    }
}

impl DpRecord for LinearRecord {
    fn layer(&self) -> &str {
        &self.name
    }

    fn parameters(&self) -> Vec<(String, Tensor)> {
        named(&self.name, &self.weight, self.bias.as_ref())
    }

    fn output(&self) -> &Tensor {
        &self.output
    }

    fn sq_norms(&self, grad_output: &Tensor, method: NormMethod) -> Vec<Tensor> {
        let g = as_btn(grad_output); // [B, T, out]
        let (t, p, d) = (g.size()[1], self.input.size()[2], g.size()[2]);
        let weight = if method.use_ghost(t, p, d) {
            ghost_sq_norm(&self.input, &g)
        } else {
            per_example_sq_sum(&self.weight_grads(&g))
        };
        let mut out = vec![weight];
        if self.bias.is_some() {
            out.push(per_example_sq_sum(&g.sum_dim_intlist([1i64].as_slice(), false, None::<Kind>)));
        }
        out
    }

    fn weighted_grads(&self, grad_output: &Tensor, c: &Tensor) -> Vec<Tensor> {
        let g = as_btn(grad_output);
        // Σ_i c_i G_iᵀ A_i as one matrix product over all B·T rows, with c scaling the narrower of A and G.
        let (p, d) = (self.input.size()[2], g.size()[2]);
        let scale = c.reshape([-1, 1, 1]);
        let (a, gs) =
            if p <= d { (&self.input * &scale, g.shallow_clone()) } else { (self.input.shallow_clone(), &g * &scale) };
        let (a, gs) = (a.reshape([-1, p]), gs.reshape([-1, d]));
        let weight = match self.layout {
            WeightLayout::OutIn => gs.tr().mm(&a),
            WeightLayout::InOut => a.tr().mm(&gs),
        };
        let mut out = vec![weight];
        if self.bias.is_some() {
            out.push(Tensor::einsum("btd,b->d", &[&g, c], None::<i64>));
        }
        out
    }

    fn factorable(&self, _param: usize) -> bool {
        true
    }

    fn factors(&self, grad_output: &Tensor, param: usize) -> Option<(Factor, Factor)> {
        let g = as_btn(grad_output);
        Some(match (param, self.layout) {
            (0, WeightLayout::OutIn) => (Factor::Dense(g), Factor::Dense(self.input.shallow_clone())),
            (0, WeightLayout::InOut) => (Factor::Dense(self.input.shallow_clone()), Factor::Dense(g)),
            _ => {
                let ones = g.ones_like().narrow(2, 0, 1); // the bias as an [out, 1] matrix
                (Factor::Dense(g), Factor::Dense(ones))
            }
        })
    }

    fn per_example_grads(&self, grad_output: &Tensor) -> Vec<Tensor> {
        let g = as_btn(grad_output);
        let mut out = vec![self.weight_grads(&g)];
        if self.bias.is_some() {
            out.push(g.sum_dim_intlist([1i64].as_slice(), false, None::<Kind>));
        }
        out
    }
}
