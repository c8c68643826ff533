//! Reparametrized gradient perturbation (RGP; Yu, Zhang, Chen, Yin, Liu, "Large Scale Private Learning
//! via Low-rank Reparametrization", ICML 2021), the paper's Table 2 baseline at rank 1 (Li et al. 2022).
//!
//! RGP trains every weight matrix W `[p, d]` (torch orientation, y = x Wᵀ) of the blocks but privatises
//! only a low-rank gradient. One step, as implemented here (the steps of Yu et al.'s algorithm; their
//! equation numbers are not quoted because we could not check them against the paper here):
//! 1. Gradient carriers (one power iteration, as the paper's default). Historical update
//!    Δ = W_t − W_0 (W_0: the weights when training started); at the first step Δ = 0 and W_t itself is
//!    used instead (our choice; any data-independent matrix keeps the guarantee). From a fixed random
//!    R₀ `[r, d]`: L = orth(Δ R₀ᵀ) `[p, r]` (orthonormal columns), R = orth(Lᵀ Δ) `[r, d]` (orthonormal
//!    rows). Δ depends only on released updates, so the carriers are post-processing.
//! 2. Reparametrisation: W = L R + W̃ with W̃ = W − L R held fixed, so that the forward pass is
//!    unchanged and ∂L = ∂W Rᵀ, ∂R = Lᵀ ∂W. Per example i, with A_i the layer's inputs and G_i its output
//!    gradients: ∂L_i = G_iᵀ (A_i Rᵀ) and ∂R_i = (G_i L)ᵀ A_i — the gradients of two bias-free linear
//!    layers in sequence, x → x Rᵀ → (x Rᵀ) Lᵀ. Both are DP-aware [`Linear`] layers here, so their
//!    per-example norms are exact and no p×d per-example gradient is formed.
//! 3. Clip and perturb: the per-example (∂L_i, ∂R_i) of all layers are clipped jointly to C
//!    (flat clipping), summed, and N(0, σ²C²) is added — the engine's ordinary DP step on the carriers.
//! 4. Reconstruction: ∂W = ∂L R + L ∂R − L Lᵀ ∂L R, which the optimizer applies to W.
//!
//! Without noise, step 4 gives the projection ∂W − (I − L Lᵀ) ∂W (I − RᵀR) of the ordinary gradient; at
//! full rank (r = min(p, d)) one of the projectors is the identity and it is the ordinary gradient.
//!
//! The forward pass computes y = x W (the frozen layer, value unchanged) + z − stopgrad(z) with
//! z = (stopgrad(x) Rᵀ) Lᵀ: the value is x W, the gradient reaching L and R is exactly that of step 2,
//! and the gradient passed down to x is the one through W (= W̃ + L R) alone; W̃ never needs storing (or
//! refreshing after an update).

use dp_core::engine::{DpLayer, Linear, Tape, WeightLayout};
use tch::{Kind, Tensor};

use crate::ModelError;

/// The gradient carriers of one weight matrix.
#[derive(Debug)]
pub struct Rgp {
    /// L `[p, r]` as a bias-free linear layer `<layer>.rgp_L` (input x Rᵀ, output z).
    pub left: Linear,
    /// R `[r, d]` as a bias-free linear layer `<layer>.rgp_R` (input x).
    pub right: Linear,
    /// W_0 in torch orientation `[p, d]`.
    initial: Tensor,
    /// R₀ `[r, d]`, the power iteration's fixed start.
    start: Tensor,
    layout: WeightLayout,
}

/// W of `layer` in torch orientation `[out, in]`.
fn torch_weight(layer: &Linear) -> Tensor {
    match layer.layout {
        WeightLayout::OutIn => layer.weight.shallow_clone(),
        WeightLayout::InOut => layer.weight.transpose(0, 1),
    }
}

/// Q of the reduced QR decomposition: orthonormal columns spanning those of `x`.
fn orth(x: &Tensor) -> Tensor {
    Tensor::linalg_qr(x, "reduced").0
}

impl Rgp {
    /// Carriers of rank `r` for `layer` (W_0 is its current weight), R₀ drawn from libtorch's generator
    /// (seed it first).
    pub fn new(layer: &Linear, r: i64) -> Result<Self, ModelError> {
        let w = torch_weight(layer);
        let (p, d) = (w.size()[0], w.size()[1]);
        if r < 1 || r > p.min(d) {
            return Err(ModelError::Invalid(format!(
                "RGP rank {r} for `{}` ([{p}, {d}]) must lie in 1..={}",
                layer.name,
                p.min(d)
            )));
        }
        let opts = (w.kind(), w.device());
        let carrier = |name: &str, shape: [i64; 2]| Linear {
            name: format!("{}.{name}", layer.name),
            weight: Tensor::zeros(shape, opts).set_requires_grad(true),
            bias: None,
            layout: WeightLayout::OutIn,
        };
        let start = Tensor::randn([r, d], (Kind::Float, w.device())).to_kind(w.kind());
        let rgp = Self {
            left: carrier("rgp_L", [p, r]),
            right: carrier("rgp_R", [r, d]),
            initial: w.detach().copy(),
            start,
            layout: layer.layout,
        };
        rgp.refresh(layer);
        Ok(rgp)
    }

    /// Step 1: new carriers from the historical update of `layer`'s weight (in place, so that the
    /// carrier tensors handed to the clipper and the optimizer stay the same).
    pub fn refresh(&self, layer: &Linear) {
        tch::no_grad(|| {
            let w = torch_weight(layer).detach();
            let delta = &w - &self.initial;
            let source = if bool::try_from(delta.eq(0.0).all()).unwrap_or(true) { w } else { delta };
            let l = orth(&source.matmul(&self.start.transpose(0, 1))); // [p, r]
            let r = orth(&source.transpose(0, 1).matmul(&l)).transpose(0, 1); // [r, d] = orth(Lᵀ Δ)
            self.left.weight.shallow_clone().copy_(&l);
            self.right.weight.shallow_clone().copy_(&r);
        });
    }

    /// `layer`'s output with the carriers' path added: value x W (+ b), gradient to L and R as in step 2.
    pub fn forward(&self, layer: &Linear, x: &Tensor, tape: &mut Tape) -> Tensor {
        let y = layer.forward(x, tape);
        // From x detached: the gradient reaching x is the frozen layer's (W), not W + L R.
        let z = self.left.forward(&self.right.forward(&x.detach(), tape), tape);
        &y + (&z - z.detach())
    }

    /// Step 4: ∂W = ∂L R + L ∂R − L Lᵀ ∂L R, in `layer`'s storage layout, from the carriers' gradients.
    pub fn reconstruct(&self, grad_left: &Tensor, grad_right: &Tensor) -> Tensor {
        let (l, r) = (self.left.weight.detach(), self.right.weight.detach());
        let g = grad_left.matmul(&r) + l.matmul(grad_right) - l.matmul(&l.transpose(0, 1).matmul(grad_left)).matmul(&r);
        match self.layout {
            WeightLayout::OutIn => g,
            WeightLayout::InOut => g.transpose(0, 1).contiguous(),
        }
    }

    /// The carriers' layers, for the engine's ownership check.
    pub fn layers(&self) -> [&dyn DpLayer; 2] {
        [&self.left, &self.right]
    }
}
