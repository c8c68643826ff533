//! The run store shared by the sweep backends: `sweep.json` (each run's status, error and headline
//! numbers, and the Slurm job when the runs went to a cluster), the checks made before anything starts, and
//! the tables printed at the end.
//!
//! The output folder holds one run folder per run id (owned by `dpft train`: config.yaml, metrics.jsonl,
//! checkpoints/, summary.json, privacy.json, predictions), plus `sweep.yaml` (the sweep file as run),
//! `sweep.json`, `configs/<id>.yaml` (the expanded run configs) and `logs/<id>.log` (each run's output).
//! Where a run ran (a child process here, a Slurm array task) does not change any of these files.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::spec::{compact, RunSpec, SweepSpec};
use crate::exit::BadInput;
use crate::run_config;
use crate::train::{holds_run, write_json};

/// One run's entry in `sweep.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunState {
    /// Run id (folder name).
    pub id: String,
    /// `key=value, …`.
    pub label: String,
    /// The run's own values.
    pub overrides: serde_json::Map<String, Value>,
    /// pending, running, finished, stopped_at_budget, failed, cancelled (slurm).
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

pub fn run_dir(out: &Path, id: &str) -> PathBuf {
    out.join(id)
}

/// The finished status of a run folder (`finished` or `stopped_at_budget`), if it has one.
pub fn finished_status(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("summary.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v["status"].as_str().filter(|s| matches!(*s, "finished" | "stopped_at_budget")).map(String::from)
}

impl RunState {
    pub fn new(run: &RunSpec) -> Self {
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
    pub fn read_summary(&mut self, dir: &Path) {
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

/// Which backend started a sweep's runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// Child processes on this machine.
    #[default]
    Local,
    /// A Slurm job array (`sbatch`).
    Slurm,
}

/// The Slurm job that runs (or ran) a sweep's pending runs, as `sweep.json` records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmJob {
    /// The array job's id (`sbatch --parsable`).
    pub job_id: String,
    /// The sbatch script, relative to the sweep folder.
    pub script: String,
    /// Run ids by array index: task i trains `tasks[i]`.
    pub tasks: Vec<String>,
    /// Seconds since the Unix epoch at submission.
    pub submitted_at: u64,
    /// Jobs of earlier invocations (`--resume` submits a new job for the unfinished runs).
    #[serde(default)]
    pub earlier_jobs: Vec<String>,
}

/// `sweep.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepState {
    /// The sweep file.
    pub sweep: String,
    /// The sweep's name.
    pub name: String,
    /// The profile run.
    pub profile: Option<String>,
    /// Where the runs were started.
    #[serde(default)]
    pub backend: Backend,
    /// The Slurm job (slurm backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<SlurmJob>,
    /// Every run.
    pub runs: Vec<RunState>,
}

impl SweepState {
    /// A fresh state for `runs`.
    pub fn new(spec: &SweepSpec, backend: Backend, runs: Vec<RunState>) -> Self {
        Self {
            sweep: spec.path.display().to_string(),
            name: spec.name.clone(),
            profile: spec.profile.clone(),
            backend,
            slurm: None,
            runs,
        }
    }

    /// The `sweep.json` in `out`, if there is one (a corrupt file is an error naming it).
    pub fn load(out: &Path) -> Result<Option<Self>> {
        let path = out.join("sweep.json");
        let Ok(text) = std::fs::read_to_string(&path) else { return Ok(None) };
        let state = serde_json::from_str(&text).map_err(|e| {
            BadInput(format!(
                "{}: {e} (not a sweep.json dpft wrote; move it away or use another --out)",
                path.display()
            ))
        })?;
        Ok(Some(state))
    }

    /// Writes `out/sweep.json` (through a temporary file).
    pub fn save(&self, out: &Path) -> Result<()> {
        write_json(&out.join("sweep.json"), &serde_json::to_value(self)?)
    }
}

/// Creates `configs/` and `logs/`, copies the sweep file to `sweep.yaml` and writes each run's config.
pub fn prepare_folder(spec: &SweepSpec, runs: &[RunSpec], out: &Path) -> Result<()> {
    for sub in ["configs", "logs"] {
        std::fs::create_dir_all(out.join(sub)).with_context(|| format!("creating {}", out.join(sub).display()))?;
    }
    std::fs::copy(&spec.path, out.join("sweep.yaml")).with_context(|| format!("copying {}", spec.path.display()))?;
    for run in runs {
        crate::commands::model_io::write_atomic(
            &config_path(out, &run.id),
            run_config::to_yaml(&run.config).as_bytes(),
        )?;
    }
    Ok(())
}

/// `configs/<id>.yaml`.
pub fn config_path(out: &Path, id: &str) -> PathBuf {
    out.join("configs").join(format!("{id}.yaml"))
}

/// `logs/<id>.log`.
pub fn log_path(out: &Path, id: &str) -> PathBuf {
    out.join("logs").join(format!("{id}.log"))
}

/// Every run's state, finished runs filled from their summary.json; and the indices of the others.
pub fn initial_states(runs: &[RunSpec], out: &Path) -> (Vec<RunState>, Vec<usize>) {
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
    (states, pending)
}

/// The last `error:` line of a log (else its last non-empty line).
pub fn last_error(log: &Path) -> String {
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
pub fn preflight(spec: &SweepSpec, runs: &[RunSpec], out: &Path, resume: bool) -> Result<(), BadInput> {
    if out.exists() && !out.is_dir() {
        return Err(BadInput(format!("--out {} is a file; give a folder", out.display())));
    }
    if !resume && out.join("sweep.json").is_file() {
        return Err(BadInput(format!(
            "{} already holds a sweep; pass --resume to skip its finished runs and continue the others, or choose another --out (nothing was changed)",
            out.display()
        )));
    }
    for run in runs {
        let dir = run_dir(out, &run.id);
        if !resume && holds_run(&dir) {
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
pub fn dpft_executable() -> Result<PathBuf> {
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
    let cancelled = outcome.runs.iter().filter(|r| r.status == "cancelled").count();
    if failed > 0 {
        bail!(
            "{failed} of {} runs failed (their errors are in {}/sweep.json and logs/); fix and rerun with --resume to run only those",
            outcome.runs.len(),
            out.display()
        );
    }
    if cancelled > 0 {
        bail!(
            "{cancelled} of {} runs were cancelled before they finished ({}/sweep.json); rerun with --resume to run only those",
            outcome.runs.len(),
            out.display()
        );
    }
    Ok(())
}
