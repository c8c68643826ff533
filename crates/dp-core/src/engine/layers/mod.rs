//! DP-aware layers: each computes its forward pass and, when the tape is on, records what the engine
//! needs for per-example norms and clipped gradients (Li et al. 2022, Sec. 4 and App. for the formulas).

mod embedding;
mod layer_norm;
mod linear;
mod rms_norm;

pub use embedding::Embedding;
pub use layer_norm::LayerNorm;
pub use linear::{Linear, WeightLayout};
pub use rms_norm::RmsNorm;

use std::collections::HashMap;

use tch::{Kind, Tensor};

use super::EngineError;

/// A DP-aware layer, as seen by the construction-time ownership check.
pub trait DpLayer {
    /// The layer's module path.
    fn name(&self) -> &str;
    /// Its parameters as (full name, tensor).
    fn parameters(&self) -> Vec<(String, Tensor)>;
    /// Whether its per-example weight gradients factor as Σ_t u_t v_tᵀ, so that a weight shared with
    /// another such layer (GPT-2's tied `wte` / `lm_head`) can be clipped exactly.
    fn factorable(&self) -> bool {
        false
    }
}

/// One side of a per-example gradient written as Σ_t u_t v_tᵀ.
pub enum Factor {
    /// u_t (or v_t) given densely, `[B, T, n]`.
    Dense(Tensor),
    /// u_t = e_{k_t}, the one-hot vector of id k_t, given by the ids `[B, T]`.
    OneHot(Tensor),
}

/// A layer output and the stand-in the tape records for it: `(y + p, p)`, with p a zero of y's shape and
/// dtype stored as one element (a scalar that requires grad, broadcast). The model goes on with y + p, equal
/// to y; the backward pass stops at p, whose gradient is y's (the sum passes it through unchanged). The tape
/// thus holds one number per layer instead of the output: an output that nothing else saves for the
/// backward pass (the logits, 206 MB for GPT-2 small at 8 × 128; the attention and MLP output projections)
/// is freed after its use in the forward pass, as without DP, and not kept until clipping ends (issue 20
/// part 2).
pub(crate) fn probed(mut y: Tensor) -> (Tensor, Tensor) {
    let probe = Tensor::zeros([], (y.kind(), y.device())).set_requires_grad(true).expand(y.size(), false);
    let _ = y.g_add_(&probe);
    (y, probe)
}

/// `(y + b, b broadcast to y's shape)`: where a layer adds a bias anyway, the broadcast bias is the
/// stand-in ([`probed`]) at no extra cost — the sum passes y + b's gradient to it unchanged, and it stores
/// the bias's own elements only.
pub(crate) fn plus_bias_probed(y: Tensor, bias: &Tensor) -> (Tensor, Tensor) {
    let probe = bias.expand(y.size(), false);
    (y + &probe, probe)
}

/// Per-example Gram matrices ⟨x_t, y_s⟩, `[B, Tx, Ty]`.
pub(crate) fn gram(x: &Factor, y: &Factor) -> Tensor {
    match (x, y) {
        (Factor::Dense(a), Factor::Dense(b)) => a.bmm(&b.transpose(1, 2)),
        (Factor::OneHot(ids), Factor::Dense(b)) => {
            // ⟨e_{k_t}, b_s⟩ = b_s[k_t]
            let (bs, tb, tx) = (b.size()[0], b.size()[1], ids.size()[1]);
            b.gather(2, &ids.unsqueeze(1).expand([bs, tb, tx], true), false).transpose(1, 2)
        }
        (Factor::Dense(_), Factor::OneHot(_)) => gram(y, x).transpose(1, 2),
        (Factor::OneHot(a), Factor::OneHot(b)) => a.unsqueeze(2).eq_tensor(&b.unsqueeze(1)).to_kind(Kind::Double),
    }
}

/// Checks, when a model is built, that every trainable variable is owned by a DP-aware layer (one outside
/// every layer would be updated without clipping or noise), and that a variable shared by two layers is
/// shared only between layers whose cross term the engine computes exactly ([`DpLayer::factorable`]).
pub fn check_ownership(layers: &[&dyn DpLayer], trainable: &[(String, Tensor)]) -> Result<(), EngineError> {
    let mut owner: HashMap<usize, &dyn DpLayer> = HashMap::new();
    for &layer in layers {
        for (name, t) in layer.parameters() {
            if let Some(other) = owner.insert(t.data_ptr() as usize, layer) {
                if !(other.factorable() && layer.factorable()) {
                    return Err(EngineError::SharedParameter(name, other.name().to_string(), layer.name().to_string()));
                }
            }
        }
    }
    match trainable.iter().find(|(_, t)| !owner.contains_key(&(t.data_ptr() as usize))) {
        Some((name, _)) => Err(EngineError::Uncovered(name.clone())),
        None => Ok(()),
    }
}

/// How a layer computes per-example gradient norms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NormMethod {
    /// The Gram identity ‖Gᵀ A‖²_F = ⟨A Aᵀ, G Gᵀ⟩: O(T²) memory per example.
    Ghost,
    /// Instantiate each example's gradient: O(p·d) memory per example.
    Instantiate,
    /// Ghost iff 2T² < p·d, decided from the actual shapes ("mixed ghost clipping").
    #[default]
    Auto,
}

impl NormMethod {
    /// Whether to use the Gram identity for a layer with sequence length `t` and a p×d weight.
    pub fn use_ghost(self, t: i64, p: i64, d: i64) -> bool {
        match self {
            Self::Ghost => true,
            Self::Instantiate => false,
            Self::Auto => 2 * t * t < p * d,
        }
    }
}

/// The dtype per-example norms, clipped sums and noise are computed in for parameters of dtype `kind`:
/// f64 stays f64, everything else (f32, and bf16/f16 parameters) is f32 — the accountant's Gaussian
/// mechanism and the clipping bound hold only up to the round-off of this dtype (jax-privacy keeps these
/// in f32 under mixed precision for the same reason).
pub fn accumulation_kind(kind: Kind) -> Kind {
    if kind == Kind::Double {
        Kind::Double
    } else {
        Kind::Float
    }
}

/// Views `[B, …, n]` as `[B, T, n]` (T = 1 for `[B, n]`, T = product of the middle dims otherwise).
pub(crate) fn as_btn(x: &Tensor) -> Tensor {
    let size = x.size();
    let (b, n) = (size[0], size[size.len() - 1]);
    x.reshape([b, -1, n])
}

/// Σ over all dims but the first of x², as `[B]`.
pub(crate) fn per_example_sq_sum(x: &Tensor) -> Tensor {
    let b = x.size()[0];
    x.reshape([b, -1]).square().sum_dim_intlist([1i64].as_slice(), false, None::<Kind>)
}

/// ‖Σ_t G_t ⊗ A_t‖²_F per example by the Gram identity, `[B]`. A: `[B, T, p]`, G: `[B, T, d]`.
pub(crate) fn ghost_sq_norm(a: &Tensor, g: &Tensor) -> Tensor {
    let aa = a.bmm(&a.transpose(1, 2)); // [B, T, T]
    let gg = g.bmm(&g.transpose(1, 2)); // [B, T, T]
    (aa * gg).sum_dim_intlist([1i64, 2].as_slice(), false, None::<Kind>)
}

#[cfg(test)]
mod tests {
    use tch::{Device, Kind, Tensor};

    use super::{DpLayer, Linear, WeightLayout};
    use crate::engine::Tape;

    #[test]
    fn the_tape_holds_a_one_element_stand_in_whose_gradient_is_the_outputs() {
        let p = |s: &[i64]| Tensor::randn(s, (Kind::Double, Device::Cpu)).set_requires_grad(true);
        let layer =
            Linear { name: "lm_head".into(), weight: p(&[6, 4]), bias: Some(p(&[6])), layout: WeightLayout::OutIn };
        let x = Tensor::randn([3, 2, 4], (Kind::Double, Device::Cpu));
        let plain = layer.forward(&x, &mut Tape::off());
        let mut tape = Tape::on();
        let y = layer.forward(&x, &mut tape);
        assert!(y.equal(&plain), "the recorded forward pass gives the same output");
        let stand_in = tape.records()[0].output().shallow_clone();
        assert_eq!(stand_in.size(), y.size());
        assert_eq!(stand_in.stride(), vec![0, 0, 0], "one stored element: the output itself is not held");
        // loss = Σ w ⊙ y: the gradient at the output is w, and the stand-in receives exactly it.
        let w = Tensor::randn([3, 2, 6], (Kind::Double, Device::Cpu));
        let g = Tensor::run_backward(&[(&y * &w).sum(Kind::Double)], &[&stand_in], false, false);
        assert!(g[0].equal(&w));
        assert_eq!(layer.parameters().len(), 2);
    }
}
