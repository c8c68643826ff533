//! The gradient of one logical batch, taken in physical micro-batches: what `dpft train` computes at each
//! step and `dpft bench` times, in one place so that the two cannot drift apart.

use anyhow::Result;
use dp_core::engine::{ClippedSum, Clipper, Tape};
use tch::{Kind, Tensor};

/// Per-example losses `[B]` of the examples with these indices (dropout on), recording on the tape.
pub type Losses<'a> = dyn FnMut(&[u64], &mut Tape) -> Result<Tensor> + 'a;

/// Σ_i c_i ∇L_i over the examples of `batch`, `physical` at a time, each micro-batch clipped per example
/// by `clipper` (Li et al. 2022, Alg. 1); and the examples' summed loss. Noise is added by the caller
/// ([`dp_core::engine::release`]), once per logical batch.
pub fn clipped_sum(
    clipper: &Clipper,
    trainable: &[(String, Tensor)],
    batch: &[u64],
    physical: usize,
    losses: &mut Losses,
) -> Result<(ClippedSum, f64)> {
    let mut sum = ClippedSum::zeros(trainable);
    let mut loss_sum = 0.0;
    for chunk in batch.chunks(physical.max(1)) {
        let mut tape = Tape::on();
        let l = losses(chunk, &mut tape)?;
        loss_sum += l.sum(Kind::Double).double_value(&[]);
        sum.add(clipper.clip(&l, &tape, trainable)?)?;
    }
    Ok((sum, loss_sum))
}

/// The mean gradient (non-private) of the examples of `batch`, `physical` at a time, and their summed loss.
pub fn mean_gradient(
    trainable: &[(String, Tensor)],
    batch: &[u64],
    physical: usize,
    losses: &mut Losses,
) -> Result<(Vec<(String, Tensor)>, f64)> {
    let params: Vec<&Tensor> = trainable.iter().map(|(_, t)| t).collect();
    let mut loss_sum = 0.0;
    // The first micro-batch's gradients become the sum; later ones are added in place.
    let mut acc: Option<Vec<Tensor>> = None;
    for chunk in batch.chunks(physical.max(1)) {
        let l = losses(chunk, &mut Tape::off())?;
        loss_sum += l.sum(Kind::Double).double_value(&[]);
        let g = Tensor::f_run_backward(&[l.sum(None::<Kind>)], &params, false, false)?;
        acc = Some(match acc {
            None => g,
            Some(mut a) => {
                a.iter_mut().zip(g).for_each(|(a, g)| *a += g);
                a
            }
        });
    }
    let acc = acc.unwrap_or_else(|| params.iter().map(|p| p.zeros_like()).collect());
    let scale = 1.0 / batch.len().max(1) as f64;
    Ok((trainable.iter().map(|(n, _)| n.clone()).zip(acc.into_iter().map(|a| a * scale)).collect(), loss_sum))
}
