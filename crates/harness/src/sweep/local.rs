//! The local backend: runs a sweep's runs as `dpft train` child processes (one process per run, `--jobs` at a time), keeps
//! `sweep.json` up to date, and prints a summary table.
//! The run store ([`super::store`]) is the same as the Slurm backend's.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use super::spec::{RunSpec, SweepSpec};
use super::store::{
    config_path, dpft_executable, finished_status, initial_states, last_error, log_path, prepare_folder, run_dir,
    Backend, Outcome, SweepState,
};
use crate::train::holds_run;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Runs at a time.
    pub jobs: usize,
    /// The output folder.
    pub out: PathBuf,
    /// Global flags passed to every child (`--data-dir`, …), without `--device`.
    pub child_args: Vec<String>,
    /// The device flag for each slot (one GPU per slot when several), cycled.
    pub devices: Vec<String>,
    /// libtorch threads per child (`OMP_NUM_THREADS`), None to leave the environment as it is.
    pub threads_per_run: Option<usize>,
}

fn spawn(run: &RunSpec, opts: &RunOptions, slot: usize, resume: bool) -> Result<Child> {
    let out = &opts.out;
    let (config_path, log_path) = (config_path(out, &run.id), log_path(out, &run.id));
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
    prepare_folder(spec, runs, out)?;
    let (states, mut pending) = initial_states(runs, out);
    let mut sweep = SweepState::new(spec, Backend::Local, states);
    sweep.save(out)?;
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
            sweep.runs[i].status = "running".into();
            sweep.runs[i].error = None;
            active.push((i, child, Instant::now(), slot));
            sweep.save(out)?;
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
            sweep.runs[i].wall_time_s = Some(started.elapsed().as_secs_f64());
            if status.success() && finished_status(&dir).is_some() {
                sweep.runs[i].read_summary(&dir);
                bar.println(format!("  {:<10} {} ({})", sweep.runs[i].status, run.id, run.label()));
            } else {
                let log = log_path(out, &run.id);
                sweep.runs[i].status = "failed".into();
                sweep.runs[i].error = Some(last_error(&log));
                bar.println(format!(
                    "  failed     {} ({}): {} [log: {}]",
                    run.id,
                    run.label(),
                    sweep.runs[i].error.as_deref().unwrap_or(""),
                    log.display()
                ));
            }
            bar.inc(1);
            sweep.save(out)?;
        }
    }
    bar.finish_and_clear();
    Ok(Outcome { runs: sweep.runs })
}
