//! Phase 4 of clipping: the clipped sum Σ_i c_i ∇L_i per trainable variable, by mode: from the
//! records' weighted gradients (`bk`, Bu et al. 2023), from a second backward pass on Σ_i c_i L_i
//! (`ghost`, Li et al. 2022, Sec. 4), or from the instantiated per-example gradients (`naive`).

use tch::{Kind, Tensor};

use super::factors::ClipFactors;
use super::norms::SquaredNorms;
use super::plan::ClipPlan;
use super::ClipMode;
use crate::engine::EngineError;

/// Σ_i c_i ∇L_i for each trainable variable, in the plan's slot order, shaped like the variable.
///
/// `grad_outputs` as in [`SquaredNorms::compute`], given up: `bk` drops each as soon as its record's
/// weighted gradients are formed; `losses` `[B]` and `trainable` as given to the clipper (`ghost`
/// differentiates Σ_i c_i L_i again, so its graph must still be alive).
pub(crate) fn clipped_sum(
    mode: ClipMode,
    plan: &ClipPlan<'_>,
    grad_outputs: Vec<Tensor>,
    sq: &SquaredNorms,
    factors: &ClipFactors,
    losses: &Tensor,
    trainable: &[(String, Tensor)],
) -> Result<Vec<Tensor>, EngineError> {
    let grads = match mode {
        ClipMode::Bk => bk_sum(plan, grad_outputs, factors),
        ClipMode::Ghost => {
            drop(grad_outputs);
            ghost_sum(factors, losses, trainable)?
        }
        ClipMode::Naive => {
            drop(grad_outputs);
            naive_sum(plan, sq, factors)
        }
    };
    Ok(grads.into_iter().map(|g| g.detach()).collect())
}

/// Each record's Σ_i c_i ∇_i from its (input, output-gradient) pair; a tie sums its two owners' parts.
///
/// What book-keeping holds over non-private training, and why (issue 20 part 2). Through the backward pass: each
/// recorded layer's input A `[B, T, d_in]` (the autograd graph saves it too, but frees it once the pass is below
/// the layer; the tape keeps it until the weighted gradients are formed) and, as the pass goes down, each layer's
/// output gradient G; not the layer outputs (the tape holds one-element stand-ins, [`crate::engine::layers`]'
/// `probed`), and no parameter gradients (non-private training accumulates them, the model's size, during its
/// pass). After it, G of every record, until the clipping factors are known — they need every record's norm, and G
/// is the smallest form the weighted gradient Gᵀ·diag(c)·A can be formed from for any c (per-example gradients are
/// `[B, d_out, d_in]`, larger whenever T < d_in). Here the records are taken largest G first (the head's logits
/// gradient, 206 MB for GPT-2 small at 8 × 128) and each G is dropped as soon as its weighted gradients exist, so
/// the clipped sum (the size of the model) grows while the Gs shrink, instead of both being held at once at the
/// end. A tied variable's second part is added into the first in place and dropped at once (records return fresh
/// tensors, [`crate::engine::DpRecord::weighted_grads`]): the sum of a tie never exists next to both of its parts
/// (GPT-2's wte/lm_head: 154 MB each).
fn bk_sum(plan: &ClipPlan<'_>, grad_outputs: Vec<Tensor>, factors: &ClipFactors) -> Vec<Tensor> {
    // slot_of[record][param]: the trainable variable this part belongs to (None: not trained).
    let mut slot_of: Vec<Vec<Option<usize>>> = plan.active.iter().map(|_| Vec::new()).collect();
    for (slot, owners) in plan.slots.iter().enumerate() {
        for o in owners {
            let row = &mut slot_of[o.active];
            if row.len() <= o.param {
                row.resize(o.param + 1, None);
            }
            row[o.param] = Some(slot);
        }
    }
    let mut order: Vec<usize> = (0..grad_outputs.len()).collect();
    order.sort_by_key(|&a| std::cmp::Reverse(grad_outputs[a].numel()));
    let mut grad_outputs: Vec<Option<Tensor>> = grad_outputs.into_iter().map(Some).collect();
    let mut sums: Vec<Option<Tensor>> = plan.slots.iter().map(|_| None).collect();
    for a in order {
        let g = grad_outputs[a].take().expect("each output gradient is used once");
        let parts = plan.active[a].record.weighted_grads(&g, &factors.per_record[a]);
        drop(g);
        for (param, part) in parts.into_iter().enumerate() {
            let Some(slot) = slot_of[a].get(param).copied().flatten() else { continue };
            match &mut sums[slot] {
                Some(sum) => {
                    let _ = sum.g_add_(&part);
                }
                empty => *empty = Some(part),
            }
        }
    }
    sums.into_iter().map(|s| s.expect("the plan gives every variable an owner")).collect()
}

/// ∇ of Σ_i c_i L_i: one factor per example (per-layer clipping is refused with ghost when the clipper
/// is built).
fn ghost_sum(
    factors: &ClipFactors,
    losses: &Tensor,
    trainable: &[(String, Tensor)],
) -> Result<Vec<Tensor>, EngineError> {
    let weighted_loss = (losses * factors.reported.detach()).sum(None::<Kind>);
    let params: Vec<&Tensor> = trainable.iter().map(|(_, t)| t).collect();
    Ok(Tensor::f_run_backward(&[weighted_loss], &params, false, false)?)
}

/// Σ_i c_i g_i from the instantiated per-example gradients `[B, …]`.
fn naive_sum(plan: &ClipPlan<'_>, sq: &SquaredNorms, factors: &ClipFactors) -> Vec<Tensor> {
    let per_example = sq.per_example.as_ref().expect("naive norms keep the per-example gradients");
    plan.slots
        .iter()
        .zip(per_example)
        .map(|(owners, g)| {
            let shape: Vec<i64> = g.size()[1..].to_vec();
            let f = &factors.per_record[owners[0].active];
            Tensor::einsum("bn,b->n", &[&g.reshape([plan.batch, -1]), f], None::<i64>).reshape(shape)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::clip::tests::{grads_to_outputs, inputs, linear, recorded, sum_per_example};
    use crate::engine::layers::NormMethod;
    use crate::engine::{ClipStyle, DpLayer, Tape};

    /// With factors (1, 0, ½) the clipped sum is ∇L_0 + ½ ∇L_2, computed here from per-example backward
    /// passes; every mode must give it.
    #[test]
    fn every_mode_sums_the_weighted_per_example_gradients() {
        let (head, x) = (linear("lm_head"), inputs(3));
        let f = Tensor::from_slice(&[1.0, 0.0, 0.5]);
        let trainable = head.parameters();
        let want: Vec<Tensor> = {
            let mut tape = Tape::off();
            let losses = sum_per_example(&head.forward(&x, &mut tape));
            let params: Vec<&Tensor> = trainable.iter().map(|(_, t)| t).collect();
            Tensor::run_backward(&[(losses * &f).sum(Kind::Double)], &params, false, false)
        };
        for mode in [ClipMode::Bk, ClipMode::Ghost, ClipMode::Naive] {
            let (tape, losses) = recorded(&head, &x);
            let plan = ClipPlan::new(tape.records(), &trainable, &losses, ClipStyle::Flat).unwrap();
            let g = grads_to_outputs(&plan, &losses);
            let sq = SquaredNorms::compute(&plan, &g, mode, NormMethod::Auto).unwrap();
            let factors = ClipFactors { per_record: vec![f.shallow_clone()], reported: f.shallow_clone() };
            let got = clipped_sum(mode, &plan, g, &sq, &factors, &losses, &trainable).unwrap();
            assert_eq!(got.len(), 2);
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.size(), w.size());
                let err = f64::try_from((g - w).abs().max()).unwrap();
                assert!(err < 1e-12, "{mode:?}: {err}");
            }
        }
    }
}
