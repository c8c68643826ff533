//! Phase 2 of clipping: per-example squared gradient norms ‖∇L_i‖² (Li et al. 2022, Sec. 4, Eq. for
//! ghost norms), by mode: from the records' (input, output-gradient) pairs (`bk`, `ghost`) or from the
//! instantiated per-example gradients (`naive`). Tied variables add the cross term 2⟨∇_i^(1), ∇_i^(2)⟩,
//! exact through the Gram form of the two owners' factors.

use tch::{Kind, Tensor};

use super::plan::ClipPlan;
use super::ClipMode;
use crate::engine::layers::{gram, per_example_sq_sum, NormMethod};
use crate::engine::EngineError;

/// Per-example squared norms of one batch.
pub(crate) struct SquaredNorms {
    /// ‖∇L_i‖² over all trainable variables, `[B]`.
    pub total: Tensor,
    /// One `[B]` per active record: the squared norm of that record's trainable parameters (a tied
    /// variable counts with its first owner in `naive` mode and with each owner otherwise; per-layer
    /// clipping, the only reader, refuses ties).
    pub per_layer: Vec<Tensor>,
    /// `naive` only: one per-example gradient `[B, …variable shape]` per trainable variable.
    pub per_example: Option<Vec<Tensor>>,
}

impl SquaredNorms {
    /// `grad_outputs[a]` is ∂(Σ_i L_i)/∂(output of active record a), shaped like that output `[B, …]`.
    /// Refuses NaN or infinite norms, naming the layer.
    pub fn compute(
        plan: &ClipPlan<'_>,
        grad_outputs: &[Tensor],
        mode: ClipMode,
        method: NormMethod,
    ) -> Result<Self, EngineError> {
        let norms = match mode {
            ClipMode::Naive => Self::instantiated(plan, grad_outputs)?,
            ClipMode::Bk | ClipMode::Ghost => Self::from_records(plan, grad_outputs, method)?,
        };
        // The tied weights' cross terms are added after the per-layer checks: check the total too.
        if !all_finite(&norms.total) {
            return Err(EngineError::NonFiniteNorm("the cross terms of tied weights".into()));
        }
        Ok(norms)
    }

    /// ‖∇L_i‖² = Σ_k ‖g_{i,k}‖² with g_k the per-example gradient of variable k (both owners' parts summed
    /// for a tie).
    fn instantiated(plan: &ClipPlan<'_>, grad_outputs: &[Tensor]) -> Result<Self, EngineError> {
        let by_record: Vec<Vec<Tensor>> =
            plan.active.iter().zip(grad_outputs).map(|(a, g)| a.record.per_example_grads(g)).collect();
        let mut total = plan.zeros.copy();
        let mut per_layer: Vec<Tensor> = plan.active.iter().map(|_| plan.zeros.copy()).collect();
        let mut per_example = Vec::with_capacity(plan.slots.len());
        for owners in &plan.slots {
            let g = owners
                .iter()
                .map(|o| by_record[o.active][o.param].shallow_clone())
                .reduce(|a, b| a + b)
                .expect("the plan gives every variable an owner");
            let s = per_example_sq_sum(&g);
            if !all_finite(&s) {
                return Err(EngineError::NonFiniteNorm(plan.layer(owners[0].active).to_string()));
            }
            total += &s;
            per_layer[owners[0].active] += s;
            per_example.push(g);
        }
        Ok(Self { total, per_layer, per_example: Some(per_example) })
    }

    /// Each active record's own terms from its (input, output-gradient) pair, then the tied variables'
    /// cross terms 2 Σ_{t,s} (u_t·u'_s)(v_t·v'_s).
    fn from_records(plan: &ClipPlan<'_>, grad_outputs: &[Tensor], method: NormMethod) -> Result<Self, EngineError> {
        let mut total = plan.zeros.copy();
        let mut per_layer = Vec::with_capacity(plan.active.len());
        for (a, g) in plan.active.iter().zip(grad_outputs) {
            let norms = a.record.sq_norms(g, method);
            let layer_sq = a.params.iter().map(|&p| norms[p].shallow_clone()).fold(total.zeros_like(), |x, y| x + y);
            if !all_finite(&layer_sq) {
                return Err(EngineError::NonFiniteNorm(a.record.layer().to_string()));
            }
            total += &layer_sq;
            per_layer.push(layer_sq);
        }
        for (o1, o2) in plan.ties() {
            let factors = |o: super::plan::Owner| {
                plan.active[o.active]
                    .record
                    .factors(&grad_outputs[o.active], o.param)
                    .expect("the plan checked factorable")
            };
            let ((u1, v1), (u2, v2)) = (factors(o1), factors(o2));
            let cross = (gram(&u1, &u2) * gram(&v1, &v2)).sum_dim_intlist([1i64, 2].as_slice(), false, None::<Kind>);
            total += cross * 2.0;
        }
        Ok(Self { total, per_layer, per_example: None })
    }

    /// ‖∇L_i‖, `[B]`.
    pub fn norms(&self) -> Tensor {
        self.total.clamp_min(0.0).sqrt()
    }
}

fn all_finite(x: &Tensor) -> bool {
    bool::try_from(x.isfinite().all()).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::clip::tests::{grads_to_outputs, inputs, linear, recorded};
    use crate::engine::DpLayer;

    /// One linear layer, loss_i = Σ y_i: ∇W_i = Σ_t 1 a_tᵀ and ∇b_i = T·1, so the norms have a closed form.
    #[test]
    fn every_mode_gives_the_closed_form_norm_of_a_linear_layer() {
        let (head, x) = (linear("lm_head"), inputs(3));
        let (tape, losses) = recorded(&head, &x);
        let trainable = head.parameters();
        let plan = ClipPlan::new(tape.records(), &trainable, &losses, super::super::ClipStyle::Flat).unwrap();
        let g = grads_to_outputs(&plan, &losses);
        // ‖∇W_i‖² = out · ‖Σ_t a_t‖², ‖∇b_i‖² = out · T², with out = 4, T = 2.
        let summed = x.sum_dim_intlist([1i64].as_slice(), false, None::<Kind>);
        let want = per_example_sq_sum(&summed) * 4.0 + 16.0;
        for (mode, method) in [
            (ClipMode::Bk, NormMethod::Ghost),
            (ClipMode::Bk, NormMethod::Instantiate),
            (ClipMode::Ghost, NormMethod::Auto),
            (ClipMode::Naive, NormMethod::Auto),
        ] {
            let sq = SquaredNorms::compute(&plan, &g, mode, method).unwrap();
            let err = f64::try_from((&sq.total - &want).abs().max()).unwrap();
            assert!(err < 1e-12, "{mode:?}/{method:?}: {err}");
            assert_eq!(sq.per_layer.len(), 1);
            assert!(f64::try_from((&sq.per_layer[0] - &want).abs().max()).unwrap() < 1e-12);
            assert_eq!(sq.per_example.as_ref().map(Vec::len), (mode == ClipMode::Naive).then_some(2));
            if let Some(pe) = &sq.per_example {
                assert_eq!(pe[0].size(), [3, 4, 4]); // [B, out, in]
                assert_eq!(pe[1].size(), [3, 4]); // [B, out]
            }
        }
    }

    #[test]
    fn a_nan_norm_names_its_layer_in_every_mode() {
        let (head, x) = (linear("lm_head"), inputs(2));
        let (tape, losses) = recorded(&head, &x);
        let losses = losses * f64::NAN;
        let trainable = head.parameters();
        let plan = ClipPlan::new(tape.records(), &trainable, &losses, super::super::ClipStyle::Flat).unwrap();
        let g = grads_to_outputs(&plan, &losses);
        for mode in [ClipMode::Bk, ClipMode::Ghost, ClipMode::Naive] {
            let err = SquaredNorms::compute(&plan, &g, mode, NormMethod::Auto).err().unwrap();
            assert!(matches!(err, EngineError::NonFiniteNorm(ref l) if l == "lm_head"), "{mode:?}: {err}");
        }
    }
}
