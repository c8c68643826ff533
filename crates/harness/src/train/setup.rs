//! Start or resume a run: the DP settings resolved from the config (σ calibrated to the target ε over the
//! planned steps, Li et al. 2022, Sec. 3), the sampler, the optimiser, and — when resuming — every check
//! that the checkpoint belongs to this config and this data before its state is restored.

use std::path::Path;

use anyhow::{bail, Context, Result};
use dp_core::accounting::{
    default_delta, delta_warning, steps_for_epochs, AccountantKind, Accountants, History, Sampling,
};
use dp_core::engine::{
    keys, BatchSampler, Budget, Clipper, DpOptimizer, GaussianNoise, Key, LrSchedule, NoiseSeed, NormMethod,
    OptimizerKind,
};
use tch::Tensor;

use super::averaging::IterateAverage;
use super::checkpoint::{self, Restored, TrainState};
use super::objective::Objective;
use super::secrets;
use super::Launch;
use crate::exit::BadInput;
use crate::run_config::{
    NoiseLevel, NoiseSeedMode, OptimizerName, Privacy, PrivacySection, RunConfig, RunLength, SamplerName, Schedule,
};

/// The DP settings resolved for a run.
pub(crate) struct Dp {
    pub clipper: Clipper,
    pub noise: GaussianNoise,
    /// σ.
    pub sigma: f64,
    pub delta: f64,
    /// The accountant that calibrated σ and enforces the budget.
    pub accountant: AccountantKind,
    pub budget: Option<Budget>,
    /// The warning when δ ≥ 1/n (trained only with `privacy.allow_large_delta: true`).
    pub large_delta: Option<String>,
}

/// What the loop carries from step to step.
pub(super) struct RunState {
    /// Training examples n.
    pub n: usize,
    /// Planned steps.
    pub steps: u64,
    /// Steps already done (0, or the checkpoint's step).
    pub start_step: u64,
    pub sampler: BatchSampler,
    pub optimizer: DpOptimizer,
    /// The privacy ledger.
    pub history: History,
    /// `None` for non-private training.
    pub dp: Option<Dp>,
    /// Variables whose gradients are taken (clipped and noised).
    pub trainable: Vec<(String, Tensor)>,
    /// Variables the optimiser updates (differs from `trainable` for RGP).
    pub updated: Vec<(String, Tensor)>,
    /// Parameters in `updated` / in `trainable`.
    pub trainable_count: i64,
    pub gradient_count: i64,
    /// [`super::config_hash`] of the config.
    pub config_hash: String,
    /// SHA-256 of the featurised training set ([`super::fingerprint`]).
    pub data_fingerprint: String,
    /// Cost of the run so far across segments (the start and each resume).
    pub cost: Cost,
    /// The iterate average (`optimization.ema_decay`).
    pub average: Option<IterateAverage>,
}

/// Wall time and peak memory over a run's segments: what earlier segments recorded in their last
/// checkpoint (work after it, redone by the resume, is not counted twice) plus this one.
pub(super) struct Cost {
    /// When this segment started.
    started: std::time::Instant,
    earlier_s: f64,
    earlier_peak: Option<u64>,
    earlier_segments: u32,
}

impl Cost {
    fn new() -> Self {
        Self { started: std::time::Instant::now(), earlier_s: 0.0, earlier_peak: None, earlier_segments: 0 }
    }

    /// Wall time of all segments, in seconds.
    pub fn wall_time_s(&self) -> f64 {
        self.earlier_s + self.started.elapsed().as_secs_f64()
    }

    /// The largest resident-set high-water mark of all segments.
    pub fn peak_memory_bytes(&self) -> Option<u64> {
        self.earlier_peak.into_iter().chain(super::peak_rss_bytes()).max()
    }

    /// Segments, this one included.
    pub fn segments(&self) -> u32 {
        self.earlier_segments + 1
    }
}

/// The first 16 hex digits of a fingerprint (enough to tell two apart in a message).
fn short(fingerprint: &str) -> &str {
    &fingerprint[..fingerprint.len().min(16)]
}

impl RunState {
    /// Builds the run's state from `config`, resuming from the checkpoint in `out` when `resume` is set
    /// and one exists. Refuses an empty training set, parameters no DP layer owns, and a checkpoint made
    /// with other data (n, q, the data fingerprint), another σ or another config, or whose ledger does not
    /// match its step.
    pub fn start_or_resume(config: &RunConfig, objective: &dyn Objective, launch: &Launch) -> Result<Self> {
        let (out, resume) = (launch.out, launch.resume);
        let o = &config.optimization;
        let n = objective.train_len();
        if n == 0 {
            return Err(BadInput("the training set is empty (after dropping over-long examples)".into()).into());
        }
        let trainable = objective.trainable();
        dp_core::engine::check_ownership(&objective.layers(), &trainable)?;
        let updated = objective.updated();
        let trainable_count: i64 = updated.iter().map(|(_, t)| t.numel() as i64).sum();
        let gradient_count: i64 = trainable.iter().map(|(_, t)| t.numel() as i64).sum();
        log::info!("{} training examples; {} trainable parameters in {} tensors", n, trainable_count, updated.len());
        if gradient_count != trainable_count {
            log::info!(
                "gradients are taken (clipped and noised) in a space of {gradient_count} parameters (method {})",
                config.method.name
            );
        }
        let data_fingerprint = objective.fingerprint();
        let restored = if resume && checkpoint::exists(out) { Some(checkpoint::load(out)?) } else { None };
        let config_hash = super::config_hash(config);
        let sampler_key = sampler_key(config, &config_hash, out, restored.is_some())?;
        let sampler = sampler_for(&config.privacy, n, o.batch_size, sampler_key)?;
        let steps = match o.length().map_err(BadInput)? {
            RunLength::Steps(s) => s,
            RunLength::Epochs(e) => steps_for_epochs(e, sampler.sampling().sample_rate())?,
        };
        let dp = match &config.privacy {
            Privacy::Dp(p) => Some(resolve_dp(p, sampler.sampling(), steps, n, o.seed, &config_hash)?),
            Privacy::None => None,
        };
        let optimizer = optimizer_for(config, steps, objective)?;
        let average = o.ema_decay.map(|decay| IterateAverage::new(decay, &updated));
        let mut state = Self {
            n,
            steps,
            start_step: 0,
            sampler,
            optimizer,
            history: History::new(),
            dp,
            trainable,
            updated,
            trainable_count,
            gradient_count,
            config_hash,
            data_fingerprint,
            cost: Cost::new(),
            average,
        };
        if let Some(r) = restored {
            state.resume_from(r, objective, launch)?;
        }
        Ok(state)
    }

    /// Checks the checkpoint against this run, then restores parameters, optimiser, sampler and ledger.
    fn resume_from(&mut self, r: Restored, objective: &dyn Objective, launch: &Launch) -> Result<()> {
        let out = launch.out;
        let q = self.sampler.sampling().sample_rate();
        let sigma = self.dp.as_ref().map(|d| d.sigma);
        let same_sigma = r.state.noise_multiplier.map(f64::to_bits) == sigma.map(f64::to_bits);
        if r.state.dataset_size != self.n || r.state.sample_rate.to_bits() != q.to_bits() || !same_sigma {
            bail!(BadInput(format!(
                "{}: the checkpoint was made with n = {}, q = {}, σ = {:?}; this run has n = {}, q = {q}, σ = {sigma:?} (other data or data directory?): resume refused",
                out.display(),
                r.state.dataset_size,
                r.state.sample_rate,
                r.state.noise_multiplier,
                self.n,
            )));
        }
        if r.state.config_hash != self.config_hash {
            bail!(BadInput(format!(
                "{}: the checkpoint belongs to another config (hash {} vs {}); resume with the config it was started with",
                out.display(),
                r.state.config_hash,
                self.config_hash
            )));
        }
        if r.state.data_fingerprint.as_deref() != Some(self.data_fingerprint.as_str()) {
            let files: Vec<String> = launch.train_files.iter().map(|f| f.display().to_string()).collect();
            bail!(BadInput(format!(
                "{}: the training data differs from the data the checkpoint was trained on (fingerprint {} now, {} in the checkpoint); this run read {}. A resume must train on the same data (same file, data directory and task settings) or the privacy ledger would not describe it: resume refused",
                out.display(),
                short(&self.data_fingerprint),
                r.state.data_fingerprint.as_deref().map_or("none (made by an older dpft)", short),
                if files.is_empty() { "no files".to_string() } else { files.join(", ") },
            )));
        }
        checkpoint::restore_parameters(&objective.parameters(), &r.parameters)?;
        self.optimizer.load_state(&self.updated, r.state.optimizer_step, &r.optimizer)?;
        if let Some(average) = &mut self.average {
            if r.state.step > 0 {
                average.load(&r.average).with_context(|| format!("resuming {}", out.display()))?;
            }
        }
        self.sampler.set_stream_position(r.state.sampler_position.parse().context("checkpoint sampler position")?);
        if !r.state.history.is_empty() {
            self.history = History::from_json(&r.state.history)?;
        }
        if self.dp.is_some() && self.history.steps() != r.state.step {
            bail!(
                "{}: the checkpoint's ledger has {} steps but its state says {}: it is corrupt",
                out.display(),
                self.history.steps(),
                r.state.step
            );
        }
        self.start_step = r.state.step;
        self.cost.earlier_s = r.state.elapsed_s;
        self.cost.earlier_peak = r.state.peak_memory_bytes;
        self.cost.earlier_segments = r.state.segments.max(1);
        log::info!("resuming from step {} of {}", self.start_step, self.steps);
        Ok(())
    }

    /// Writes the checkpoint after `step` completed steps.
    pub fn save(&self, out: &Path, objective: &dyn Objective, step: u64) -> Result<()> {
        let (opt_step, opt_state) = self.optimizer.state(&self.updated);
        let state = TrainState {
            step,
            optimizer_step: opt_step,
            sampler_position: self.sampler.stream_position().to_string(),
            history: if self.history.steps() == 0 { String::new() } else { self.history.to_json() },
            noise_multiplier: self.dp.as_ref().map(|d| d.sigma),
            config_hash: self.config_hash.clone(),
            dataset_size: self.n,
            sample_rate: self.sampler.sampling().sample_rate(),
            data_fingerprint: Some(self.data_fingerprint.clone()),
            elapsed_s: self.cost.wall_time_s(),
            peak_memory_bytes: self.cost.peak_memory_bytes(),
            segments: self.cost.segments(),
        };
        let average = self.average.as_ref().map(IterateAverage::state).unwrap_or_default();
        checkpoint::save(out, &state, &objective.parameters(), &opt_state, &average)
    }
}

/// The batch sampler's key: in secure mode 256 bits from the OS, kept in the run folder's secrets file
/// (read back when resuming); otherwise derived from `optimization.seed` and the config's hash, so that
/// runs of a sweep differ ([`dp_core::engine::keys`]).
fn sampler_key(config: &RunConfig, config_hash: &str, out: &Path, resuming: bool) -> Result<Key> {
    let secure = matches!(&config.privacy, Privacy::Dp(p) if p.noise_seed == NoiseSeedMode::Secure);
    match (secure, resuming) {
        (true, true) => secrets::read_sampler_key(out),
        (true, false) => {
            let key = keys::os_key();
            std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
            secrets::write(out, &key)?;
            Ok(key)
        }
        (false, _) => Ok(keys::derived_key("dpft/sampler", config.optimization.seed, config_hash)),
    }
}

/// Poisson sampling with q = B/n, or fixed-size batches (`privacy.sampler: fixed_size`, and every
/// non-private run).
fn sampler_for(privacy: &Privacy, n: usize, batch: usize, key: Key) -> Result<BatchSampler> {
    if batch > n {
        return Err(BadInput(format!("optimization.batch_size = {batch} exceeds the {n} training examples")).into());
    }
    let sampler = match privacy {
        Privacy::Dp(p) => p.sampler,
        Privacy::None => SamplerName::FixedSize,
    };
    Ok(match sampler {
        SamplerName::FixedSize => BatchSampler::fixed_size(n as u64, batch as u64, key)?,
        SamplerName::Poisson => BatchSampler::poisson(n as u64, batch as f64 / n as f64, key)?,
    })
}

/// The clipper, the noise, σ (given, or calibrated to the target ε over `steps`), δ and the budget.
pub(crate) fn resolve_dp(
    p: &PrivacySection,
    sampling: Sampling,
    steps: u64,
    n: usize,
    seed: u64,
    config_hash: &str,
) -> Result<Dp> {
    let accountant = p.accountant.kind();
    if !accountant.supports(&sampling) {
        return Err(BadInput(format!(
            "privacy.accountant = {} does not support privacy.sampler = {}; use rdp with fixed_size batches",
            p.accountant, p.sampler
        ))
        .into());
    }
    let delta = p.delta.unwrap_or_else(|| default_delta(n as u64));
    let large_delta = delta_warning(delta, n as u64);
    match &large_delta {
        Some(w) if !p.allow_large_delta => {
            return Err(BadInput(format!(
                "privacy.delta: {w}. A guarantee at such a δ says little, so the run is refused: lower privacy.delta (or leave it out for n^-1.1), or set privacy.allow_large_delta: true to train anyway (privacy.json and summary.json then say so)"
            ))
            .into());
        }
        Some(w) => log::warn!("{w} (privacy.allow_large_delta: true; privacy.json and summary.json say so)"),
        None => {}
    }
    let sigma = match p.noise().map_err(BadInput)? {
        NoiseLevel::Given(s) => s,
        NoiseLevel::Calibrated(eps) => {
            let accountants = Accountants::default();
            let c = dp_core::accounting::calibrate_noise(accountant, &accountants, eps, delta, sampling, steps, 1e-3)?;
            log::info!(
                "noise multiplier σ = {:.6} for ε = {eps} at δ = {delta:e} over {steps} steps ({})",
                c.noise_multiplier,
                accountant.name()
            );
            c.noise_multiplier
        }
    };
    let clipper = Clipper {
        max_grad_norm: p.max_grad_norm,
        stability: 1e-6,
        mode: p.clipping_mode,
        norm_method: NormMethod::Auto,
        style: p.clipping_style,
    }
    .checked()?;
    let noise = GaussianNoise::new(match p.noise_seed {
        NoiseSeedMode::Fixed => NoiseSeed::Fixed(keys::derived_key("dpft/noise", seed, config_hash)),
        NoiseSeedMode::Secure => NoiseSeed::Secure,
    });
    let budget = p.target_epsilon.map(|epsilon| Budget { epsilon, delta, accountant });
    if let (Some(b), NoiseLevel::Given(_)) = (&budget, p.noise().map_err(BadInput)?) {
        check_budget_fits(b, sigma, sampling, steps)?;
    }
    Ok(Dp { clipper, noise, sigma, delta, accountant, budget, large_delta })
}

/// A given σ with a budget: refused when not even the first step fits (the run would end after 0 steps
/// with an untrained model); a warning naming the step the budget will stop at when the planned steps do
/// not all fit.
fn check_budget_fits(b: &Budget, sigma: f64, sampling: Sampling, steps: u64) -> Result<()> {
    let accountants = Accountants::default();
    let epsilon_after = |k: u64| -> Result<f64> {
        let mut h = History::new();
        h.push(dp_core::accounting::Event::new(sigma, sampling, k)?)?;
        Ok(accountants.epsilon(b.accountant, &h, b.delta)?)
    };
    let first = epsilon_after(1)?;
    if first > b.epsilon {
        return Err(BadInput(format!(
            "privacy.noise_multiplier = {sigma} with privacy.target_epsilon = {}: one step already costs ε = {first:.4} ({}, δ = {:e}, q = {}), so no step fits the budget; raise noise_multiplier, or leave it out to calibrate σ to the target",
            b.epsilon,
            b.accountant.name(),
            b.delta,
            sampling.sample_rate()
        ))
        .into());
    }
    if epsilon_after(steps)? > b.epsilon {
        // The last step that fits: ε grows with the steps, so bisect on [1, steps).
        let (mut fits, mut over) = (1, steps);
        while over - fits > 1 {
            let mid = fits + (over - fits) / 2;
            if epsilon_after(mid)? <= b.epsilon {
                fits = mid;
            } else {
                over = mid;
            }
        }
        log::warn!(
            "privacy.target_epsilon = {} with σ = {sigma}: the budget allows {fits} of the {steps} planned steps; the run will stop there (status stopped_at_budget)",
            b.epsilon
        );
    }
    Ok(())
}

/// The run's optimizer; `optimization.head_learning_rate` becomes a learning-rate factor on the objective's
/// head parameters, and is refused when the objective has no classification head.
pub(crate) fn optimizer_for(config: &RunConfig, steps: u64, objective: &dyn Objective) -> Result<DpOptimizer> {
    let o = &config.optimization;
    if o.warmup_steps > steps {
        return Err(BadInput(format!(
            "optimization.warmup_steps = {} exceeds the run's {steps} steps: the learning rate would never reach optimization.learning_rate; lower warmup_steps",
            o.warmup_steps
        ))
        .into());
    }
    let kind = match o.optimizer {
        OptimizerName::Sgd => OptimizerKind::Sgd { momentum: o.momentum },
        OptimizerName::Adamw => OptimizerKind::AdamW { weight_decay: o.weight_decay },
        OptimizerName::Adam => OptimizerKind::Adam,
    };
    let schedule = match o.schedule {
        Schedule::Linear => LrSchedule::Linear { total_steps: steps },
        Schedule::Constant => LrSchedule::Constant,
    };
    let optimizer = DpOptimizer::new(kind, o.learning_rate, schedule, o.warmup_steps)?;
    let Some(head_lr) = o.head_learning_rate else { return Ok(optimizer) };
    let heads = objective.head_names();
    if heads.is_empty() {
        return Err(BadInput(format!(
            "optimization.head_learning_rate = {head_lr}: this run has no classification head to apply it to \
             (it needs task.head classifier or mean_pooled on a sentence-classification task); remove the key"
        ))
        .into());
    }
    let factor = head_lr / o.learning_rate;
    Ok(optimizer.with_lr_factors(heads.into_iter().map(|n| (n, factor)).collect())?)
}
