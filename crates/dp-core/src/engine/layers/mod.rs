//! DP-aware layers: each computes its forward pass and, when the tape is on, records what the engine
//! needs for per-example norms and clipped gradients (Li et al. 2022, Sec. 4 and App. for the formulas).

mod embedding;
mod layer_norm;
mod linear;

pub use embedding::Embedding;
pub use layer_norm::LayerNorm;
pub use linear::{Linear, WeightLayout};

use std::collections::HashMap;

use tch::{Kind, Tensor};

use super::EngineError;

/// A DP-aware layer, as seen by the construction-time ownership check.
pub trait DpLayer {
    /// The layer's module path.
    fn name(&self) -> &str;
    /// Its parameters as (full name, tensor).
    fn parameters(&self) -> Vec<(String, Tensor)>;
}

/// Checks, when a model is built, that every trainable variable is owned by exactly one DP-aware layer:
/// a variable outside every layer would be updated without clipping or noise, and one inside two layers
/// (tied weights) would have its per-example norm under-counted (the cross term is missing).
pub fn check_ownership(layers: &[&dyn DpLayer], trainable: &[(String, Tensor)]) -> Result<(), EngineError> {
    let mut owner: HashMap<usize, &str> = HashMap::new();
    for layer in layers {
        for (name, t) in layer.parameters() {
            if let Some(other) = owner.insert(t.data_ptr() as usize, layer.name()) {
                return Err(EngineError::SharedParameter(name, other.to_string(), layer.name().to_string()));
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
