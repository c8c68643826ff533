//! `dpft clip-check`: one σ = 0 DP step on a user's checkpoint with the engine and with an independent
//! per-example loop (../shared/docs/oracles.md, "Clipping and the DP step"), compared.
//!
//! The engine sees the whole batch (right-padded, attention mask, labels −100 on padding); the oracle runs
//! each text alone, unpadded, takes the gradient of its loss over every trainable tensor by autograd,
//! clips it to C and sums. Both use c_i = min(1, C / ‖g_i‖) (stability constant 0). A model that used a
//! trainable tensor outside its DP layers would show here as a norm mismatch.

use anyhow::{bail, Result};
use dp_core::engine::{ClipMode, ClipStyle, Clipper, NormMethod, Tape};
use models::{causal_lm_losses, load_gpt2, Gpt2LmHeadModel};
use tch::{Kind, Tensor};

use super::model_io::{input_error, load_options, read_lines, temp_name};
use crate::cli::{ClipCheckArgs, DtypeArg, GlobalArgs, ModeArg};
use crate::exit::BadInput;

#[derive(serde::Serialize)]
struct Report {
    mode: &'static str,
    dtype: &'static str,
    max_grad_norm: f64,
    examples: usize,
    per_example_norms: Vec<f64>,
    oracle_per_example_norms: Vec<f64>,
    max_rel_diff_norms: f64,
    max_rel_diff_grad: f64,
    worst_tensor: String,
    tolerance: f64,
    passed: bool,
}

/// Per-example losses `[B]` of right-padded `batch`.
fn losses(model: &Gpt2LmHeadModel, batch: &[Vec<i64>], pad: i64, device: tch::Device, tape: &mut Tape) -> Result<Tensor> {
    let t = batch.iter().map(Vec::len).max().unwrap_or(0);
    let (mut ids, mut mask, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    for row in batch {
        let fill = t - row.len();
        ids.extend(row.iter().copied().chain(std::iter::repeat_n(pad, fill)));
        mask.extend(std::iter::repeat_n(1i64, row.len()).chain(std::iter::repeat_n(0, fill)));
        labels.extend(row.iter().copied().chain(std::iter::repeat_n(-100, fill)));
    }
    let shape = [batch.len() as i64, t as i64];
    let ids = Tensor::from_slice(&ids).reshape(shape).to(device);
    let mask = Tensor::from_slice(&mask).reshape(shape).to(device);
    let labels = Tensor::from_slice(&labels).reshape(shape).to(device);
    let logits = model.forward(&ids, Some(&mask), None, None, false, tape)?;
    Ok(causal_lm_losses(&logits, &labels)?)
}

pub fn run(global: &GlobalArgs, args: &ClipCheckArgs) -> Result<()> {
    if !(args.max_grad_norm > 0.0 && args.max_grad_norm.is_finite()) {
        return Err(BadInput(format!("--max-grad-norm {} must be a positive number", args.max_grad_norm)).into());
    }
    if args.dtype == DtypeArg::Bf16 {
        return Err(BadInput("clip-check runs in f32 or f64 (bf16 round-off would hide a real mismatch)".into()).into());
    }
    let texts = read_lines(&args.data, "text")?;
    let opts = load_options(global, args.dtype)?;
    let (model, tokenizer) = load_gpt2(&args.model, &opts).map_err(input_error)?;
    let mut batch = Vec::with_capacity(texts.len());
    for (i, text) in texts.iter().enumerate() {
        let ids = tokenizer.encode(text, false).map_err(input_error)?;
        if ids.len() < 2 {
            return Err(BadInput(format!(
                "{}:{}: the text has {} token(s); the loss needs at least 2 (it predicts every token after the first)",
                args.data.display(),
                i + 1,
                ids.len()
            ))
            .into());
        }
        if ids.len() as i64 > model.config.n_positions {
            return Err(BadInput(format!(
                "{}:{}: {} tokens exceed the model's n_positions = {}",
                args.data.display(),
                i + 1,
                ids.len(),
                model.config.n_positions
            ))
            .into());
        }
        batch.push(ids);
    }
    let pad = model.config.pad_token_id.or(model.config.eos_token_id).unwrap_or(0);
    let trainable = model.trainable();
    let c = args.max_grad_norm;

    // The engine, on the whole batch.
    let mode = match args.mode {
        ModeArg::Bk => ClipMode::Bk,
        ModeArg::Ghost => ClipMode::Ghost,
        ModeArg::Naive => ClipMode::Naive,
    };
    let clipper = Clipper { max_grad_norm: c, stability: 0.0, mode, norm_method: NormMethod::Auto, style: ClipStyle::Flat };
    let mut tape = Tape::on();
    let batch_losses = losses(&model, &batch, pad, opts.device, &mut tape)?;
    let out = clipper.clip(&batch_losses, &tape, &trainable)?;
    drop(tape);
    let norms: Vec<f64> = Vec::try_from(out.norms.to_kind(Kind::Double))?;

    // The oracle: each example alone.
    let params: Vec<&Tensor> = trainable.iter().map(|(_, t)| t).collect();
    let mut sums: Vec<Tensor> = params.iter().map(|t| t.zeros_like().to_kind(Kind::Double)).collect();
    let mut oracle_norms = Vec::with_capacity(batch.len());
    for row in &batch {
        let loss = losses(&model, std::slice::from_ref(row), pad, opts.device, &mut Tape::off())?.sum(None::<Kind>);
        let grads = Tensor::f_run_backward(&[loss], &params, false, false)?;
        let norm = grads.iter().map(|g| g.to_kind(Kind::Double).square().sum(Kind::Double).double_value(&[])).sum::<f64>().sqrt();
        if !norm.is_finite() {
            bail!("the per-example loop found a non-finite gradient norm: check the checkpoint for NaN/Inf weights");
        }
        let factor = (c / norm).min(1.0);
        for (s, g) in sums.iter_mut().zip(&grads) {
            *s += g.to_kind(Kind::Double) * factor;
        }
        oracle_norms.push(norm);
    }

    let max_rel_diff_norms =
        norms.iter().zip(&oracle_norms).map(|(a, b)| (a - b).abs() / b.max(f64::MIN_POSITIVE)).fold(0.0, f64::max);
    let total = sums.iter().map(|s| s.square().sum(Kind::Double).double_value(&[])).sum::<f64>().sqrt();
    let floor = total * if args.dtype == DtypeArg::F64 { 1e-6 } else { 1e-3 };
    let mut max_rel_diff_grad = 0.0f64;
    let mut worst_tensor = String::new();
    for ((name, g), o) in out.grads.iter().zip(&sums) {
        let diff = (g.to_kind(Kind::Double) - o).norm().double_value(&[]);
        let rel = diff / o.norm().double_value(&[]).max(floor).max(f64::MIN_POSITIVE);
        if rel > max_rel_diff_grad || worst_tensor.is_empty() {
            max_rel_diff_grad = max_rel_diff_grad.max(rel);
            worst_tensor = name.clone();
        }
    }
    let tolerance = if args.dtype == DtypeArg::F64 { 1e-9 } else { 1e-4 };
    let passed = max_rel_diff_norms <= tolerance && max_rel_diff_grad <= tolerance;

    if let Some(path) = &args.dump {
        let mut tensors: Vec<(String, Tensor)> =
            vec![("per_example_norms".into(), out.norms.to_kind(Kind::Double).to_device(tch::Device::Cpu).contiguous())];
        for (name, g) in &out.grads {
            tensors.push((name.clone(), g.to_device(tch::Device::Cpu).contiguous()));
        }
        let tmp = temp_name(path);
        Tensor::write_safetensors(&tensors, &tmp)?;
        std::fs::rename(&tmp, path)?;
        log::info!("wrote per_example_norms and {} clipped gradients to {}", out.grads.len(), path.display());
    }
    let report = Report {
        mode: match args.mode {
            ModeArg::Bk => "bk",
            ModeArg::Ghost => "ghost",
            ModeArg::Naive => "naive",
        },
        dtype: if args.dtype == DtypeArg::F64 { "f64" } else { "f32" },
        max_grad_norm: c,
        examples: batch.len(),
        per_example_norms: norms,
        oracle_per_example_norms: oracle_norms,
        max_rel_diff_norms,
        max_rel_diff_grad,
        worst_tensor,
        tolerance,
        passed,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("clip-check: {} examples, mode {}, {}, C = {}", report.examples, report.mode, report.dtype, c);
        println!("  {:>4}  {:>18}  {:>18}", "i", "engine norm", "oracle norm");
        for (i, (a, b)) in report.per_example_norms.iter().zip(&report.oracle_per_example_norms).enumerate() {
            println!("  {i:>4}  {a:>18.12e}  {b:>18.12e}");
        }
        println!("  max relative difference, norms:    {:.3e}", report.max_rel_diff_norms);
        println!("  max relative difference, gradient: {:.3e} ({})", report.max_rel_diff_grad, report.worst_tensor);
        println!("  tolerance {:.0e}: {}", tolerance, if passed { "PASSED" } else { "FAILED" });
    }
    if !passed {
        bail!(
            "the engine disagrees with the per-example loop beyond {tolerance:e} (norms {:.3e}, gradient {:.3e} at {}): \
             a trainable tensor may be used outside its DP layer",
            report.max_rel_diff_norms,
            report.max_rel_diff_grad,
            report.worst_tensor
        );
    }
    Ok(())
}
