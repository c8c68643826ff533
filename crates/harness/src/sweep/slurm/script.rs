//! The sbatch script of a sweep: one job array, array task i trains run `tasks[i]` with
//! `dpft train --resume-or-start`, so that a task Slurm requeues (pre-emption, node failure) continues from
//! the run's last checkpoint. The script is written into the sweep folder (`slurm/`) and can be read,
//! or resubmitted by hand, as it is.

use std::path::{Path, PathBuf};

use super::settings::SlurmSettings;

/// What the script needs besides the settings.
pub struct ScriptInputs<'a> {
    /// The sweep's name (the job is named `dpft-<name>`).
    pub name: &'a str,
    /// The sweep file, for the header.
    pub sweep_file: &'a Path,
    /// The sweep folder (absolute).
    pub out: &'a Path,
    /// The folder the runs start in (absolute): where `dpft sweep` was started, so that relative paths
    /// in the run configs (`model.path: results/pretrained/gpt2-mini`) mean what they mean locally.
    pub workdir: &'a Path,
    /// Run ids, by array index.
    pub tasks: &'a [String],
    /// The dpft executable (absolute; the cluster's nodes see the same file system).
    pub dpft: &'a Path,
    /// Global dpft flags for every run (`--data-dir …`, `--device …`).
    pub dpft_args: &'a [String],
}

/// Single-quotes `s` for bash.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn quote_path(p: &Path) -> String {
    quote(&p.display().to_string())
}

/// The script's text.
pub fn render(settings: &SlurmSettings, inputs: &ScriptInputs) -> String {
    let n = inputs.tasks.len();
    let mut array = format!("0-{}", n.saturating_sub(1));
    if let Some(k) = settings.max_concurrent {
        array.push_str(&format!("%{k}"));
    }
    let logs = inputs.out.join("logs");
    let mut s = String::from("#!/bin/bash\n");
    s.push_str(&format!(
        "# Written by `dpft sweep --backend slurm` for {} ({n} runs); submitted with `sbatch --parsable`.\n",
        inputs.sweep_file.display()
    ));
    s.push_str(
        "# Array task i trains run RUN_IDS[i] of the sweep folder below; its output goes to logs/<run id>.log,\n",
    );
    s.push_str(
        "# Slurm's own messages to logs/slurm-<job>_<task>.out. A requeued task continues from the run's checkpoint.\n",
    );
    let mut directive = |line: String| s.push_str(&format!("#SBATCH {line}\n"));
    directive(format!("--job-name=dpft-{}", inputs.name));
    directive(format!("--array={array}"));
    directive(format!("--chdir={}", inputs.workdir.display()));
    directive(format!("--output={}", logs.join("slurm-%A_%a.out").display()));
    directive("--open-mode=append".into());
    directive("--requeue".into());
    directive("--ntasks=1".into());
    if let Some(p) = &settings.partition {
        directive(format!("--partition={p}"));
    }
    if let Some(t) = &settings.time {
        directive(format!("--time={t}"));
    }
    if let Some(c) = settings.cpus_per_run {
        directive(format!("--cpus-per-task={c}"));
    }
    if let Some(m) = &settings.mem {
        directive(format!("--mem={m}"));
    }
    if settings.gpus() > 0 {
        directive(format!("--gres=gpu:{}", settings.gpus()));
    }
    for arg in &settings.sbatch_args {
        directive(arg.clone());
    }
    s.push_str("\nset -euo pipefail\n");
    s.push_str(&format!("OUT={}\n", quote_path(inputs.out)));
    s.push_str("RUN_IDS=(\n");
    for id in inputs.tasks {
        s.push_str(&format!("  {}\n", quote(id)));
    }
    s.push_str(")\n");
    s.push_str("ID=${RUN_IDS[$SLURM_ARRAY_TASK_ID]}\n");
    s.push_str("# libtorch threads: the cores Slurm gave the task.\n");
    s.push_str("export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-${OMP_NUM_THREADS:-1}}\n");
    s.push_str(
        "echo \"[dpft] job ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}: run $ID on $(hostname -s), attempt $((${SLURM_RESTART_COUNT:-0} + 1)), $(date -u +%FT%TZ)\"\n",
    );
    let args: Vec<String> = inputs.dpft_args.iter().map(|a| quote(a)).collect();
    s.push_str(&format!(
        "exec {} {} train \"$OUT/configs/$ID.yaml\" --out \"$OUT/$ID\" --resume-or-start >>\"$OUT/logs/$ID.log\" 2>&1\n",
        quote_path(inputs.dpft),
        args.join(" ")
    ));
    s
}

/// `slurm/submit-<k>.sbatch` in the sweep folder, k counting the submissions.
pub fn script_path(out: &Path, submission: usize) -> PathBuf {
    out.join("slurm").join(format!("submit-{submission}.sbatch"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_maps_array_indices_to_run_ids_and_carries_the_settings() {
        let settings = SlurmSettings {
            partition: Some("gpu".into()),
            time: Some("02:00:00".into()),
            gpus_per_run: Some(1),
            cpus_per_run: Some(4),
            mem: Some("16G".into()),
            max_concurrent: Some(2),
            sbatch_args: vec!["--account=lab".into()],
            ..Default::default()
        };
        let tasks = vec!["a-1".to_string(), "b'2".to_string(), "c-3".to_string()];
        let args = vec!["--device".to_string(), "cuda".to_string()];
        let text = render(
            &settings,
            &ScriptInputs {
                name: "table2",
                sweep_file: Path::new("experiments/table2.yaml"),
                out: Path::new("/runs/table2"),
                workdir: Path::new("/home/me/dpft"),
                tasks: &tasks,
                dpft: Path::new("/opt/dpft"),
                dpft_args: &args,
            },
        );
        for line in [
            "#SBATCH --array=0-2%2",
            "#SBATCH --job-name=dpft-table2",
            "#SBATCH --chdir=/home/me/dpft",
            "#SBATCH --output=/runs/table2/logs/slurm-%A_%a.out",
            "#SBATCH --partition=gpu",
            "#SBATCH --time=02:00:00",
            "#SBATCH --cpus-per-task=4",
            "#SBATCH --mem=16G",
            "#SBATCH --gres=gpu:1",
            "#SBATCH --account=lab",
            "#SBATCH --requeue",
            "  'b'\\''2'",
            "exec '/opt/dpft' '--device' 'cuda' train \"$OUT/configs/$ID.yaml\" --out \"$OUT/$ID\" --resume-or-start >>\"$OUT/logs/$ID.log\" 2>&1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        // sbatch reads directives only before the first command.
        let first_command = text.lines().position(|l| l.starts_with("set -euo")).unwrap();
        assert!(text.lines().skip(first_command).all(|l| !l.starts_with("#SBATCH")));
    }
}
