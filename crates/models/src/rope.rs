//! Rotary position embeddings (Su et al. 2021) as Llama, Qwen2 and Mistral use them in Hugging Face
//! transformers: for head dim h and base θ (`rope_theta`), inverse frequencies f_i = θ^(−2i/h), i < h/2;
//! position p rotates each (x_i, x_{i+h/2}) pair by angle p·f_i ("rotate_half" layout, not interleaved):
//! q' = q ⊙ cos + rotate_half(q) ⊙ sin with cos, sin = cos/sin(cat(p·f, p·f)).
//!
//! Llama 3's `rope_scaling` (`rope_type: llama3`) rescales the frequencies: wavelengths above
//! `original_max_position_embeddings / low_freq_factor` are divided by `factor`, those below
//! `original / high_freq_factor` are kept, and those between are interpolated (transformers'
//! `_compute_llama3_parameters`). No parameters: the DP engine sees only the projections around it.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::ModelError;

/// `rope_scaling` of a config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RopeScaling {
    /// `rope_type` (older configs: `type`): `default` or `llama3`.
    #[serde(alias = "type", default = "default_type")]
    pub rope_type: String,
    /// θ, in transformers ≥ 5's `rope_parameters` (older configs keep it beside, as `rope_theta`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
    /// Frequency division of long wavelengths.
    #[serde(default)]
    pub factor: Option<f64>,
    /// Llama 3's low-frequency factor.
    #[serde(default)]
    pub low_freq_factor: Option<f64>,
    /// Llama 3's high-frequency factor.
    #[serde(default)]
    pub high_freq_factor: Option<f64>,
    /// The context length the frequencies were trained for.
    #[serde(default)]
    pub original_max_position_embeddings: Option<f64>,
}

fn default_type() -> String {
    "default".into()
}

/// The rotation of one model: its inverse frequencies `[h/2]`, in f32 and in f64.
///
/// In f32 (and for half precision) they and the angles p·f_i are computed in f32 step by step as
/// transformers does (its `inv_freq` buffer is f32), so that logits agree to 1e-5; a float64 model computes
/// both in f64 (transformers would take the angles in f32 there too: the model tests lift that cast in the
/// oracle, `python/oracles/tiny_llama.py`), so that the engine's f64 oracle tests stay exact.
#[derive(Debug)]
pub struct Rope {
    inv_freq_f32: Tensor,
    inv_freq_f64: Tensor,
}

impl Rope {
    /// For head dim `head_dim`, base `theta` and an optional `rope_scaling`; refuses scalings other than
    /// `default` and `llama3` (their frequencies would be wrong, silently).
    pub fn new(head_dim: i64, theta: f64, scaling: Option<&RopeScaling>) -> Result<Self, ModelError> {
        if head_dim % 2 != 0 || head_dim < 2 {
            return Err(ModelError::Invalid(format!("rotary embeddings need an even head dim, not {head_dim}")));
        }
        let frequencies = |kind: Kind| -> Result<Tensor, ModelError> {
            // 1 / θ^(2i/h), as transformers' `_compute_default_rope_parameters` (in `kind`).
            let exponent =
                Tensor::arange_start_step(0, head_dim, 2, (Kind::Int64, Device::Cpu)).to_kind(kind) / head_dim as f64;
            let base = if kind == Kind::Double { Tensor::from(theta) } else { Tensor::from(theta as f32) };
            let inv_freq = base.pow(&exponent).reciprocal();
            match scaling.map(|s| s.rope_type.as_str()) {
                None | Some("default") => Ok(inv_freq),
                Some("llama3") => llama3(&inv_freq, scaling.expect("matched")),
                Some(other) => Err(ModelError::Invalid(format!(
                    "rope_scaling.rope_type = {other:?} is not supported (default and llama3 are)"
                ))),
            }
        };
        Ok(Self { inv_freq_f32: frequencies(Kind::Float)?, inv_freq_f64: frequencies(Kind::Double)? })
    }

    /// cos and sin `[B, 1, T, h]` for position ids `[B, T]`, in `kind`.
    pub fn cos_sin(&self, positions: &Tensor, kind: Kind) -> (Tensor, Tensor) {
        let (inv, wide) =
            if kind == Kind::Double { (&self.inv_freq_f64, Kind::Double) } else { (&self.inv_freq_f32, Kind::Float) };
        let freqs = positions.to_kind(wide).unsqueeze(-1) * inv.to(positions.device()); // [B, T, h/2]
        let emb = Tensor::cat(&[&freqs, &freqs], -1); // [B, T, h]
        (emb.cos().to_kind(kind).unsqueeze(1), emb.sin().to_kind(kind).unsqueeze(1))
    }
}

/// (x_{h/2..}, x_{..h/2}) → (−x_{h/2..}, x_{..h/2}) on the last dim.
fn rotate_half(x: &Tensor) -> Tensor {
    let h = x.size()[x.dim() - 1];
    let (a, b) = (x.narrow(-1, 0, h / 2), x.narrow(-1, h / 2, h / 2));
    Tensor::cat(&[&b.neg(), &a], -1)
}

/// Rotates `x` `[B, H, T, h]` by the angles of `cos`, `sin` `[B, 1, T, h]`.
pub fn apply(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
    x * cos + rotate_half(x) * sin
}

/// Llama 3's rescaled frequencies (transformers' `_compute_llama3_parameters`, the same tensor ops).
fn llama3(inv_freq: &Tensor, s: &RopeScaling) -> Result<Tensor, ModelError> {
    let need =
        |v: Option<f64>, key: &str| v.ok_or_else(|| ModelError::Invalid(format!("rope_scaling (llama3) needs {key}")));
    let factor = need(s.factor, "factor")?;
    let low = need(s.low_freq_factor, "low_freq_factor")?;
    let high = need(s.high_freq_factor, "high_freq_factor")?;
    let original = need(s.original_max_position_embeddings, "original_max_position_embeddings")?;
    let (low_wavelen, high_wavelen) = (original / low, original / high);
    let wavelen = inv_freq.reciprocal() * (2.0 * std::f64::consts::PI);
    let scaled = inv_freq.where_self(&wavelen.le(low_wavelen), &(inv_freq / factor));
    let smooth = (wavelen.reciprocal() * original - low) / (high - low);
    let smoothed = (smooth.ones_like() - &smooth) * &scaled / factor + &smooth * &scaled;
    let medium = wavelen.ge(high_wavelen).logical_and(&wavelen.le(low_wavelen));
    Ok(smoothed.where_self(&medium, &scaled))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotation_keeps_norms_and_position_zero_is_the_identity() {
        let rope = Rope::new(8, 10_000.0, None).unwrap();
        let x = Tensor::randn([1, 2, 3, 8], (Kind::Double, Device::Cpu));
        let positions = Tensor::from_slice(&[0i64, 1, 5]).unsqueeze(0);
        let (cos, sin) = rope.cos_sin(&positions, Kind::Double);
        let y = apply(&x, &cos, &sin);
        let norm = |t: &Tensor| t.square().sum_dim_intlist([-1i64].as_slice(), false, None::<Kind>);
        assert!(bool::try_from(((norm(&y) - norm(&x)).abs() / norm(&x)).max().le(1e-14)).unwrap());
        assert!(bool::try_from((y.narrow(2, 0, 1) - x.narrow(2, 0, 1)).abs().max().le(1e-15)).unwrap());
        assert!(Rope::new(
            8,
            1e4,
            Some(&RopeScaling {
                rope_type: "yarn".into(),
                rope_theta: None,
                factor: Some(2.0),
                low_freq_factor: None,
                high_freq_factor: None,
                original_max_position_embeddings: None
            })
        )
        .is_err());
    }
}
