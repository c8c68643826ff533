//! LoRA (Hu et al. 2022) as DP-aware layers: a frozen projection y = W x + b plus a trainable low-rank
//! update (α/r)·B(A x), with A `[r, in]` and B `[out, r]` two bias-free [`Linear`] layers. Because A and
//! B are ordinary DP-aware linear layers, the engine computes their per-example norms exactly from their
//! own (input, output-gradient) pairs — no full-size gradient of W is ever formed (Li et al. 2022, Table 2
//! "LoRA", rank 4 in the paper).

use dp_core::engine::{Linear, Tape, WeightLayout};
use tch::{Kind, Tensor};

use crate::ModelError;

/// The low-rank update of one projection.
#[derive(Debug)]
pub struct Lora {
    /// A `[r, in]`, Kaiming-uniform initialised (as PEFT: bound 1/sqrt(in)).
    pub lora_a: Linear,
    /// B `[out, r]`, zero-initialised so that training starts from the pretrained function.
    pub lora_b: Linear,
    /// α / r.
    pub scaling: f64,
}

impl Lora {
    /// LoRA of rank `r` and scale `alpha` for a projection named `name` from `d_in` to `d_out`, on the
    /// device and dtype of `like` (initialised from libtorch's generator: seed it first).
    pub fn new(name: &str, d_in: i64, d_out: i64, r: i64, alpha: f64, like: &Tensor) -> Result<Self, ModelError> {
        if r < 1 || !(alpha.is_finite() && alpha > 0.0) {
            return Err(ModelError::Invalid(format!("LoRA rank {r} must be ≥ 1 and alpha {alpha} > 0")));
        }
        // A rank above the layer's smaller side adds parameters without adding expressiveness.
        if r > d_in.min(d_out) {
            return Err(ModelError::Invalid(format!(
                "LoRA rank {r} exceeds the width of {name} ({d_in} → {d_out}): use a rank ≤ {}",
                d_in.min(d_out)
            )));
        }
        let opts = (like.kind(), like.device());
        let bound = 1.0 / (d_in as f64).sqrt();
        let a = (Tensor::rand([r, d_in], (Kind::Float, like.device())).to_kind(like.kind()) * (2.0 * bound) - bound)
            .set_requires_grad(true);
        let b = Tensor::zeros([d_out, r], opts).set_requires_grad(true);
        Ok(Self {
            lora_a: Linear { name: format!("{name}.lora_A"), weight: a, bias: None, layout: WeightLayout::OutIn },
            lora_b: Linear { name: format!("{name}.lora_B"), weight: b, bias: None, layout: WeightLayout::OutIn },
            scaling: alpha / r as f64,
        })
    }

    /// (α/r)·B(A x), recording both layers on the tape.
    pub fn forward(&self, x: &Tensor, tape: &mut Tape) -> Tensor {
        self.lora_b.forward(&self.lora_a.forward(x, tape), tape) * self.scaling
    }
}
