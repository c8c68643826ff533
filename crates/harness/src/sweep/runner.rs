//! Runs a sweep's runs as `dpft train` child processes (one process per run, `--jobs` at a time), keeps
//! `sweep.json` up to date, and prints a summary table.
//!
//! The output folder holds one run folder per run id (owned by `dpft train`: config.yaml, metrics.jsonl,
//! checkpoints/, summary.json, privacy.json, predictions), plus `sweep.yaml` (the sweep file as run),
//! `sweep.json` (each run's status, error and headline numbers), `configs/<id>.yaml` (the expanded run
//! configs) and `logs/<id>.log` (each child's output).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::spec::{compact, RunSpec, SweepSpec};
use crate::exit::BadInput;
use crate::run_config;
use crate::train::{holds_run, write_json};

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Runs at a time.
    pub jobs: usize,
    /// Skip finished runs and continue interrupted ones.
    pub resume: bool,
    /// The output folder.
    pub out: PathBuf,
    /// Global flags passed to every child (`--data-dir`, …), without `--device`.
    pub child_args: Vec<String>,
    /// The device flag for each slot (one GPU per slot when several), cycled.
    pub devices: Vec<String>,
    /// libtorch threads per child (`OMP_NUM_THREADS`), None to leave the environment as it is.
    pub threads_per_run: Option<usize>,
}

/// One run's entry in `sweep.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunState {
    /// Run id (folder name).
    pub id: String,
    /// `key=value, …`.
    pub label: String,
    /// The run's own values.
    pub overrides: serde_json::Map<String, Value>,
    /// pending, running, finished, stopped_at_budget, failed.
    pub status: String,
    /// The error of a failed run (its last `error:` line).
    pub error: Option<String>,
    /// Wall time of the last attempt.
    pub wall_time_s: Option<f64>,
    /// Steps taken (from summary.json).
    pub steps: Option<u64>,
    /// ε spent (RDP), from summary.json.
    pub epsilon_rdp: Option<f64>,
    /// The run's final metrics (from summary.json).
    pub metrics: Value,
}

/// What happened.
#[derive(Debug)]
pub struct Outcome {
    /// Every run's final state.
    pub runs: Vec<RunState>,
}

fn run_dir(out: &Path, id: &str) -> PathBuf {
    out.join(id)
}

/// The finished status of a run folder (`finished` or `stopped_at_budget`), if it has one.
fn finished_status(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("summary.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v["status"].as_str().filter(|s| matches!(*s, "finished" | "stopped_at_budget")).map(String::from)
}

impl RunState {
    fn new(run: &RunSpec) -> Self {
        let overrides =
            run.overrides.iter().map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or(Value::Null))).collect();
        Self {
            id: run.id.clone(),
            label: run.label(),
            overrides,
            status: "pending".into(),
            error: None,
            wall_time_s: None,
            steps: None,
            epsilon_rdp: None,
            metrics: Value::Null,
        }
    }

    /// Fills status and numbers from the run folder's summary.json.
    fn read_summary(&mut self, dir: &Path) {
        let Ok(text) = std::fs::read_to_string(dir.join("summary.json")) else { return };
        let Ok(v) = serde_json::from_str::<Value>(&text) else { return };
        if let Some(s) = v["status"].as_str() {
            self.status = s.to_string();
        }
        self.steps = v["steps"].as_u64();
        self.epsilon_rdp = v["epsilon"]["rdp"].as_f64();
        self.metrics = v["metrics"].clone();
    }
}

fn save_state(spec: &SweepSpec, out: &Path, runs: &[RunState]) -> Result<()> {
    let state = json!({
        "sweep": spec.path.display().to_string(),
        "name": spec.name,
        "profile": spec.profile,
        "runs": runs,
    });
    write_json(&out.join("sweep.json"), &state)
}

/// The last `error:` line of a log (else its last non-empty line).
fn last_error(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines
        .iter()
        .rev()
        .find(|l| l.starts_with("error:"))
        .or(lines.last())
        .map(|l| l.trim_start_matches("error:").trim().to_string())
        .unwrap_or_else(|| "no output".into())
}

/// Checks the output folder against the runs before anything starts: a folder that holds another sweep
/// needs `--resume`; a finished run whose config differs from this sweep's is refused (its results would
/// be mistaken for this config's).
pub fn preflight(spec: &SweepSpec, runs: &[RunSpec], opts: &RunOptions) -> Result<(), BadInput> {
    let out = &opts.out;
    if out.exists() && !out.is_dir() {
        return Err(BadInput(format!("--out {} is a file; give a folder", out.display())));
    }
    if !opts.resume && out.join("sweep.json").is_file() {
        return Err(BadInput(format!(
            "{} already holds a sweep; pass --resume to skip its finished runs and continue the others, or choose another --out (nothing was changed)",
            out.display()
        )));
    }
    for run in runs {
        let dir = run_dir(out, &run.id);
        if !opts.resume && holds_run(&dir) {
            return Err(BadInput(format!(
                "{} already holds a run; pass --resume to continue it (nothing was changed)",
                dir.display()
            )));
        }
        if holds_run(&dir) {
            let previous = std::fs::read_to_string(dir.join("config.yaml")).unwrap_or_default();
            if !previous.is_empty() && previous != run_config::to_yaml(&run.config) {
                return Err(BadInput(format!(
                    "{}: run {} ({}) was made with another config than {} now gives; move the folder away or use another --out (nothing was changed)",
                    dir.display(),
                    run.id,
                    run.label(),
                    spec.path.display()
                )));
            }
        }
    }
    Ok(())
}

/// This dpft's executable. When it was rebuilt while the sweep runs, Linux reports the old file as
/// `<path> (deleted)`: the new file at `<path>` is used then.
fn dpft_executable() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the dpft executable")?;
    if exe.is_file() {
        return Ok(exe);
    }
    let text = exe.to_string_lossy();
    let path = PathBuf::from(text.strip_suffix(" (deleted)").unwrap_or(&text));
    if path.is_file() {
        Ok(path)
    } else {
        bail!(
            "the dpft executable {} is gone (rebuilt or removed during the sweep?); rerun with --resume",
            exe.display()
        )
    }
}

fn spawn(run: &RunSpec, opts: &RunOptions, slot: usize, resume: bool) -> Result<Child> {
    let out = &opts.out;
    let config_path = out.join("configs").join(format!("{}.yaml", run.id));
    crate::commands::model_io::write_atomic(&config_path, run_config::to_yaml(&run.config).as_bytes())?;
    let log_path = out.join("logs").join(format!("{}.log", run.id));
    let log =
        models::safe_fs::create_new(&log_path, false).with_context(|| format!("creating {}", log_path.display()))?;
    let exe = dpft_executable()?;
    let mut cmd = Command::new(exe);
    cmd.args(&opts.child_args);
    if let Some(d) = opts.devices.get(slot % opts.devices.len().max(1)) {
        cmd.args(["--device", d]);
    }
    cmd.arg("train").arg(&config_path).arg("--out").arg(run_dir(out, &run.id));
    if resume {
        cmd.arg("--resume");
    }
    if let Some(t) = opts.threads_per_run {
        cmd.env("OMP_NUM_THREADS", t.to_string());
    }
    cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
    cmd.spawn().context("starting dpft train")
}

/// Runs every run that is not finished yet, `opts.jobs` at a time. A failing run is recorded with its
/// error and the others go on.
pub fn run_all(spec: &SweepSpec, runs: &[RunSpec], opts: &RunOptions) -> Result<Outcome> {
    let out = &opts.out;
    for sub in ["configs", "logs"] {
        std::fs::create_dir_all(out.join(sub)).with_context(|| format!("creating {}", out.join(sub).display()))?;
    }
    std::fs::copy(&spec.path, out.join("sweep.yaml")).with_context(|| format!("copying {}", spec.path.display()))?;
    let mut states: Vec<RunState> = runs.iter().map(RunState::new).collect();
    let mut pending = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let dir = run_dir(out, &run.id);
        if let Some(status) = finished_status(&dir) {
            states[i].read_summary(&dir);
            log::info!("{} ({}): {status} before, skipped", run.id, run.label());
        } else {
            pending.push(i);
        }
    }
    save_state(spec, out, &states)?;
    let todo = pending.len();
    log::info!(
        "{} runs, {} to do, {} at a time; output in {}",
        runs.len(),
        todo,
        opts.jobs.min(todo.max(1)),
        out.display()
    );
    let bar = ProgressBar::new(todo as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} runs {msg} [{elapsed_precise}, eta {eta}]")
            .expect("template"),
    );
    pending.reverse(); // pop() takes them in file order
    let mut active: Vec<(usize, Child, Instant, usize)> = Vec::new();
    let mut free_slots: Vec<usize> = (0..opts.jobs).rev().collect();
    while !pending.is_empty() || !active.is_empty() {
        while !pending.is_empty() && !free_slots.is_empty() {
            let i = pending.pop().expect("non-empty");
            let slot = free_slots.pop().expect("non-empty");
            let resume = holds_run(&run_dir(out, &runs[i].id));
            let child = spawn(&runs[i], opts, slot, resume)?;
            states[i].status = "running".into();
            states[i].error = None;
            active.push((i, child, Instant::now(), slot));
            save_state(spec, out, &states)?;
        }
        bar.set_message(active.iter().map(|(i, ..)| runs[*i].id.as_str()).collect::<Vec<_>>().join(" "));
        std::thread::sleep(Duration::from_millis(200));
        bar.tick();
        let mut k = 0;
        while k < active.len() {
            let Some(status) = active[k].1.try_wait()? else {
                k += 1;
                continue;
            };
            let (i, _, started, slot) = active.swap_remove(k);
            free_slots.push(slot);
            let run = &runs[i];
            let dir = run_dir(out, &run.id);
            states[i].wall_time_s = Some(started.elapsed().as_secs_f64());
            if status.success() && finished_status(&dir).is_some() {
                states[i].read_summary(&dir);
                bar.println(format!("  {:<10} {} ({})", states[i].status, run.id, run.label()));
            } else {
                let log = out.join("logs").join(format!("{}.log", run.id));
                states[i].status = "failed".into();
                states[i].error = Some(last_error(&log));
                bar.println(format!(
                    "  failed     {} ({}): {} [log: {}]",
                    run.id,
                    run.label(),
                    states[i].error.as_deref().unwrap_or(""),
                    log.display()
                ));
            }
            bar.inc(1);
            save_state(spec, out, &states)?;
        }
    }
    bar.finish_and_clear();
    Ok(Outcome { runs: states })
}

/// The headline metric of a run: BLEU (generation), accuracy (classification), else the final loss.
fn headline(metrics: &Value) -> String {
    for key in ["BLEU", "accuracy", "loss"] {
        if let Some(x) = metrics[key].as_f64() {
            return format!("{key} {x:.4}");
        }
    }
    "-".into()
}

/// The summary table printed at the end (Markdown).
pub fn summary_table(runs: &[RunState]) -> String {
    let mut s = String::from(
        "| run | values | status | steps | ε (RDP) | metric | wall (s) |\n|---|---|---|---:|---:|---|---:|\n",
    );
    for r in runs {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.id,
            r.label.replace('|', "/"),
            match (&r.status[..], &r.error) {
                ("failed", Some(e)) => format!("failed: {}", e.replace('|', "/")),
                (s, _) => s.to_string(),
            },
            r.steps.map_or("-".into(), |s| s.to_string()),
            r.epsilon_rdp.map_or("-".into(), |e| format!("{e:.3}")),
            headline(&r.metrics),
            r.wall_time_s.map_or("-".into(), |w| format!("{w:.1}")),
        ));
    }
    s
}

/// The dry-run listing: one line per run with its id and values.
pub fn dry_run_listing(spec: &SweepSpec, runs: &[RunSpec], out: &Path) -> String {
    let mut s = format!(
        "{} runs from {}{} into {}:\n",
        runs.len(),
        spec.path.display(),
        spec.profile.as_ref().map_or(String::new(), |p| format!(" (profile {p})")),
        out.display()
    );
    for r in runs {
        let values: Vec<String> = r.overrides.iter().map(|(k, v)| format!("{k}={}", compact(v))).collect();
        s.push_str(&format!("  {:<40} {}\n", r.id, values.join("  ")));
    }
    s
}

/// Fails when any run failed (after everything ran).
pub fn check_failures(outcome: &Outcome, out: &Path) -> Result<()> {
    let failed = outcome.runs.iter().filter(|r| r.status == "failed").count();
    if failed > 0 {
        bail!(
            "{failed} of {} runs failed (their errors are in {}/sweep.json and logs/); fix and rerun with --resume to run only those",
            outcome.runs.len(),
            out.display()
        );
    }
    Ok(())
}
