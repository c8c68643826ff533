//! Exponential moving average of the iterates (`optimization.ema_decay`).
//!
//! After step t the average is θ̄_t = θ̄_{t−1} + w_t (θ_t − θ̄_{t−1}) with w_t = (1 − β) / (1 − β^t), which
//! equals the bias-corrected EMA Σ_{s ≤ t} β^(t−s)(1 − β) θ_s / (1 − β^t) (w_1 = 1: the start model gets no
//! weight, as Adam's bias correction gives its first moment none). The iterates θ_t are released (DP-Adam's
//! updates are noised before they are applied, Li et al. 2022, Alg. 1), so the average is post-processing
//! and costs no privacy. Kept in f32 like the parameters; the weights are computed in f64.

use anyhow::{bail, Context, Result};
use tch::Tensor;

/// Prefix of the average's tensors in a checkpoint's `average.safetensors`.
const PREFIX: &str = "ema.";

/// The running average of the optimiser's variables.
pub(super) struct IterateAverage {
    decay: f64,
    average: Vec<(String, Tensor)>,
}

impl IterateAverage {
    /// An average over `updated` (the optimiser's variables), starting from their current values (replaced
    /// by θ_1 at the first update, since w_1 = 1).
    pub fn new(decay: f64, updated: &[(String, Tensor)]) -> Self {
        let average = updated.iter().map(|(n, t)| (n.clone(), t.detach().copy())).collect();
        Self { decay, average }
    }

    /// Weight of iterate `step` (1-based) in the running average.
    pub fn weight(decay: f64, step: u64) -> f64 {
        let exponent = i32::try_from(step).unwrap_or(i32::MAX);
        (1.0 - decay) / (1.0 - decay.powi(exponent))
    }

    /// Folds in the iterate after step `step` (1-based).
    pub fn update(&mut self, updated: &[(String, Tensor)], step: u64) {
        let w = Self::weight(self.decay, step);
        tch::no_grad(|| {
            for ((_, avg), (_, theta)) in self.average.iter_mut().zip(updated) {
                let delta = theta - &*avg;
                let _ = avg.g_add_(&(delta * w));
            }
        });
    }

    /// The average as checkpoint tensors (`ema.<name>`).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        self.average.iter().map(|(n, t)| (format!("{PREFIX}{n}"), t.shallow_clone())).collect()
    }

    /// Restores the average from a checkpoint's tensors; a checkpoint of a run with `ema_decay` has all of
    /// them, so a missing one means the checkpoint is damaged or belongs to another run.
    pub fn load(&mut self, tensors: &[(String, Tensor)]) -> Result<()> {
        tch::no_grad(|| -> Result<()> {
            for (name, avg) in &mut self.average {
                let key = format!("{PREFIX}{name}");
                let saved = tensors
                    .iter()
                    .find(|(n, _)| *n == key)
                    .map(|(_, t)| t)
                    .with_context(|| format!("the checkpoint has no iterate average `{key}`: it is incomplete"))?;
                if saved.size() != avg.size() {
                    bail!("checkpoint tensor `{key}` has shape {:?}, the model {:?}", saved.size(), avg.size());
                }
                avg.copy_(&saved.to_device(avg.device()).to_kind(avg.kind()));
            }
            Ok(())
        })
    }

    /// Writes the average into the variables (before the final evaluation and the saved model).
    pub fn write_into(&self, updated: &[(String, Tensor)]) {
        tch::no_grad(|| {
            for ((_, avg), (_, theta)) in self.average.iter().zip(updated) {
                theta.shallow_clone().copy_(avg);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The running update equals the bias-corrected EMA written out as a sum, computed in f64.
    #[test]
    fn running_average_is_the_bias_corrected_sum() {
        let beta = 0.7;
        let iterates: Vec<f64> = vec![0.5, -1.25, 2.0, 3.5, -0.75, 1.0];
        let theta = Tensor::from_slice(&[0.0f64]);
        let vars = vec![("w".to_string(), theta.shallow_clone())];
        let mut avg = IterateAverage::new(beta, &vars);
        for (i, x) in iterates.iter().enumerate() {
            let _ = theta.shallow_clone().fill_(*x);
            let t = i as u64 + 1;
            avg.update(&vars, t);
            let num: f64 = (1..=t).map(|s| beta.powi((t - s) as i32) * (1.0 - beta) * iterates[s as usize - 1]).sum();
            let expected = num / (1.0 - beta.powi(t as i32));
            let got = avg.average[0].1.double_value(&[0]);
            assert!((got - expected).abs() < 1e-12, "step {t}: {got} vs {expected}");
        }
        avg.write_into(&vars);
        assert_eq!(theta.double_value(&[0]), avg.average[0].1.double_value(&[0]));
    }

    #[test]
    fn first_iterate_gets_all_the_weight_and_the_state_round_trips() {
        assert_eq!(IterateAverage::weight(0.9, 1), 1.0);
        let vars = vec![("a".to_string(), Tensor::from_slice(&[1.0f32, 2.0]))];
        let mut avg = IterateAverage::new(0.9, &vars);
        let _ = vars[0].1.shallow_clone().fill_(4.0);
        avg.update(&vars, 1);
        let state = avg.state();
        assert_eq!(state[0].0, "ema.a");
        let mut other = IterateAverage::new(0.9, &vars);
        let _ = vars[0].1.shallow_clone().fill_(0.0);
        other.load(&state).unwrap();
        assert_eq!(Vec::<f32>::try_from(&other.average[0].1).unwrap(), vec![4.0, 4.0]);
        let err = other.load(&[]).unwrap_err().to_string();
        assert!(err.contains("ema.a"), "{err}");
    }
}
