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

mod averaging;
pub mod checkpoint;
pub mod fingerprint;
pub mod generation_eval;
pub mod gradients;
mod metrics;
pub mod objective;
mod outputs;
pub mod secrets;
pub(crate) mod setup;
mod step;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use crate::run_config::RunConfig;
use metrics::Metrics;
use objective::Objective;
use outputs::{PrivacyReport, Summary};
use setup::RunState;
use step::{take_step, StepOutcome};

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

/// Everything a finished (or budget-stopped) run reports.
pub struct Finished {
    /// The summary written to `summary.json`.
    pub summary: Value,
}

/// Where and how a run is started.
pub struct Launch<'a> {
    /// The run folder.
    pub out: &'a Path,
    /// Continue from the folder's latest checkpoint.
    pub resume: bool,
    /// End the run after this step without final outputs (for tests of resuming).
    pub stop_after: Option<u64>,
    /// The files the training set was read from (named when a resume finds other data).
    pub train_files: Vec<PathBuf>,
}

/// Trains `objective` as `config` says, writing into `launch.out`. `evaluate_final` runs the task's final
/// evaluation (generation metrics, accuracy) and returns its metrics.
pub fn train(
    config: &RunConfig,
    objective: &dyn Objective,
    launch: &Launch,
    evaluate_final: &dyn Fn() -> Result<Value>,
) -> Result<Finished> {
    let (out, stop_after) = (launch.out, launch.stop_after);
    let o = &config.optimization;
    // 1. Start, or resume from the last checkpoint (all its checks).
    let mut state = RunState::start_or_resume(config, objective, launch)?;
    let mut metrics = Metrics::open(out, state.start_step)?;
    // With periodic evaluation, also before the first step: the curve starts at the model trained from.
    if o.eval_every > 0 && state.start_step == 0 {
        if let Some(l) = objective.eval_loss(o.physical_batch_size)? {
            metrics.write(&json!({"step": 0, "eval": {"loss": l}}))?;
        }
    }
    let bar = progress_bar(state.steps, state.start_step);
    // 2. The steps.
    let mut stopped: Option<String> = None;
    let mut examples_seen = 0u64;
    let loop_start = Instant::now();
    for step in state.start_step + 1..=state.steps {
        let t0 = Instant::now();
        let record = match take_step(&mut state, objective, step, o.seed, o.physical_batch_size)? {
            StepOutcome::Released(record) => record,
            StepOutcome::StoppedAtBudget(message) => {
                stopped = Some(message);
                break;
            }
        };
        if let Some(average) = &mut state.average {
            average.update(&state.updated, step);
        }
        metrics.write(&record.line(step, state.optimizer.lr_at(step), t0.elapsed().as_secs_f64())?)?;
        examples_seen += record.examples as u64;
        let rate = examples_seen as f64 / loop_start.elapsed().as_secs_f64();
        bar.set_message(match record.epsilon_rdp {
            Some(e) => format!("loss {:.4}  ε {e:.3}  {rate:.1} ex/s", record.loss),
            None => format!("loss {:.4}  {rate:.1} ex/s", record.loss),
        });
        bar.set_position(step);
        // 3. Periodic evaluation and checkpoints.
        if o.eval_every > 0 && step % o.eval_every == 0 && step < state.steps {
            if let Some(l) = objective.eval_loss(o.physical_batch_size)? {
                metrics.write(&json!({"step": step, "eval": {"loss": l}}))?;
            }
        }
        if o.checkpoint_every > 0 && step % o.checkpoint_every == 0 {
            state.save(out, objective, step)?;
        }
        if stop_after == Some(step) {
            bar.finish_and_clear();
            log::warn!("stopping after step {step} as asked (--stop-after-steps): no final checkpoint or outputs");
            return Ok(Finished { summary: json!({"status": "interrupted", "steps": step}) });
        }
    }
    bar.finish_and_clear();
    let done = state.optimizer.steps_taken();
    state.save(out, objective, done)?;
    if let Some(msg) = &stopped {
        log::warn!("{msg}");
    }
    // The final evaluation and the saved model use the iterate average (the checkpoint keeps θ_T).
    if let Some(average) = &state.average {
        average.write_into(&state.updated);
        log::info!("evaluating and saving the average of the iterates (optimization.ema_decay)");
    }
    // 4. Outputs. The ledger is written before the final evaluation: a failure there must not lose it.
    write_json(&out.join("privacy.json"), &serde_json::to_value(PrivacyReport::new(config, &state, done)?)?)?;
    let mut eval = serde_json::Map::new();
    if let Some(l) = objective.eval_loss(o.physical_batch_size)? {
        eval.insert("loss".into(), json!(l));
    }
    if let Value::Object(m) = evaluate_final()? {
        eval.extend(m);
    }
    metrics.write(&json!({"step": done, "eval": eval.clone()}))?;
    let summary = serde_json::to_value(Summary::new(&state, done, stopped, eval))?;
    write_json(&out.join("summary.json"), &summary)?;
    Ok(Finished { summary })
}

fn progress_bar(steps: u64, start_step: u64) -> ProgressBar {
    let bar = ProgressBar::new(steps);
    bar.set_style(ProgressStyle::with_template("{bar:30} step {pos}/{len} {msg} eta {eta}").expect("template"));
    bar.set_position(start_step);
    bar
}

/// Whether `out` holds a run that `dpft train` started: a summary, checkpoints or step metrics. (A lone
/// `config.yaml` is what a start that failed before its first step leaves; the next start rewrites it.)
pub fn holds_run(out: &Path) -> bool {
    out.join("summary.json").is_file() || checkpoint::exists(out) || out.join("metrics.jsonl").is_file()
}

/// Writes pretty JSON atomically ([`models::safe_fs::write_atomic`]: a planted link is not followed).
pub fn write_json(path: &Path, value: &Value) -> Result<()> {
    models::safe_fs::write_atomic(path, (serde_json::to_string_pretty(value)? + "\n").as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
