//! One private step over a logical batch (Li et al. 2022, Alg. 1 with ghost clipping):
//! physical micro-batches are clipped one by one and their clipped sums accumulated ([`ClippedSum`]);
//! then, once per logical batch, Gaussian noise is added and the sum divided by the expected batch size
//! ([`release`]), the accountant's history gets the step's event, and the optimizer may apply it.
//! Memory is bounded by the physical batch: only the running sums outlive a micro-batch.

use tch::{Kind, Tensor};

use super::clip::ClipOutput;
use super::noise::GaussianNoise;
use super::sampler::BatchSampler;
use super::EngineError;
use crate::accounting::{AccountantKind, Accountants, Event, History};

/// Running clipped sums of one logical batch, with the per-example norms seen so far.
///
/// The first micro-batch's gradients become the sums (no zero-filled buffers of the model's size are
/// allocated and added to); later micro-batches are added in place.
#[derive(Debug)]
pub struct ClippedSum {
    sums: Vec<(String, Tensor)>,
    norms: Vec<f64>,
    owned: bool,
}

/// Per-step diagnostics of clipping and noise.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct StepDiagnostics {
    /// Examples in the logical batch.
    pub examples: usize,
    /// Mean, median and max per-example gradient norm (0 for an empty batch).
    pub norm_mean: f64,
    /// Median per-example norm.
    pub norm_median: f64,
    /// Largest per-example norm.
    pub norm_max: f64,
    /// Fraction of examples whose gradient was scaled down (‖g_i‖ > C).
    pub clipped_fraction: f64,
    /// Expected noise norm σC·sqrt(P) over the norm of the clipped sum (∞ for an empty sum).
    pub noise_to_signal: f64,
}

impl ClippedSum {
    /// Zero sums shaped like the trainable parameters (an empty Poisson batch releases noise only). The
    /// zeros are broadcast views of one scalar until the first micro-batch arrives.
    pub fn zeros(trainable: &[(String, Tensor)]) -> Self {
        let sums = trainable
            .iter()
            .map(|(n, t)| {
                let kind = super::layers::accumulation_kind(t.kind());
                (n.clone(), Tensor::zeros([], (kind, t.device())).expand(t.size(), true))
            })
            .collect();
        Self { sums, norms: Vec::new(), owned: false }
    }

    /// Adds one micro-batch's clipped sums (taking its gradients).
    pub fn add(&mut self, part: ClipOutput) -> Result<(), EngineError> {
        if part.grads.len() != self.sums.len() || part.grads.iter().zip(&self.sums).any(|((a, _), (b, _))| a != b) {
            return Err(EngineError::Invalid("micro-batch gradients do not match the parameters (names/order)".into()));
        }
        if let Some(((name, _), _)) = part.grads.iter().zip(&self.sums).find(|((_, g), (_, s))| g.size() != s.size()) {
            return Err(EngineError::Invalid(format!("micro-batch gradient `{name}` has the wrong shape")));
        }
        self.norms.extend(Vec::<f64>::try_from(&part.norms.to_kind(Kind::Double)).map_err(EngineError::Backward)?);
        if self.owned {
            for ((_, acc), (_, g)) in self.sums.iter_mut().zip(&part.grads) {
                *acc += g;
            }
        } else {
            // Owned from now on and added to in place: a view (e.g. a broadcast) becomes its own buffer.
            self.sums =
                part.grads.into_iter().map(|(n, g)| (n, if g.is_contiguous() { g } else { g.contiguous() })).collect();
            self.owned = true;
        }
        Ok(())
    }

    /// Examples accumulated.
    pub fn examples(&self) -> usize {
        self.norms.len()
    }

    /// Adds `value` to element `offset` (row-major) of sum `tensor`: a white-box audit's canary, whose
    /// clipped gradient is `value` along one coordinate ([`crate::accounting::audit`]).
    pub fn add_at(&mut self, tensor: usize, offset: i64, value: f64) -> Result<(), EngineError> {
        let Some((name, sum)) = self.sums.get_mut(tensor) else {
            return Err(EngineError::Invalid(format!("no sum number {tensor} (there are {})", self.sums.len())));
        };
        if offset < 0 || offset >= sum.numel() as i64 {
            return Err(EngineError::Invalid(format!("offset {offset} outside `{name}` ({} elements)", sum.numel())));
        }
        if !self.owned {
            // The zero sums are broadcast views: give every one its own buffer before writing.
            self.sums = self.sums.iter().map(|(n, t)| (n.clone(), t.contiguous().copy())).collect();
            self.owned = true;
        }
        let mut element = self.sums[tensor].1.view([-1]).narrow(0, offset, 1);
        let _ = element.f_add_scalar_(value)?;
        Ok(())
    }

    /// The accumulated sums.
    pub fn sums(&self) -> &[(String, Tensor)] {
        &self.sums
    }

    /// The accumulated sums, given up (the release overwrites them in place).
    fn into_sums(self) -> Vec<(String, Tensor)> {
        self.sums
    }

    /// Diagnostics for clipping norm C and noise multiplier σ.
    pub fn diagnostics(&self, max_grad_norm: f64, noise_multiplier: f64) -> StepDiagnostics {
        let mut sorted = self.norms.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let params: i64 = self.sums.iter().map(|(_, t)| t.numel() as i64).sum();
        let signal: f64 =
            self.sums.iter().map(|(_, t)| t.square().sum(Kind::Double).double_value(&[])).sum::<f64>().sqrt();
        StepDiagnostics {
            examples: n,
            norm_mean: if n > 0 { sorted.iter().sum::<f64>() / n as f64 } else { 0.0 },
            norm_median: if n > 0 { sorted[n / 2] } else { 0.0 },
            norm_max: sorted.last().copied().unwrap_or(0.0),
            clipped_fraction: if n > 0 {
                sorted.iter().filter(|&&x| x > max_grad_norm).count() as f64 / n as f64
            } else {
                0.0
            },
            noise_to_signal: noise_multiplier * max_grad_norm * (params as f64).sqrt() / signal,
        }
    }
}

/// A budget the run must not exceed: checked before each step is released.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Target ε.
    pub epsilon: f64,
    /// δ.
    pub delta: f64,
    /// Which accountant decides (its sound bound: RDP ε or PRV upper); GDP is refused.
    pub accountant: AccountantKind,
}

/// Releases one logical batch: adds N(0, σ²C²), divides by the sampler's expected batch size, and appends
/// the step's event (σ, the sampler's sampling) to `history`. With a `budget`, fails closed — before
/// anything is released or recorded — when the step would take ε above it. Takes the sums: they are
/// overwritten by the release.
#[allow(clippy::too_many_arguments)]
pub fn release(
    sum: ClippedSum,
    noise: &GaussianNoise,
    noise_multiplier: f64,
    max_grad_norm: f64,
    sampler: &BatchSampler,
    step: u64,
    history: &mut History,
    budget: Option<(&Budget, &Accountants)>,
) -> Result<Vec<(String, Tensor)>, EngineError> {
    let event = Event::new(noise_multiplier, sampler.sampling(), 1).map_err(|e| EngineError::Invalid(e.to_string()))?;
    let mut next = history.clone();
    next.push(event).map_err(|e| EngineError::Invalid(e.to_string()))?;
    if let Some((b, accountants)) = budget {
        if b.accountant == AccountantKind::Gdp {
            return Err(EngineError::Invalid(
                "the gdp accountant is an approximation that can under-estimate epsilon; enforce the budget with rdp or prv".into(),
            ));
        }
        let eps = accountants.epsilon(b.accountant, &next, b.delta).map_err(|e| EngineError::Invalid(e.to_string()))?;
        if eps > b.epsilon {
            return Err(EngineError::BudgetExceeded {
                step,
                epsilon: eps,
                target: b.epsilon,
                accountant: b.accountant.name(),
            });
        }
    }
    // The sums become the release in place: no second model-sized buffer at the step's peak.
    let released =
        noise.privatize_owned(sum.into_sums(), noise_multiplier, max_grad_norm, sampler.expected_batch_size(), step)?;
    *history = next;
    Ok(released)
}
