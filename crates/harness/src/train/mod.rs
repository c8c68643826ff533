//! The training loop of `dpft train`: DP-Adam with per-example clipping (Li et al. 2022, Alg. 1), or
//! non-private training with the same batches and optimiser.
//!
//! Per step: the sampler draws a logical batch (Poisson with q = B/n, or fixed-size); it is processed in
//! physical micro-batches whose clipped sums are accumulated; once per logical batch noise N(0, σ²C²) is
//! added, the sum is divided by the expected batch size, the step is appended to the privacy ledger —
//! refused before release if it would take ε above the target — and the optimiser applies it. Dropout is
//! reseeded from (seed, step) so that a resumed run repeats the same steps bit for bit.
//!
//! Outputs in the run folder: `config.yaml` (the resolved config), `metrics.jsonl` (one line per step and
//! per evaluation), `checkpoints/`, and at the end `summary.json` and `privacy.json`.

pub mod checkpoint;
pub mod generation_eval;
pub mod gradients;
pub mod objective;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use dp_core::accounting::{
    default_delta, delta_warning, steps_for_epochs, AccountantKind, Accountants, History, Sampling,
};
use dp_core::engine::{
    release, BatchSampler, Budget, ClipMode, ClipStyle, Clipper, DpOptimizer, EngineError, GaussianNoise, LrSchedule,
    NoiseSeed, NormMethod, OptimizerKind, Tape,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use crate::exit::BadInput;
use crate::run_config::{Privacy, PrivacySection, RunConfig};
use objective::Objective;

/// The DP settings resolved for a run.
struct Dp {
    clipper: Clipper,
    noise: GaussianNoise,
    sigma: f64,
    delta: f64,
    accountant: AccountantKind,
    budget: Option<Budget>,
}

/// Appends JSON lines to `metrics.jsonl`.
struct Metrics {
    file: std::fs::File,
}

impl Metrics {
    /// Opens `metrics.jsonl`, keeping only the lines of steps ≤ `keep_until` (a resumed run rewrites what
    /// came after its checkpoint).
    fn open(out: &Path, keep_until: u64) -> Result<Self> {
        let path = out.join("metrics.jsonl");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {}", path.display()))),
        };
        let kept: Vec<String> = text
            .lines()
            .filter(|l| {
                serde_json::from_str::<Value>(l).ok().and_then(|v| v["step"].as_u64()).is_some_and(|s| s <= keep_until)
            })
            .map(String::from)
            .collect();
        let mut text = kept.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        let tmp = out.join(".metrics.jsonl.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &path)?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Self { file })
    }

    fn write(&mut self, line: &Value) -> Result<()> {
        writeln!(self.file, "{line}")?;
        Ok(())
    }
}

/// The resident-set high-water mark of this process in bytes (Linux `VmHWM`), if known.
pub fn peak_rss_bytes() -> Option<u64> {
    crate::bench::memory::proc_status_bytes(std::process::id(), "VmHWM:")
}

/// A stable hash of the resolved config (FNV-1a of its YAML), to refuse resuming under another config.
pub fn config_hash(config: &RunConfig) -> String {
    let text = crate::run_config::to_yaml(config);
    let mut h: u64 = 0xcbf29ce484222325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

fn sampler_for(privacy: &Privacy, n: usize, batch: usize, seed: u64) -> Result<BatchSampler> {
    if batch > n {
        return Err(BadInput(format!("optimization.batch_size = {batch} exceeds the {n} training examples")).into());
    }
    let fixed = matches!(privacy, Privacy::Dp(PrivacySection { sampler, .. }) if sampler == "fixed_size")
        || matches!(privacy, Privacy::None);
    Ok(if fixed {
        BatchSampler::fixed_size(n as u64, batch as u64, seed)?
    } else {
        BatchSampler::poisson(n as u64, batch as f64 / n as f64, seed)?
    })
}

fn resolve_dp(p: &PrivacySection, sampling: Sampling, steps: u64, n: usize, seed: u64) -> Result<Dp> {
    let accountant = match p.accountant.as_str() {
        "prv" => AccountantKind::Prv,
        _ => AccountantKind::Rdp,
    };
    if !accountant.supports(&sampling) {
        return Err(BadInput(format!(
            "privacy.accountant = {} does not support privacy.sampler = {}; use rdp with fixed_size batches",
            p.accountant, p.sampler
        ))
        .into());
    }
    let delta = p.delta.unwrap_or_else(|| default_delta(n as u64));
    if let Some(w) = delta_warning(delta, n as u64) {
        log::warn!("{w}");
    }
    let accountants = Accountants::default();
    let sigma = match (p.noise_multiplier, p.target_epsilon) {
        (Some(s), _) => s,
        (None, Some(eps)) => {
            let c = dp_core::accounting::calibrate_noise(accountant, &accountants, eps, delta, sampling, steps, 1e-3)?;
            log::info!(
                "noise multiplier σ = {:.6} for ε = {eps} at δ = {delta:e} over {steps} steps ({})",
                c.noise_multiplier,
                accountant.name()
            );
            c.noise_multiplier
        }
        (None, None) => unreachable!("checked with the config"),
    };
    let mode = match p.clipping_mode.as_str() {
        "ghost" => ClipMode::Ghost,
        "naive" => ClipMode::Naive,
        _ => ClipMode::Bk,
    };
    let style = match p.clipping_style.as_str() {
        "per_layer" => ClipStyle::PerLayer,
        "automatic" => ClipStyle::Automatic,
        _ => ClipStyle::Flat,
    };
    let clipper =
        Clipper { max_grad_norm: p.max_grad_norm, stability: 1e-6, mode, norm_method: NormMethod::Auto, style }
            .checked()?;
    let noise = GaussianNoise::new(if p.noise_seed == "fixed" { NoiseSeed::Fixed(seed) } else { NoiseSeed::Secure });
    let budget = p.target_epsilon.map(|epsilon| Budget { epsilon, delta, accountant });
    Ok(Dp { clipper, noise, sigma, delta, accountant, budget })
}

fn optimizer_for(config: &RunConfig, steps: u64) -> Result<DpOptimizer> {
    let o = &config.optimization;
    let kind = match o.optimizer.as_str() {
        "sgd" => OptimizerKind::Sgd { momentum: o.momentum },
        "adamw" => OptimizerKind::AdamW { weight_decay: o.weight_decay },
        _ => OptimizerKind::Adam,
    };
    let schedule =
        if o.schedule == "linear" { LrSchedule::Linear { total_steps: steps } } else { LrSchedule::Constant };
    Ok(DpOptimizer::new(kind, o.learning_rate, schedule, o.warmup_steps)?)
}

/// ε of `history` under every accountant that applies (GDP flagged as an approximation).
fn epsilons(history: &History, delta: f64) -> Value {
    if history.steps() == 0 {
        return json!({});
    }
    let acc = Accountants::default();
    let mut out = serde_json::Map::new();
    for kind in [AccountantKind::Rdp, AccountantKind::Prv, AccountantKind::Gdp] {
        let value = match kind {
            AccountantKind::Prv => acc
                .prv
                .epsilon(history, delta)
                .map(|r| json!({"upper": r.upper, "lower": r.lower, "estimate": r.estimate})),
            _ => acc.epsilon(kind, history, delta).map(|e| json!(e)),
        };
        // GDP is a central-limit approximation that can under-estimate ε: its key says so.
        let key = if kind == AccountantKind::Gdp { "gdp_approximation".to_string() } else { kind.name().to_string() };
        out.insert(key, value.unwrap_or_else(|e| json!({"unavailable": e.to_string()})));
    }
    Value::Object(out)
}

/// Everything a finished (or budget-stopped) run reports.
pub struct Finished {
    /// The summary written to `summary.json`.
    pub summary: Value,
}

/// Trains `objective` as `config` says, writing into `out`. `evaluate_final` runs the task's final
/// evaluation (generation metrics, accuracy) and returns its metrics.
pub fn train(
    config: &RunConfig,
    objective: &dyn Objective,
    out: &Path,
    resume: bool,
    stop_after: Option<u64>,
    evaluate_final: &dyn Fn() -> Result<Value>,
) -> Result<Finished> {
    let started = Instant::now();
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

    let restored = if resume && checkpoint::exists(out) { Some(checkpoint::load(out)?) } else { None };
    let secure = matches!(&config.privacy, Privacy::Dp(p) if p.noise_seed != "fixed");
    let sampler_seed = match (&restored, secure) {
        (Some(r), _) => r.state.sampler_seed,
        (None, true) => rand::random::<u64>(),
        (None, false) => o.seed,
    };
    let mut sampler = sampler_for(&config.privacy, n, o.batch_size, sampler_seed)?;
    let q = sampler.sampling().sample_rate();
    let steps = match (o.steps, o.epochs) {
        (Some(s), _) => s,
        (None, Some(e)) => steps_for_epochs(e, q)?,
        _ => unreachable!("checked with the config"),
    };
    let dp = match &config.privacy {
        Privacy::Dp(p) => Some(resolve_dp(p, sampler.sampling(), steps, n, o.seed)?),
        Privacy::None => None,
    };
    let mut optimizer = optimizer_for(config, steps)?;
    let mut history = History::new();
    let mut start_step = 0;
    let hash = config_hash(config);
    if let Some(r) = restored {
        let same_sigma = r.state.noise_multiplier.map(f64::to_bits) == dp.as_ref().map(|d| d.sigma.to_bits());
        if r.state.dataset_size != n || r.state.sample_rate.to_bits() != q.to_bits() || !same_sigma {
            bail!(BadInput(format!(
                "{}: the checkpoint was made with n = {}, q = {}, σ = {:?}; this run has n = {n}, q = {q}, σ = {:?} (other data or data directory?): resume refused",
                out.display(),
                r.state.dataset_size,
                r.state.sample_rate,
                r.state.noise_multiplier,
                dp.as_ref().map(|d| d.sigma)
            )));
        }
        if r.state.config_hash != hash {
            bail!(BadInput(format!(
                "{}: the checkpoint belongs to another config (hash {} vs {}); resume with the config it was started with",
                out.display(),
                r.state.config_hash,
                hash
            )));
        }
        checkpoint::restore_parameters(&objective.parameters(), &r.parameters)?;
        optimizer.load_state(&updated, r.state.optimizer_step, &r.optimizer)?;
        sampler.set_stream_position(r.state.sampler_position.parse().context("checkpoint sampler position")?);
        if !r.state.history.is_empty() {
            history = History::from_json(&r.state.history)?;
        }
        if dp.is_some() && history.steps() != r.state.step {
            bail!(
                "{}: the checkpoint's ledger has {} steps but its state says {}: it is corrupt",
                out.display(),
                history.steps(),
                r.state.step
            );
        }
        start_step = r.state.step;
        log::info!("resuming from step {start_step} of {steps}");
    }
    let mut metrics = Metrics::open(out, start_step)?;
    let save = |step: u64, optimizer: &DpOptimizer, sampler: &BatchSampler, history: &History| -> Result<()> {
        let (opt_step, opt_state) = optimizer.state(&updated);
        let state = checkpoint::TrainState {
            step,
            optimizer_step: opt_step,
            sampler_position: sampler.stream_position().to_string(),
            history: if history.steps() == 0 { String::new() } else { history.to_json() },
            noise_multiplier: dp.as_ref().map(|d| d.sigma),
            config_hash: hash.clone(),
            sampler_seed,
            dataset_size: n,
            sample_rate: q,
        };
        checkpoint::save(out, &state, &objective.parameters(), &opt_state)
    };

    let bar = ProgressBar::new(steps);
    bar.set_style(ProgressStyle::with_template("{bar:30} step {pos}/{len} {msg} eta {eta}").expect("template"));
    bar.set_position(start_step);
    let mut stopped: Option<String> = None;
    let mut examples_seen = 0u64;
    let loop_start = Instant::now();
    for step in start_step + 1..=steps {
        let t0 = Instant::now();
        // Dropout masks depend on (seed, step) only: a resumed run repeats them.
        tch::manual_seed((o.seed.wrapping_mul(1_000_003).wrapping_add(step)) as i64);
        let batch = objective.order_for_padding(sampler.next_batch());
        objective.prepare_step();
        let mut losses = |chunk: &[u64], tape: &mut Tape| objective.losses(chunk, true, tape);
        let (grads, loss_sum) = match &dp {
            Some(dp) => {
                let (sum, loss_sum) =
                    gradients::clipped_sum(&dp.clipper, &trainable, &batch, o.physical_batch_size, &mut losses)?;
                let diag = sum.diagnostics(dp.clipper.max_grad_norm, dp.sigma);
                let accountants = Accountants::default();
                let released = release(
                    &sum,
                    &dp.noise,
                    dp.sigma,
                    dp.clipper.max_grad_norm,
                    &sampler,
                    step,
                    &mut history,
                    dp.budget.as_ref().map(|b| (b, &accountants)),
                );
                let released = match released {
                    Ok(g) => Some((g, Some(diag))),
                    Err(EngineError::BudgetExceeded { step, epsilon, target, accountant }) => {
                        stopped = Some(format!(
                            "stopped before step {step}: it would bring ε to {epsilon:.4} ({accountant}), above the target {target}"
                        ));
                        None
                    }
                    Err(e) => return Err(e.into()),
                };
                (released, loss_sum)
            }
            None => {
                let (g, loss_sum) = gradients::mean_gradient(&trainable, &batch, o.physical_batch_size, &mut losses)?;
                (Some((g, None)), loss_sum)
            }
        };
        let Some((grads, diag)) = grads else { break };
        optimizer.step(&updated, &objective.reconstruct(grads)?)?;
        examples_seen += batch.len() as u64;
        let loss = if batch.is_empty() { f64::NAN } else { loss_sum / batch.len() as f64 };
        let eps_rdp =
            dp.as_ref().and_then(|d| Accountants::default().epsilon(AccountantKind::Rdp, &history, d.delta).ok());
        let mut line = json!({
            "step": step, "loss": loss, "examples": batch.len(), "lr": optimizer.lr_at(step),
            "step_s": t0.elapsed().as_secs_f64(),
        });
        if let (Some(e), Some(diag)) = (eps_rdp, diag) {
            line["epsilon_rdp"] = json!(e);
            line["clipping"] = serde_json::to_value(diag)?;
        }
        metrics.write(&line)?;
        let rate = examples_seen as f64 / loop_start.elapsed().as_secs_f64();
        bar.set_message(match eps_rdp {
            Some(e) => format!("loss {loss:.4}  ε {e:.3}  {rate:.1} ex/s"),
            None => format!("loss {loss:.4}  {rate:.1} ex/s"),
        });
        bar.set_position(step);
        if o.eval_every > 0 && step % o.eval_every == 0 && step < steps {
            if let Some(l) = objective.eval_loss(o.physical_batch_size)? {
                metrics.write(&json!({"step": step, "eval": {"loss": l}}))?;
            }
        }
        if o.checkpoint_every > 0 && step % o.checkpoint_every == 0 {
            save(step, &optimizer, &sampler, &history)?;
        }
        if stop_after == Some(step) {
            bar.finish_and_clear();
            log::warn!("stopping after step {step} as asked (--stop-after-steps): no final checkpoint or outputs");
            return Ok(Finished { summary: json!({"status": "interrupted", "steps": step}) });
        }
    }
    bar.finish_and_clear();
    let done = optimizer.steps_taken();
    save(done, &optimizer, &sampler, &history)?;
    if let Some(msg) = &stopped {
        log::warn!("{msg}");
    }
    // The ledger is written before the final evaluation: a failure there must not lose it.
    let (delta, sigma) = dp.as_ref().map_or((None, None), |d| (Some(d.delta), Some(d.sigma)));
    let epsilon = delta.map_or(json!(null), |d| epsilons(&history, d));
    let sampler_name = match sampler.sampling() {
        Sampling::Poisson { .. } => "poisson",
        Sampling::FixedSize { .. } => "fixed_size",
    };
    let privacy = json!({
        "private": dp.is_some(),
        "dataset_size": n,
        "sampler": {
            "kind": sampler_name, "sample_rate": q, "expected_batch_size": sampler.expected_batch_size(),
            "relation": if sampler_name == "poisson" { "add/remove one example" } else { "replace one example" },
        },
        "delta": delta,
        "noise_multiplier": sigma,
        "max_grad_norm": dp.as_ref().map(|d| d.clipper.max_grad_norm),
        "clipping": dp.as_ref().map(|d| json!({"mode": format!("{:?}", d.clipper.mode), "style": format!("{:?}", d.clipper.style)})),
        "target_epsilon": dp.as_ref().and_then(|d| d.budget.map(|b| b.epsilon)),
        "budget_accountant": dp.as_ref().map(|d| d.accountant.name()),
        "steps": done,
        "planned_steps": steps,
        "epsilon": epsilon,
        "randomness": match &config.privacy {
            Privacy::Dp(p) if p.noise_seed == "fixed" => json!(format!(
                "fixed seed {}: noise and batches are reproducible from the config; the guarantee holds only while the seed is secret",
                o.seed
            )),
            Privacy::Dp(_) => json!("secure: noise and batch sampling from the operating system's randomness"),
            Privacy::None => json!(null),
        },
        "scope": "epsilon covers the trained parameters and anything computed from them alone; metrics.jsonl holds per-step training statistics (batch sizes, losses, gradient-norm statistics) that are not privatised: do not release it",
        "history": if history.steps() == 0 { json!(null) } else { serde_json::from_str::<Value>(&history.to_json())? },
    });
    write_json(&out.join("privacy.json"), &privacy)?;
    let mut eval = serde_json::Map::new();
    if let Some(l) = objective.eval_loss(o.physical_batch_size)? {
        eval.insert("loss".into(), json!(l));
    }
    if let Value::Object(m) = evaluate_final()? {
        eval.extend(m);
    }
    metrics.write(&json!({"step": done, "eval": eval.clone()}))?;
    let summary = json!({
        "status": if stopped.is_some() { "stopped_at_budget" } else { "finished" },
        "stop_reason": stopped,
        "steps": done,
        "planned_steps": steps,
        "sample_rate": q,
        "sampler": sampler_name,
        "dataset_size": n,
        "expected_batch_size": sampler.expected_batch_size(),
        "noise_multiplier": sigma,
        "delta": delta,
        "epsilon": epsilon,
        "budget_accountant": dp.as_ref().map(|d| d.accountant.name()),
        "trainable_parameters": trainable_count,
        "gradient_parameters": gradient_count,
        "metrics": eval,
        "wall_time_s": started.elapsed().as_secs_f64(),
        "peak_memory_bytes": peak_rss_bytes(),
        "peak_memory_kind": "process resident-set high-water mark (VmHWM)",
    });
    write_json(&out.join("summary.json"), &summary)?;
    Ok(Finished { summary })
}

/// Whether `out` holds a run that `dpft train` started: a summary, checkpoints or step metrics. (A lone
/// `config.yaml` is what a start that failed before its first step leaves; the next start rewrites it.)
pub fn holds_run(out: &Path) -> bool {
    out.join("summary.json").is_file() || checkpoint::exists(out) || out.join("metrics.jsonl").is_file()
}

/// Writes pretty JSON atomically.
pub fn write_json(path: &Path, value: &Value) -> Result<()> {
    let tmp: PathBuf = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(value)? + "\n")
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}
