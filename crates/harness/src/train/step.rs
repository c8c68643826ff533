//! One training step (Li et al. 2022, Alg. 1): sample a logical batch, take the clipped sum of its
//! per-example gradients in physical micro-batches (or the plain mean gradient without DP), release it
//! with noise N(0, σ²C²) — refused before release when it would exceed the budget — and update.

use anyhow::Result;
use dp_core::accounting::{AccountantKind, Accountants};
use dp_core::engine::{release, EngineError, StepDiagnostics, Tape};
use serde_json::{json, Value};

use super::gradients;
use super::objective::Objective;
use super::setup::RunState;

/// What a step did.
pub(super) enum StepOutcome {
    /// The update was released and applied.
    Released(StepRecord),
    /// Releasing it would take ε above the target: nothing was released, training stops.
    StoppedAtBudget(String),
}

/// What a released step reports (one line of `metrics.jsonl`).
pub(super) struct StepRecord {
    /// Mean training loss over the logical batch (NaN for an empty Poisson batch).
    pub loss: f64,
    /// Examples in the logical batch.
    pub examples: usize,
    /// ε so far by RDP (private runs).
    pub epsilon_rdp: Option<f64>,
    /// Clipping statistics (private runs; not covered by ε).
    pub clipping: Option<StepDiagnostics>,
}

impl StepRecord {
    /// The metrics line of step `step`.
    pub fn line(&self, step: u64, lr: f64, step_s: f64) -> Result<Value> {
        let mut line = json!({
            "step": step, "loss": self.loss, "examples": self.examples, "lr": lr, "step_s": step_s,
        });
        if let (Some(e), Some(diag)) = (self.epsilon_rdp, self.clipping) {
            line["epsilon_rdp"] = json!(e);
            line["clipping"] = serde_json::to_value(diag)?;
            // Loss, batch size and clipping statistics are computed from the private batch without noise.
            line["covered_by_epsilon"] = json!(false);
        }
        Ok(line)
    }
}

/// Takes step `step` (1-based). Dropout masks depend on (`seed`, step) only, so that a resumed run repeats
/// them; `physical` examples go through the model at a time.
pub(super) fn take_step(
    state: &mut RunState,
    objective: &dyn Objective,
    step: u64,
    seed: u64,
    physical: usize,
) -> Result<StepOutcome> {
    tch::manual_seed((seed.wrapping_mul(1_000_003).wrapping_add(step)) as i64);
    let batch = objective.order_for_padding(state.sampler.next_batch());
    objective.prepare_step();
    let mut losses = |chunk: &[u64], tape: &mut Tape| objective.losses(chunk, true, tape);
    let (grads, loss_sum, clipping) = match &state.dp {
        Some(dp) => {
            let (sum, loss_sum) = gradients::clipped_sum(&dp.clipper, &state.trainable, &batch, physical, &mut losses)?;
            let diag = sum.diagnostics(dp.clipper.max_grad_norm, dp.sigma);
            let accountants = Accountants::default();
            let budget = dp.budget.as_ref().map(|b| (b, &accountants));
            let released = release(
                sum,
                &dp.noise,
                dp.sigma,
                dp.clipper.max_grad_norm,
                &state.sampler,
                step,
                &mut state.history,
                budget,
            );
            match released {
                Ok(g) => (g, loss_sum, Some(diag)),
                Err(EngineError::BudgetExceeded { step, epsilon, target, accountant }) => {
                    return Ok(StepOutcome::StoppedAtBudget(format!(
                        "stopped before step {step}: it would bring ε to {epsilon:.4} ({accountant}), above the target {target}"
                    )))
                }
                Err(e) => return Err(e.into()),
            }
        }
        None => {
            let (g, loss_sum) = gradients::mean_gradient(&state.trainable, &batch, physical, &mut losses)?;
            (g, loss_sum, None)
        }
    };
    state.optimizer.step(&state.updated, &objective.reconstruct(grads)?)?;
    let epsilon_rdp = state
        .dp
        .as_ref()
        .and_then(|d| Accountants::default().epsilon(AccountantKind::Rdp, &state.history, d.delta).ok());
    let loss = if batch.is_empty() { f64::NAN } else { loss_sum / batch.len() as f64 };
    Ok(StepOutcome::Released(StepRecord { loss, examples: batch.len(), epsilon_rdp, clipping }))
}
