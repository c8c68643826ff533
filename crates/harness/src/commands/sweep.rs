//! `dpft sweep FILE.yaml`: expands the sweep, checks every run's config, then runs them here (local
//! backend) or submits them to Slurm (slurm backend); `--dry-run` lists them, `--status` shows an earlier
//! invocation's state, `--cancel` cancels its Slurm job.

use std::path::PathBuf;

use anyhow::Result;
use dp_core::DeviceSpec;

use crate::cli::{GlobalArgs, SlurmArgs, SweepArgs};
use crate::exit::BadInput;
use crate::sweep::local::{self, RunOptions};
use crate::sweep::slurm::{self, settings::SlurmSettings, SubmitOptions, Submitted};
use crate::sweep::spec::SweepSpec;
use crate::sweep::store::{self, Backend, SweepState};

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

fn cli_settings(a: &SlurmArgs) -> SlurmSettings {
    SlurmSettings {
        partition: a.partition.clone(),
        time: a.time.clone(),
        gpus_per_run: a.gpus_per_run,
        cpus_per_run: a.cpus_per_run,
        mem: a.mem.clone(),
        max_concurrent: a.max_concurrent,
        sbatch_args: a.sbatch_args.clone(),
        wait: if a.no_wait {
            Some(false)
        } else if a.wait {
            Some(true)
        } else {
            None
        },
        poll_seconds: a.poll,
    }
}

/// Whether any Slurm option was given on the command line.
fn any_slurm_option(a: &SlurmArgs) -> bool {
    cli_settings(a) != SlurmSettings::default()
}

/// `--data-dir` (absolute) for every run.
fn data_dir_args(global: &GlobalArgs) -> Result<Vec<String>> {
    let mut args = Vec::new();
    if let Some(d) = &global.data_dir {
        args.push("--data-dir".to_string());
        args.push(std::path::absolute(d)?.display().to_string());
    }
    Ok(args)
}

/// The device of a Slurm run: CUDA when it asks for GPUs, else the CPU; an explicit `--device` must agree.
fn slurm_device(global: &GlobalArgs, gpus: u32) -> Result<String> {
    Ok(match (global.device, gpus) {
        (DeviceSpec::Auto, 0) => "cpu".into(),
        (DeviceSpec::Auto, _) => "cuda".into(),
        (DeviceSpec::Cpu, _) => "cpu".into(),
        (d, 0) => {
            return Err(BadInput(format!(
                "--device {d} with --backend slurm needs GPUs per run: add --gpus-per-run 1 (or slurm.gpus_per_run in the sweep file)"
            ))
            .into())
        }
        (d, _) => d.to_string(),
    })
}

/// `--status`: the state of an earlier invocation.
fn status(out: &std::path::Path) -> Result<()> {
    let Some(mut sweep) = SweepState::load(out)? else {
        return Err(BadInput(format!("{} holds no sweep (no sweep.json): nothing to show", out.display())).into());
    };
    if sweep.slurm.is_some() {
        slurm::queue::tool("squeue")?;
        slurm::refresh(&mut sweep, out)?;
        sweep.save(out)?;
    }
    println!("{}", store::summary_table(&sweep.runs));
    let count = |s: &str| sweep.runs.iter().filter(|r| r.status == s).count();
    let done = count("finished") + count("stopped_at_budget");
    print!("{done} of {} runs finished", sweep.runs.len());
    for s in ["running", "pending", "failed", "cancelled"] {
        if count(s) > 0 {
            print!(", {} {s}", count(s));
        }
    }
    match &sweep.slurm {
        Some(job) => println!(" (Slurm job {}; {})", job.job_id, out.join(&job.script).display()),
        None => println!(" (local backend)"),
    }
    Ok(())
}

/// Runs the command.
pub fn run(global: &GlobalArgs, args: &SweepArgs) -> Result<()> {
    if args.jobs == Some(0) {
        return Err(BadInput("--jobs must be at least 1".into()).into());
    }
    let spec = SweepSpec::load(&args.file, args.profile.as_deref())?;
    let out = args.out.clone().unwrap_or_else(|| {
        let mut p = PathBuf::from("results").join(&spec.name);
        if let Some(profile) = &spec.profile {
            p.push(profile);
        }
        p
    });
    if args.status {
        return status(&out);
    }
    if args.cancel {
        let Some(mut sweep) = SweepState::load(&out)? else {
            return Err(BadInput(format!("{} holds no sweep (no sweep.json): nothing to cancel", out.display())).into());
        };
        slurm::cancel(&mut sweep, &out)?;
        println!("{}", store::summary_table(&sweep.runs));
        println!("cancelled; `dpft sweep {} --resume` submits the unfinished runs again", args.file.display());
        return Ok(());
    }
    if args.backend == Backend::Local && any_slurm_option(&args.slurm) {
        return Err(BadInput(
            "--partition, --time, --gpus-per-run, --cpus-per-run, --mem, --max-concurrent, --sbatch-arg, --wait, --no-wait and --poll apply to --backend slurm".into(),
        )
        .into());
    }
    if args.backend == Backend::Slurm && args.jobs.is_some() {
        return Err(BadInput(
            "--jobs applies to --backend local; with slurm, limit runs at a time with --max-concurrent".into(),
        )
        .into());
    }
    let mut runs = spec.expand(&args.overrides)?;
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
        print!("{}", store::dry_run_listing(&spec, &runs, &out));
        return Ok(());
    }
    store::preflight(&spec, &runs, &out, args.resume)?;
    if args.resume {
        slurm::refuse_if_active(&out)?;
    }
    if args.backend == Backend::Slurm {
        return run_slurm(global, args, &spec, &runs, out);
    }
    let devices = devices(global)?;
    let jobs = args.jobs.unwrap_or(devices.len()).min(runs.len());
    // CPU threads are split between concurrent runs; GPU runs keep libtorch's default.
    let cpu = devices.iter().all(|d| d == "cpu") || (devices == ["auto"] && tch::Cuda::device_count() == 0);
    let threads_per_run = (cpu && jobs > 1 && std::env::var_os("OMP_NUM_THREADS").is_none()).then(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cores / jobs).max(1)
    });
    let child_args = data_dir_args(global)?;
    let opts = RunOptions { jobs, out: out.clone(), child_args, devices, threads_per_run };
    let outcome = local::run_all(&spec, &runs, &opts)?;
    println!("{}", store::summary_table(&outcome.runs));
    println!("runs and sweep.json in {}", out.display());
    store::check_failures(&outcome, &out)
}

fn run_slurm(
    global: &GlobalArgs,
    args: &SweepArgs,
    spec: &SweepSpec,
    runs: &[crate::sweep::spec::RunSpec],
    out: PathBuf,
) -> Result<()> {
    let settings = spec.slurm.overridden_by(&cli_settings(&args.slurm));
    settings.check().map_err(|e| BadInput(format!("--{}", e.replacen('_', "-", 2))))?;
    if settings.gpus() > 1 {
        log::warn!("dpft train uses one GPU per run; --gpus-per-run {} reserves GPUs it will not use", settings.gpus());
    }
    let out = std::path::absolute(&out)?;
    let mut dpft_args = data_dir_args(global)?;
    dpft_args.extend(["--device".to_string(), slurm_device(global, settings.gpus())?]);
    let opts = SubmitOptions { out: out.clone(), settings, dpft_args };
    match slurm::submit(spec, runs, &opts)? {
        Submitted::NothingToDo(outcome) => {
            println!("{}", store::summary_table(&outcome.runs));
            println!("every run had finished: nothing submitted ({})", out.display());
            Ok(())
        }
        Submitted::Queued { job_id, runs } => {
            println!(
                "submitted Slurm job {job_id}: {runs} runs. Follow it with `dpft sweep {} --status`, stop it with `--cancel`; results go to {}",
                args.file.display(),
                out.display()
            );
            Ok(())
        }
        Submitted::Done(outcome) => {
            println!("{}", store::summary_table(&outcome.runs));
            println!("runs and sweep.json in {}", out.display());
            store::check_failures(&outcome, &out)
        }
    }
}
