//! `dpft bench`: times whole training steps of one mode and reports median step time, throughput and
//! peak memory ([`crate::bench`]); or, with `--max-batch`, the largest batch that fits a memory limit.

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use models::AnyModel;
use serde_json::{json, Value};
use tch::Device;

use super::model_io::{load_options, write_atomic};
use crate::bench::max_batch::{human_bytes, search, Trial};
use crate::bench::step::{median, DpSettings, Stepper, Workload};
use crate::bench::{memory, resolve_model};
use crate::cli::{BenchArgs, DtypeArg, GlobalArgs};
use crate::exit::BadInput;

fn dtype_name(d: DtypeArg) -> &'static str {
    match d {
        DtypeArg::F32 => "f32",
        DtypeArg::F64 => "f64",
        DtypeArg::Bf16 => "bf16",
    }
}

fn check(args: &BenchArgs) -> Result<()> {
    let bad = |m: String| Err(BadInput(m).into());
    if args.seq_len < 2 {
        return bad(format!("--seq-len {} is too short: the causal-LM loss needs at least 2 tokens", args.seq_len));
    }
    if matches!(args.batch_size, Some(b) if b < 1) {
        return bad(format!("--batch-size {} must be at least 1", args.batch_size.unwrap_or(0)));
    }
    if args.steps < 1 {
        return bad("--steps must be at least 1 (the median of no steps is undefined)".into());
    }
    if !(args.max_grad_norm.is_finite() && args.max_grad_norm > 0.0) {
        return bad(format!("--max-grad-norm {} must be a positive number", args.max_grad_norm));
    }
    if !(args.noise_multiplier.is_finite() && args.noise_multiplier >= 0.0) {
        return bad(format!("--noise-multiplier {} must be a finite number ≥ 0", args.noise_multiplier));
    }
    if args.max_batch_cap < 1 {
        return bad(format!("--max-batch-cap {} must be at least 1", args.max_batch_cap));
    }
    Ok(())
}

/// Longest sequence the model takes.
fn max_seq_len(model: &AnyModel) -> i64 {
    match model {
        AnyModel::Gpt2(_) | AnyModel::Llama(_) => model.as_causal().map_or(0, |m| m.text_positions()),
        // RoBERTa numbers positions from pad_token_id + 1.
        AnyModel::Encoder(m) if m.config.is_roberta() => m.config.max_position_embeddings - m.config.pad_token_id - 1,
        AnyModel::Encoder(m) => m.config.max_position_embeddings,
    }
}

/// A lower bound of one step's memory against what the machine has: GPT-2's logits and their gradient
/// `[B, T, vocab]` twice; an encoder's hidden states `[B, T, hidden]` once per layer.
fn check_step_fits(model: &AnyModel, batch: i64, seq_len: i64, opts: &models::LoadOptions) -> Result<()> {
    let (b, t) = (batch as u64, seq_len as u64);
    let elements = match model {
        AnyModel::Gpt2(_) | AnyModel::Llama(_) => [2, b, t, model.as_causal().map_or(0, |m| m.vocab_size()) as u64],
        AnyModel::Encoder(m) => [m.config.num_hidden_layers as u64, b, t, m.config.hidden_size as u64],
    };
    let need = crate::memory_guard::tensor_bytes(&elements, opts.kind);
    let what = format!("a step on batch {batch} × {seq_len} tokens");
    crate::memory_guard::check_fits(opts.device, need, &what, "--batch-size or --seq-len")
}

fn emit(args: &BenchArgs, report: &Value, human: &str) -> Result<()> {
    if let Some(path) = &args.out {
        write_atomic(path, (serde_json::to_string_pretty(report)? + "\n").as_bytes())?;
        log::info!("wrote {}", path.display());
    }
    if args.json {
        println!("{report}");
    } else {
        print!("{human}");
    }
    Ok(())
}

pub fn run(global: &GlobalArgs, args: &BenchArgs) -> Result<()> {
    check(args)?;
    if args.max_batch {
        return run_max_batch(global, args);
    }
    let batch = args.batch_size.expect("clap requires --batch-size without --max-batch");
    let opts = load_options(global, args.dtype)?;
    let mut resolved = resolve_model(&args.model, &opts, args.seed as i64)?;
    if args.untie_lm_head {
        match &mut resolved.model {
            AnyModel::Gpt2(m) => m.untie_lm_head(),
            AnyModel::Llama(m) => m.untie_lm_head(),
            AnyModel::Encoder(_) => {
                bail!(BadInput(
                    "--untie-lm-head applies to GPT-2 (an encoder's classification head is not tied)".into()
                ))
            }
        }
    }
    let longest = max_seq_len(&resolved.model);
    if args.seq_len > longest {
        bail!(BadInput(format!("--seq-len {} exceeds the {longest} positions the model takes", args.seq_len)));
    }
    let stepper_model_tied = match &resolved.model {
        AnyModel::Gpt2(m) => Some(m.is_tied()),
        AnyModel::Llama(m) => Some(m.is_tied()),
        AnyModel::Encoder(_) => None,
    };
    check_step_fits(&resolved.model, batch, args.seq_len, &opts)?;
    let workload = Workload::new(resolved.model, batch, args.seq_len, args.seed as i64)?;
    let dp = DpSettings { max_grad_norm: args.max_grad_norm, noise_multiplier: args.noise_multiplier };
    let mut stepper = Stepper::new(workload, args.mode, dp, args.seed)?;
    let parameters = stepper.parameters();
    log::info!(
        "{}: {parameters} trainable parameters ({} weights), mode {}, batch {batch} × {} tokens",
        args.model,
        resolved.weights,
        args.mode.name(),
        args.seq_len
    );
    let total = (args.warmup + args.steps) as u64;
    let bar = ProgressBar::new(total);
    bar.set_style(ProgressStyle::with_template("{bar:30} step {pos}/{len} {msg} eta {eta}").expect("template"));
    let mut times = Vec::with_capacity(args.steps);
    let mut phase_times: Vec<(&'static str, Vec<f64>)> = Vec::new();
    for i in 0..args.warmup + args.steps {
        let (t, phases) = stepper.step()?;
        log::debug!("step {} ({}): {t:.4} s", i + 1, if i < args.warmup { "warm-up" } else { "timed" });
        if i >= args.warmup {
            times.push(t);
            for (name, secs) in phases {
                match phase_times.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, v)) => v.push(secs),
                    None => phase_times.push((name, vec![secs])),
                }
            }
        }
        bar.set_message(format!("{t:.3} s"));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let device = opts.device;
    let mem = memory::peak(device);
    let med = median(&times);
    let phases: serde_json::Map<String, Value> =
        phase_times.iter().map(|(n, v)| (n.to_string(), json!(median(v)))).collect();
    let report = with_head(
        args,
        device,
        json!({
            "weights": resolved.weights,
            "batch_size": batch,
            "median_step_s": med,
            "examples_per_s": batch as f64 / med,
            "peak_mem_bytes": mem.bytes,
            "peak_mem_kind": mem.kind,
            "step_times_s": times,
            "phase_median_s": phases,
            "steps": args.steps,
            "warmup": args.warmup,
            "threads": tch::get_num_threads(),
            "parameters": parameters,
            "max_grad_norm": args.max_grad_norm,
            "noise_multiplier": args.noise_multiplier,
            "lm_head_tied": stepper_model_tied,
        }),
    );
    let (lo, hi) = times.iter().fold((f64::INFINITY, 0f64), |(a, b), &t| (a.min(t), b.max(t)));
    let human = format!(
        "dpft bench: {} ({} weights, {parameters} trainable parameters), mode {}, batch {batch} × {} tokens, {}, {}, {} threads\n  \
         median step   {med:.4} s   (min {lo:.4}, max {hi:.4} over {} steps after {} warm-up)\n  \
         throughput    {:.2} examples/s\n  \
         peak memory   {}   ({})\n  \
         phases        {}\n",
        args.model,
        resolved.weights,
        args.mode.name(),
        args.seq_len,
        device_name(device),
        dtype_name(args.dtype),
        tch::get_num_threads(),
        args.steps,
        args.warmup,
        batch as f64 / med,
        mem.bytes.map_or("unavailable".into(), human_bytes),
        mem.kind,
        phase_times.iter().map(|(n, v)| format!("{n} {:.4} s", median(v))).collect::<Vec<_>>().join(", "),
    );
    emit(args, &report, &human)
}

/// `body` with the keys every report starts with: what ran, where, in which precision.
fn with_head(args: &BenchArgs, device: Device, body: Value) -> Value {
    let mut report = json!({
        "impl": "dpft",
        "version": env!("CARGO_PKG_VERSION"),
        "mode": args.mode.name(),
        "model": args.model,
        "seq_len": args.seq_len,
        "device": device_name(device),
        "dtype": dtype_name(args.dtype),
    });
    if let (Value::Object(head), Value::Object(body)) = (&mut report, body) {
        head.extend(body);
    }
    report
}

fn device_name(device: Device) -> String {
    match device {
        Device::Cuda(i) => format!("cuda:{i}"),
        _ => "cpu".into(),
    }
}

fn run_max_batch(global: &GlobalArgs, args: &BenchArgs) -> Result<()> {
    let limit = args.mem_limit.expect("clap requires --mem-limit with --max-batch");
    let device = global.device.resolve()?;
    let exe = std::env::current_exe()?;
    let child_args: Vec<String> = [
        "bench",
        "--model",
        &args.model,
        "--seq-len",
        &args.seq_len.to_string(),
        "--mode",
        args.mode.name(),
        "--steps",
        "1",
        "--warmup",
        "1",
        "--dtype",
        dtype_name(args.dtype),
        "--max-grad-norm",
        &args.max_grad_norm.to_string(),
        "--noise-multiplier",
        &args.noise_multiplier.to_string(),
        "--seed",
        &args.seed.to_string(),
        "--device",
        &device_name(device),
        "--json",
        "-q",
    ]
    .into_iter()
    .chain(args.untie_lm_head.then_some("--untie-lm-head"))
    .collect::<Vec<_>>()
    .iter()
    .map(|s| s.to_string())
    .collect();
    log::info!(
        "largest batch of {} ({}, {} tokens) within {} on {}: one process per candidate",
        args.model,
        args.mode.name(),
        args.seq_len,
        human_bytes(limit),
        device_name(device)
    );
    let mut on_trial = |t: &Trial| {
        let peak = t.peak_mem_bytes.map_or("?".into(), human_bytes);
        match (&t.reason, t.median_step_s) {
            (None, Some(s)) => log::info!("  batch {:>5}: fits (peak {peak}, {s:.3} s/step)", t.batch_size),
            (reason, _) => {
                log::info!("  batch {:>5}: does not fit ({})", t.batch_size, reason.as_deref().unwrap_or(""))
            }
        }
    };
    let watch_rss = !matches!(device, Device::Cuda(_));
    let (best, trials) = search(&exe, &child_args, limit, args.max_batch_cap, watch_rss, &mut on_trial)?;
    let at_best = trials.iter().find(|t| t.batch_size == best && t.fits);
    let med = at_best.and_then(|t| t.median_step_s);
    let report = with_head(
        args,
        device,
        json!({
            "mem_limit_bytes": limit,
            "max_batch_size": best,
            "max_batch_cap": args.max_batch_cap,
            "batch_size": best,
            "median_step_s": med,
            "examples_per_s": med.map(|m| best as f64 / m),
            "peak_mem_bytes": at_best.and_then(|t| t.peak_mem_bytes),
            "peak_mem_kind": memory::peak(device).kind,
            "trials": trials,
        }),
    );
    let human = format!(
        "dpft bench --max-batch: {} mode {}, {} tokens, limit {}: largest batch {best}{}\n  ({} trials; each a warm-up and a timed step in its own process)\n",
        args.model,
        args.mode.name(),
        args.seq_len,
        human_bytes(limit),
        if best == args.max_batch_cap { " (the cap; raise --max-batch-cap)" } else { "" },
        trials.len(),
    );
    emit(args, &report, &human)
}
