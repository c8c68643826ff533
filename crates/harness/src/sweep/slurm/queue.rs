//! Slurm's client commands as the backend uses them: `sbatch --parsable`, `squeue`, `scontrol`, `sacct`
//! (where accounting exists) and `scancel`. Each reads the cluster from the environment (`SLURM_CONF`
//! or the system's configuration), as Slurm's own tools do.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{bail, Context, Result};

use crate::exit::BadInput;

/// A Slurm client program on PATH.
pub fn tool(name: &str) -> Result<PathBuf, BadInput> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file()).ok_or_else(|| {
        BadInput(format!(
            "--backend slurm needs Slurm's `{name}` on PATH and it is not there: run on a login node of the cluster (or load its module, e.g. `module load slurm`), or use --backend local"
        ))
    })
}

fn run(name: &str, args: &[&str]) -> Result<Output> {
    let exe = tool(name)?;
    Command::new(&exe).args(args).output().with_context(|| format!("running {}", exe.display()))
}

fn stderr_of(o: &Output) -> String {
    let text = String::from_utf8_lossy(&o.stderr).trim().to_string();
    if text.is_empty() {
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    } else {
        text
    }
}

/// Submits `script` with `sbatch --parsable` from `cwd`; the job id. A refusal is bad input with Slurm's
/// message and what to change (`gpus` is the GPUs per run asked for).
pub fn submit(script: &Path, cwd: &Path, gpus: u32) -> Result<String> {
    let exe = tool("sbatch")?;
    let o = Command::new(&exe)
        .arg("--parsable")
        .arg(script)
        .current_dir(cwd)
        .output()
        .with_context(|| format!("running {}", exe.display()))?;
    if !o.status.success() {
        let msg = stderr_of(&o);
        let hint = if msg.contains("partition") {
            " (`sinfo -s` lists the partitions; change --partition or the sweep file's slurm.partition)"
        } else if gpus > 0 && (msg.contains("node configuration is not available") || msg.contains("gres")) {
            " (no node of the partition has that many GPUs: `sinfo -o '%P %G'` lists them; choose a GPU partition or lower --gpus-per-run)"
        } else if msg.contains("node configuration is not available") || msg.contains("More processors") {
            " (no node can give one run that much: lower --cpus-per-run or --mem, or choose another partition)"
        } else if msg.contains("time limit") {
            " (lower --time to the partition's limit: `sinfo -o '%P %l'`)"
        } else {
            ""
        };
        return Err(BadInput(format!(
            "sbatch refused the sweep's job: {msg}{hint}; nothing was submitted (the script is {})",
            script.display()
        ))
        .into());
    }
    let text = String::from_utf8_lossy(&o.stdout);
    // --parsable prints `id` or `id;cluster`.
    let id = text.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        bail!("sbatch --parsable printed {text:?}, not a job id");
    }
    Ok(id)
}

/// A task's state while it is in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// PENDING, RUNNING, COMPLETING, REQUEUED, SUSPENDED, …
    pub state: String,
    /// Why it waits (squeue's reason), e.g. `Resources`, `JobArrayTaskLimit`.
    pub reason: String,
}

impl Queued {
    /// Whether the task has a node (running, or finishing on it).
    pub fn started(&self) -> bool {
        matches!(self.state.as_str(), "RUNNING" | "COMPLETING" | "SUSPENDED" | "STOPPED")
    }
}

/// The array's tasks still in the queue (pending, running, completing), by array index. A job Slurm no
/// longer knows (every task finished long ago) has none.
pub fn queued(job_id: &str) -> Result<BTreeMap<usize, Queued>> {
    let o = run("squeue", &["-h", "-r", "-j", job_id, "-o", "%K|%T|%r"])?;
    let text = String::from_utf8_lossy(&o.stdout);
    if !o.status.success() {
        let msg = stderr_of(&o);
        if msg.contains("Invalid job id") {
            return Ok(BTreeMap::new());
        }
        bail!(
            "squeue failed for job {job_id}: {msg} (run dpft where Slurm's commands work: on a login node of the cluster the job went to, with its environment, e.g. SLURM_CONF)"
        );
    }
    let mut tasks = BTreeMap::new();
    for line in text.lines() {
        let mut parts = line.trim().splitn(3, '|');
        let (Some(index), Some(state)) = (parts.next(), parts.next()) else { continue };
        let Ok(index) = index.parse::<usize>() else { continue };
        let reason = parts.next().unwrap_or("").to_string();
        tasks.insert(index, Queued { state: state.to_string(), reason });
    }
    Ok(tasks)
}

/// How a task that left the queue ended, as Slurm recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// COMPLETED, FAILED, CANCELLED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, PREEMPTED, …
    pub state: String,
    /// `exit:signal`.
    pub exit_code: String,
    /// Slurm's reason, when it gives one.
    pub reason: String,
}

/// What Slurm recorded for task `index` of `job_id`: `scontrol` while the controller keeps the job
/// (MinJobAge), else `sacct` where accounting exists; None when neither knows it (a task cancelled while
/// pending leaves no trace).
pub fn ended(job_id: &str, index: usize) -> Option<Ended> {
    let task = format!("{job_id}_{index}");
    if let Ok(o) = run("scontrol", &["-o", "show", "job", &task]) {
        if o.status.success() {
            let text = String::from_utf8_lossy(&o.stdout);
            let field = |key: &str| {
                text.split_whitespace().find_map(|w| w.strip_prefix(key)).map(str::to_string).unwrap_or_default()
            };
            let state = field("JobState=");
            if !state.is_empty() {
                return Some(Ended { state, exit_code: field("ExitCode="), reason: field("Reason=") });
            }
        }
    }
    let o = run("sacct", &["-n", "-P", "-X", "-j", &task, "-o", "State,ExitCode"]).ok()?;
    if !o.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&o.stdout);
    let line = text.lines().next()?;
    let (state, exit_code) = line.split_once('|')?;
    // sacct writes `CANCELLED by 0`.
    let state = state.split_whitespace().next()?.to_string();
    Some(Ended { state, exit_code: exit_code.to_string(), reason: String::new() })
}

/// `scancel JOB`: every task of the array, pending or running.
pub fn cancel(job_id: &str) -> Result<()> {
    let o = run("scancel", &[job_id])?;
    if !o.status.success() {
        bail!("scancel {job_id} failed: {}", stderr_of(&o));
    }
    Ok(())
}
