//! One σ = 0 DP step on a causal LM, the engine against an independent per-example loop
//! (../shared/docs/oracles.md, "Clipping and the DP step"); behind `dpft clip-check` and the model tests.
//!
//! The engine sees the whole batch (right-padded, attention mask, labels −100 on padding, position ids
//! [B, T]); the oracle runs each text alone, unpadded, takes the gradient of its loss over every trainable
//! tensor by autograd, clips it with the same factor c_i = min(1, C / (‖g_i‖ + γ)) and sums in f64. A model
//! that used a trainable tensor outside its DP layers shows here as a norm mismatch.

use dp_core::engine::{Clipper, Tape};
use tch::{Device, Kind, Tensor};

use crate::causal::CausalModel;
use crate::gpt2::causal_lm_losses;
use crate::inputs::Inputs;
use crate::ModelError;

/// Engine and oracle side by side.
#[derive(Debug)]
pub struct ClipCheck {
    /// ‖∇L_i‖ from the engine.
    pub per_example_norms: Vec<f64>,
    /// ‖∇L_i‖ from the loop.
    pub oracle_per_example_norms: Vec<f64>,
    /// max_i |engine − oracle| / oracle over the norms.
    pub max_rel_diff_norms: f64,
    /// max over tensors of ‖engine − oracle‖ / max(‖oracle‖, floor · ‖whole oracle sum‖).
    pub max_rel_diff_grad: f64,
    /// The tensor where that maximum is reached.
    pub worst_tensor: String,
    /// The engine's clipped sum per trainable tensor (checkpoint names).
    pub grads: Vec<(String, Tensor)>,
    /// The engine's norms as a tensor `[B]`.
    pub norms: Tensor,
}

/// Right-padded ids, attention mask and labels (−100 on padding), each `[B, T]`.
pub fn causal_batch(batch: &[Vec<i64>], pad: i64, device: Device) -> (Tensor, Tensor, Tensor) {
    let t = batch.iter().map(Vec::len).max().unwrap_or(0);
    let (mut ids, mut mask, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    for row in batch {
        let fill = t - row.len();
        ids.extend(row.iter().copied().chain(std::iter::repeat_n(pad, fill)));
        mask.extend(std::iter::repeat_n(1i64, row.len()).chain(std::iter::repeat_n(0, fill)));
        labels.extend(row.iter().copied().chain(std::iter::repeat_n(-100, fill)));
    }
    let shape = [batch.len() as i64, t as i64];
    let make = |v: &[i64]| Tensor::from_slice(v).reshape(shape).to(device);
    (make(&ids), make(&mask), make(&labels))
}

/// Per-example losses `[B]` of the right-padded `batch` (dropout off).
pub fn batch_losses(
    model: &dyn CausalModel,
    batch: &[Vec<i64>],
    pad: i64,
    tape: &mut Tape,
) -> Result<Tensor, ModelError> {
    let (ids, mask, labels) = causal_batch(batch, pad, model.device());
    let logits = model.forward(Inputs::ids(&ids).with_mask(&mask), None, false, tape)?;
    causal_lm_losses(&logits, &labels)
}

/// Runs the engine on `batch` with `clipper` and the per-example loop, and compares them. `floor` is
/// the fraction of the whole clipped sum's norm below which a tensor's difference is measured against
/// that floor instead of its own norm (tensors whose exact gradient is zero are pure round-off).
pub fn clip_check(
    model: &dyn CausalModel,
    batch: &[Vec<i64>],
    pad: i64,
    clipper: &Clipper,
    floor: f64,
) -> Result<ClipCheck, ModelError> {
    let trainable = model.trainable();
    let mut tape = Tape::on();
    let losses = batch_losses(model, batch, pad, &mut tape)?;
    let out = clipper.clip(&losses, &tape, &trainable)?;
    drop(tape);
    let per_example_norms: Vec<f64> = Vec::try_from(out.norms.to_kind(Kind::Double))?;

    let params: Vec<&Tensor> = trainable.iter().map(|(_, t)| t).collect();
    let mut sums: Vec<Tensor> = params.iter().map(|t| t.zeros_like().to_kind(Kind::Double)).collect();
    let mut oracle = Vec::with_capacity(batch.len());
    for row in batch {
        let loss = batch_losses(model, std::slice::from_ref(row), pad, &mut Tape::off())?.sum(None::<Kind>);
        let grads = Tensor::f_run_backward(&[loss], &params, false, false)?;
        let norm = grads
            .iter()
            .map(|g| g.to_kind(Kind::Double).square().sum(Kind::Double).double_value(&[]))
            .sum::<f64>()
            .sqrt();
        if !norm.is_finite() {
            return Err(ModelError::Invalid(
                "the per-example loop found a non-finite gradient norm: check the checkpoint for NaN/Inf weights"
                    .into(),
            ));
        }
        let factor = (clipper.max_grad_norm / (norm + clipper.stability)).min(1.0);
        for (s, g) in sums.iter_mut().zip(&grads) {
            *s += g.to_kind(Kind::Double) * factor;
        }
        oracle.push(norm);
    }
    let max_rel_diff_norms = per_example_norms
        .iter()
        .zip(&oracle)
        .map(|(a, b)| (a - b).abs() / b.max(f64::MIN_POSITIVE))
        .fold(0.0, f64::max);
    let total = sums.iter().map(|s| s.square().sum(Kind::Double).double_value(&[])).sum::<f64>().sqrt();
    let (mut max_rel_diff_grad, mut worst_tensor) = (0.0f64, String::new());
    for ((name, g), o) in out.grads.iter().zip(&sums) {
        let diff = (g.to_kind(Kind::Double) - o).norm().double_value(&[]);
        let rel = diff / o.norm().double_value(&[]).max(floor * total).max(f64::MIN_POSITIVE);
        if worst_tensor.is_empty() || rel > max_rel_diff_grad {
            max_rel_diff_grad = rel;
            worst_tensor = name.clone();
        }
    }
    Ok(ClipCheck {
        per_example_norms,
        oracle_per_example_norms: oracle,
        max_rel_diff_norms,
        max_rel_diff_grad,
        worst_tensor,
        grads: out.grads,
        norms: out.norms,
    })
}
