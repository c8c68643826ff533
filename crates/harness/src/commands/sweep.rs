//! `dpft sweep FILE.yaml`: expands the sweep, checks every run's config, then runs them (or lists them
//! with `--dry-run`).

use std::path::PathBuf;

use anyhow::Result;
use dp_core::DeviceSpec;

use crate::cli::{GlobalArgs, SweepArgs};
use crate::exit::BadInput;
use crate::sweep::runner::{self, RunOptions};
use crate::sweep::spec::SweepSpec;

/// One device flag per slot: every visible GPU in turn when the device is CUDA and several are visible
/// (one run per GPU), else the chosen device for all.
fn devices(global: &GlobalArgs) -> Result<Vec<String>> {
    let count = tch::Cuda::device_count().max(0) as usize;
    Ok(match global.device {
        DeviceSpec::Auto if count > 1 => (0..count).map(|i| format!("cuda:{i}")).collect(),
        DeviceSpec::Cuda(0) if count > 1 => (0..count).map(|i| format!("cuda:{i}")).collect(),
        spec => {
            spec.resolve()?; // a device that is not there fails here, before any run
            vec![spec.to_string()]
        }
    })
}

/// Runs the command.
pub fn run(global: &GlobalArgs, args: &SweepArgs) -> Result<()> {
    if args.jobs == Some(0) {
        return Err(BadInput("--jobs must be at least 1".into()).into());
    }
    let spec = SweepSpec::load(&args.file, args.profile.as_deref())?;
    let mut runs = spec.expand(&args.overrides)?;
    let out = args.out.clone().unwrap_or_else(|| {
        let mut p = PathBuf::from("results").join(&spec.name);
        if let Some(profile) = &spec.profile {
            p.push(profile);
        }
        p
    });
    // One sweep process per output folder (its runs lock their own folders).
    let _lock = if args.dry_run { None } else { Some(crate::lock::FolderLock::acquire(&out, "sweep folder")?) };
    if let Some(selection) = spec.selection {
        let draw = crate::sweep::selection::load_or_draw(&out, selection, runs.len(), args.resume, args.dry_run)?;
        runs = crate::sweep::selection::candidate_runs(&draw, &runs);
        log::info!(
            "selection: {} candidates drawn from the {}-point grid ({})",
            runs.len(),
            draw.grid_size,
            out.join("selection.json").display()
        );
        if runs.is_empty() {
            println!("selection drew no candidate (K = 0): nothing runs and nothing is released");
            return Ok(());
        }
    }
    if args.dry_run {
        print!("{}", runner::dry_run_listing(&spec, &runs, &out));
        return Ok(());
    }
    let devices = devices(global)?;
    let jobs = args.jobs.unwrap_or(devices.len()).min(runs.len());
    // CPU threads are split between concurrent runs; GPU runs keep libtorch's default.
    let cpu = devices.iter().all(|d| d == "cpu") || (devices == ["auto"] && tch::Cuda::device_count() == 0);
    let threads_per_run = (cpu && jobs > 1 && std::env::var_os("OMP_NUM_THREADS").is_none()).then(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cores / jobs).max(1)
    });
    let mut child_args = Vec::new();
    if let Some(d) = &global.data_dir {
        child_args.push("--data-dir".to_string());
        child_args.push(std::path::absolute(d)?.display().to_string());
    }
    let opts = RunOptions { jobs, resume: args.resume, out: out.clone(), child_args, devices, threads_per_run };
    runner::preflight(&spec, &runs, &opts)?;
    let outcome = runner::run_all(&spec, &runs, &opts)?;
    println!("{}", runner::summary_table(&outcome.runs));
    println!("runs and sweep.json in {}", out.display());
    runner::check_failures(&outcome, &out)
}
