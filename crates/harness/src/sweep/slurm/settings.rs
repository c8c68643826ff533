//! The Slurm backend's settings: the sweep file's `slurm:` block, overridden key by key by the command
//! line (`--partition`, `--time`, …), checked before anything is written or submitted.

use serde::{Deserialize, Serialize};

/// `slurm:` in a sweep file; the same keys as `dpft sweep`'s Slurm options (the command line wins).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmSettings {
    /// `--partition`: the partition (queue) to submit to [default: the cluster's default partition].
    pub partition: Option<String>,
    /// `--time`: wall-time limit per run, in a form sbatch takes (`HH:MM:SS`, `D-HH:MM:SS`, `MM`, …).
    pub time: Option<String>,
    /// `--gpus-per-run`: GPUs each run asks for (`--gres=gpu:N`); 0 runs on the CPU.
    pub gpus_per_run: Option<u32>,
    /// `--cpus-per-run`: CPU cores each run asks for (`--cpus-per-task`; also its libtorch threads).
    pub cpus_per_run: Option<u32>,
    /// `--mem`: memory per run (sbatch's `--mem`: a number with an optional K, M, G or T suffix).
    pub mem: Option<String>,
    /// `--max-concurrent`: at most K runs at a time (the array's `%K` throttle).
    pub max_concurrent: Option<u32>,
    /// `--sbatch-arg`: further sbatch options, one per entry (e.g. `--account=lab`, `--qos=high`).
    #[serde(default)]
    pub sbatch_args: Vec<String>,
    /// `--wait` / `--no-wait`: watch the job until every run is done [default: true].
    pub wait: Option<bool>,
    /// `--poll`: seconds between two looks at the queue while waiting [default: 15].
    pub poll_seconds: Option<f64>,
}

/// sbatch options the backend sets itself: given again they would break the array or its logs.
const RESERVED: [&str; 8] = ["--array", "-a", "--output", "-o", "--error", "-e", "--parsable", "--wrap"];

impl SlurmSettings {
    /// `self` with every key `cli` sets replaced (sbatch arguments: the file's, then the command line's).
    pub fn overridden_by(&self, cli: &SlurmSettings) -> SlurmSettings {
        SlurmSettings {
            partition: cli.partition.clone().or_else(|| self.partition.clone()),
            time: cli.time.clone().or_else(|| self.time.clone()),
            gpus_per_run: cli.gpus_per_run.or(self.gpus_per_run),
            cpus_per_run: cli.cpus_per_run.or(self.cpus_per_run),
            mem: cli.mem.clone().or_else(|| self.mem.clone()),
            max_concurrent: cli.max_concurrent.or(self.max_concurrent),
            sbatch_args: self.sbatch_args.iter().chain(&cli.sbatch_args).cloned().collect(),
            wait: cli.wait.or(self.wait),
            poll_seconds: cli.poll_seconds.or(self.poll_seconds),
        }
    }

    /// GPUs per run (0 when not set).
    pub fn gpus(&self) -> u32 {
        self.gpus_per_run.unwrap_or(0)
    }

    /// Whether to watch the job to its end.
    pub fn waits(&self) -> bool {
        self.wait.unwrap_or(true)
    }

    /// Seconds between polls.
    pub fn poll(&self) -> f64 {
        self.poll_seconds.unwrap_or(15.0)
    }

    /// Checks every value; the message names the key and what it takes.
    pub fn check(&self) -> Result<(), String> {
        if let Some(p) = &self.partition {
            if p.is_empty() || p.chars().any(|c| c.is_whitespace() || c == '\'' || c == '"') {
                return Err(format!("partition = {p:?}: give a partition name such as gpu (`sinfo -s` lists them)"));
            }
        }
        if let Some(t) = &self.time {
            if !is_slurm_time(t) {
                return Err(format!(
                    "time = {t:?}: give a wall-time limit as sbatch takes it: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS"
                ));
            }
        }
        if let Some(m) = &self.mem {
            let digits = m.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
            if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) || m.len() > digits.len() + 1 {
                return Err(format!("mem = {m:?}: give memory per run as sbatch takes it, e.g. 16G or 4000M"));
            }
        }
        if self.cpus_per_run == Some(0) {
            return Err("cpus_per_run = 0: give at least 1".into());
        }
        if self.max_concurrent == Some(0) {
            return Err("max_concurrent = 0: give at least 1 (or leave it out for no limit)".into());
        }
        if let Some(p) = self.poll_seconds {
            if !(p.is_finite() && p >= 0.1) {
                return Err(format!("poll_seconds = {p}: give at least 0.1"));
            }
        }
        for arg in &self.sbatch_args {
            if !arg.starts_with('-') || arg.contains('\n') {
                return Err(format!(
                    "sbatch_args: {arg:?} is not one sbatch option (give each as --name=value, e.g. --account=lab)"
                ));
            }
            let name = arg.split('=').next().unwrap_or(arg);
            if RESERVED.contains(&name) {
                return Err(format!(
                    "sbatch_args: {name} is set by dpft (one array task per run, logs in the sweep folder's logs/); leave it out"
                ));
            }
        }
        Ok(())
    }
}

/// Whether `t` is one of sbatch's `--time` forms.
fn is_slurm_time(t: &str) -> bool {
    let number = |s: &str| !s.is_empty() && s.len() <= 6 && s.chars().all(|c| c.is_ascii_digit());
    let (days, rest) = match t.split_once('-') {
        Some((d, r)) => (Some(d), r),
        None => (None, t),
    };
    if days.is_some_and(|d| !number(d)) {
        return false;
    }
    let parts: Vec<&str> = rest.split(':').collect();
    parts.iter().all(|p| number(p)) && (1..=3).contains(&parts.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_time_forms() {
        for ok in ["30", "30:00", "02:00:00", "1-12", "1-12:30", "1-12:30:00"] {
            assert!(is_slurm_time(ok), "{ok}");
        }
        for bad in ["", "2h", "1:2:3:4", "x-1", "-1", "01:"] {
            assert!(!is_slurm_time(bad), "{bad}");
        }
    }

    #[test]
    fn the_command_line_wins_and_arguments_add_up() {
        let file = SlurmSettings {
            partition: Some("cpu".into()),
            time: Some("1:00:00".into()),
            sbatch_args: vec!["--account=a".into()],
            ..Default::default()
        };
        let cli = SlurmSettings {
            partition: Some("gpu".into()),
            sbatch_args: vec!["--qos=high".into()],
            wait: Some(false),
            ..Default::default()
        };
        let s = file.overridden_by(&cli);
        assert_eq!(s.partition.as_deref(), Some("gpu"));
        assert_eq!(s.time.as_deref(), Some("1:00:00"));
        assert_eq!(s.sbatch_args, ["--account=a", "--qos=high"]);
        assert!(!s.waits());
    }

    #[test]
    fn bad_values_are_named() {
        let bad = |s: SlurmSettings, key: &str| {
            let e = s.check().unwrap_err();
            assert!(e.starts_with(key), "{e}");
        };
        bad(SlurmSettings { time: Some("2h".into()), ..Default::default() }, "time");
        bad(SlurmSettings { mem: Some("lots".into()), ..Default::default() }, "mem");
        bad(SlurmSettings { mem: Some("16GB".into()), ..Default::default() }, "mem");
        bad(SlurmSettings { max_concurrent: Some(0), ..Default::default() }, "max_concurrent");
        bad(SlurmSettings { sbatch_args: vec!["--array=0-3".into()], ..Default::default() }, "sbatch_args");
        bad(SlurmSettings { sbatch_args: vec!["account=x".into()], ..Default::default() }, "sbatch_args");
        bad(SlurmSettings { partition: Some("a b".into()), ..Default::default() }, "partition");
        assert!(SlurmSettings { mem: Some("16G".into()), time: Some("2:00:00".into()), ..Default::default() }
            .check()
            .is_ok());
    }
}
