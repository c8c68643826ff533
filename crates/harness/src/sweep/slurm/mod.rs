//! The Slurm backend: a sweep's pending runs become one job array (one task per run, [`script`]),
//! submitted with `sbatch`; the job id goes into `sweep.json`, and the sweep either returns at once or
//! watches the queue ([`queue`]) until every task has left it, then fills `sweep.json` from the runs' own
//! summary.json files. The run store is the local backend's ([`super::store`]), so `dpft report` reads
//! a Slurm sweep as it reads a local one.

pub mod queue;
pub mod script;
pub mod settings;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use super::spec::{RunSpec, SweepSpec};
use super::store::{
    dpft_executable, finished_status, initial_states, last_error, log_path, prepare_folder, run_dir, Backend, Outcome,
    SlurmJob, SweepState,
};
use crate::exit::BadInput;
use settings::SlurmSettings;

/// How to submit.
pub struct SubmitOptions {
    /// The sweep folder.
    pub out: PathBuf,
    /// The settings (file and command line merged, checked).
    pub settings: SlurmSettings,
    /// Global dpft flags for every run (`--data-dir …`, `--device …`).
    pub dpft_args: Vec<String>,
}

/// What [`submit`] did.
pub enum Submitted {
    /// Every run had finished before: nothing was submitted.
    NothingToDo(Outcome),
    /// The job was submitted and not watched (`--no-wait`).
    Queued { job_id: String, runs: usize },
    /// The job was submitted and watched to its end.
    Done(Outcome),
}

/// Refuses to start when `out`'s sweep has a Slurm job with tasks still in the queue (two jobs would
/// train the same run folders).
pub fn refuse_if_active(out: &Path) -> Result<()> {
    let Some(state) = SweepState::load(out)? else { return Ok(()) };
    let Some(job) = state.slurm else { return Ok(()) };
    if queue::tool("squeue").is_err() {
        return Ok(());
    }
    let left = queue::queued(&job.job_id)?;
    if !left.is_empty() {
        return Err(BadInput(format!(
            "{}: Slurm job {} of this sweep still has {} tasks queued or running; wait for it (`dpft sweep … --status`), or cancel it (`dpft sweep … --cancel`), then --resume (nothing was changed)",
            out.display(),
            job.job_id,
            left.len()
        ))
        .into());
    }
    Ok(())
}

/// Submits every unfinished run as one job array; waits for it when the settings say so.
pub fn submit(spec: &SweepSpec, runs: &[RunSpec], opts: &SubmitOptions) -> Result<Submitted> {
    let out = &opts.out;
    for name in ["sbatch", "squeue", "scancel"] {
        queue::tool(name)?;
    }
    let earlier = SweepState::load(out)?;
    prepare_folder(spec, runs, out)?;
    let (states, pending) = initial_states(runs, out);
    let mut sweep = SweepState::new(spec, Backend::Slurm, states);
    if pending.is_empty() {
        sweep.slurm = earlier.and_then(|e| e.slurm);
        sweep.save(out)?;
        return Ok(Submitted::NothingToDo(Outcome { runs: sweep.runs }));
    }
    let tasks: Vec<String> = pending.iter().map(|&i| runs[i].id.clone()).collect();
    let mut earlier_jobs: Vec<String> = match earlier.as_ref().and_then(|e| e.slurm.as_ref()) {
        Some(job) => job.earlier_jobs.iter().cloned().chain([job.job_id.clone()]).collect(),
        None => Vec::new(),
    };
    let dpft = dpft_executable()?;
    let workdir = std::env::current_dir().context("reading the current folder")?;
    let text = script::render(
        &opts.settings,
        &script::ScriptInputs {
            name: &spec.name,
            sweep_file: &spec.path,
            out,
            workdir: &workdir,
            tasks: &tasks,
            dpft: &dpft,
            dpft_args: &opts.dpft_args,
        },
    );
    let script_path = script::script_path(out, earlier_jobs.len() + 1);
    std::fs::create_dir_all(script_path.parent().expect("has a parent"))?;
    crate::commands::model_io::write_atomic(&script_path, text.as_bytes())?;
    let job_id = queue::submit(&script_path, &workdir, opts.settings.gpus())?;
    log::info!(
        "submitted Slurm job {job_id}: {} runs as array tasks 0-{} ({})",
        tasks.len(),
        tasks.len() - 1,
        script_path.display()
    );
    let script_rel = script_path.strip_prefix(out).unwrap_or(&script_path).display().to_string();
    sweep.slurm = Some(SlurmJob {
        job_id: job_id.clone(),
        script: script_rel,
        tasks,
        submitted_at: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        earlier_jobs: std::mem::take(&mut earlier_jobs),
    });
    sweep.save(out)?;
    if !opts.settings.waits() {
        return Ok(Submitted::Queued { job_id, runs: pending.len() });
    }
    watch(&mut sweep, out, opts.settings.poll())?;
    Ok(Submitted::Done(Outcome { runs: sweep.runs }))
}

/// Counts of a job's runs: done (left the queue), running, pending.
fn counts(sweep: &SweepState, job: &SlurmJob) -> (usize, usize, usize) {
    let mut c = (0, 0, 0);
    for id in &job.tasks {
        match sweep.runs.iter().find(|r| &r.id == id).map(|r| r.status.as_str()) {
            Some("running") => c.1 += 1,
            Some("pending") => c.2 += 1,
            _ => c.0 += 1,
        }
    }
    c
}

/// One look at the queue: the job's tasks still in it get `running` / `pending`; the others are settled
/// from their run folders (finished) or from what Slurm recorded (failed, cancelled, timed out). Returns
/// the lines to print for runs that settled now.
pub fn refresh(sweep: &mut SweepState, out: &Path) -> Result<Vec<String>> {
    let Some(job) = sweep.slurm.clone() else { return Ok(Vec::new()) };
    let queued = queue::queued(&job.job_id)?;
    let mut lines = Vec::new();
    for (index, id) in job.tasks.iter().enumerate() {
        let Some(state) = sweep.runs.iter_mut().find(|r| &r.id == id) else { continue };
        if !matches!(state.status.as_str(), "running" | "pending") {
            continue; // settled before
        }
        // A run whose summary says finished is done, even while its task is still completing.
        let dir = run_dir(out, id);
        if finished_status(&dir).is_some() {
            state.read_summary(&dir);
            state.wall_time_s = summary_wall_time(&dir);
            lines.push(format!("  {:<10} {} ({})", state.status, id, state.label));
            continue;
        }
        if let Some(q) = queued.get(&index) {
            state.status = if q.started() { "running" } else { "pending" }.into();
            continue;
        }
        let log = log_path(out, id);
        let ended = queue::ended(&job.job_id, index);
        let (status, error) = match &ended {
            Some(e) if e.state.starts_with("CANCELLED") => {
                ("cancelled", format!("cancelled (Slurm job {}_{index})", job.job_id))
            }
            None => (
                "cancelled",
                format!("left the queue without finishing (Slurm job {}_{index} cancelled while pending?)", job.job_id),
            ),
            Some(e) if e.state == "TIMEOUT" => (
                "failed",
                "reached its time limit (Slurm TIMEOUT): raise --time; --resume continues it from its last checkpoint"
                    .to_string(),
            ),
            Some(e) if e.state == "OUT_OF_MEMORY" => (
                "failed",
                "ran out of memory (Slurm OUT_OF_MEMORY): raise --mem or lower optimization.physical_batch_size"
                    .to_string(),
            ),
            Some(e) => {
                let from_log = if log.is_file() { last_error(&log) } else { "no output".into() };
                ("failed", format!("{from_log} (Slurm {} exit {})", e.state, e.exit_code))
            }
        };
        state.status = status.into();
        state.error = Some(error.clone());
        lines.push(format!("  {:<10} {} ({}): {error} [log: {}]", status, id, state.label, log.display()));
    }
    Ok(lines)
}

fn summary_wall_time(dir: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(dir.join("summary.json")).ok()?;
    serde_json::from_str::<serde_json::Value>(&text).ok()?["wall_time_s"].as_f64()
}

/// Polls the queue every `poll` seconds until every task of the sweep's job has left it, keeping
/// `sweep.json` and a progress line up to date. A failing look at the queue (a busy controller) is retried;
/// five in a row end the wait, the job keeping on (`--status` later).
pub fn watch(sweep: &mut SweepState, out: &Path, poll: f64) -> Result<()> {
    let job = sweep.slurm.clone().expect("a submitted sweep");
    let total = job.tasks.len() as u64;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} runs done, {msg} [{elapsed_precise}]").expect("template"),
    );
    bar.println(format!(
        "watching Slurm job {} (Ctrl-C stops watching, not the job: `dpft sweep … --status` or `--cancel` later)",
        job.job_id
    ));
    let started = Instant::now();
    let mut failures = 0;
    loop {
        match refresh(sweep, out) {
            Ok(lines) => {
                failures = 0;
                for line in lines {
                    bar.println(line);
                }
            }
            Err(e) if failures < 4 => {
                failures += 1;
                log::warn!("looking at the queue failed ({e:#}); trying again");
            }
            Err(e) => {
                bar.finish_and_clear();
                return Err(e).context(format!(
                    "watching Slurm job {} (the job goes on: `dpft sweep … --status` shows it later)",
                    job.job_id
                ));
            }
        }
        sweep.save(out)?;
        let (done, running, pending) = counts(sweep, &job);
        bar.set_position(done as u64);
        bar.set_message(format!("{running} running, {pending} pending (job {})", job.job_id));
        if done as u64 == total {
            break;
        }
        std::thread::sleep(Duration::from_secs_f64(poll));
    }
    bar.finish_and_clear();
    log::info!("Slurm job {} done in {:.1} s", job.job_id, started.elapsed().as_secs_f64());
    Ok(())
}

/// `--cancel`: `scancel` of the sweep's job, then the states once its tasks have left the queue.
pub fn cancel(sweep: &mut SweepState, out: &Path) -> Result<()> {
    let job = sweep.slurm.clone().ok_or_else(|| {
        BadInput(format!("{}: this sweep ran on this machine (no Slurm job to cancel)", out.display()))
    })?;
    queue::cancel(&job.job_id)?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !queue::queued(&job.job_id)?.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    for line in refresh(sweep, out)? {
        println!("{line}");
    }
    sweep.save(out)
}
