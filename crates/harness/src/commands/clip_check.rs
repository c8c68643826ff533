//! `dpft clip-check`: one σ = 0 DP step on a user's checkpoint, the engine against an independent
//! per-example loop ([`models::clip_check`]), stability constant 0; prints, dumps and judges the result.

use anyhow::{bail, Context, Result};
use dp_core::engine::{ClipMode, ClipStyle, Clipper, NormMethod};
use models::clip_check::clip_check;
use tch::{Kind, Tensor};

use super::model_io::{input_error, load_options, read_lines};
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

pub fn run(global: &GlobalArgs, args: &ClipCheckArgs) -> Result<()> {
    if !(args.max_grad_norm > 0.0 && args.max_grad_norm.is_finite()) {
        return Err(BadInput(format!("--max-grad-norm {} must be a positive number", args.max_grad_norm)).into());
    }
    if args.dtype == DtypeArg::Bf16 {
        return Err(BadInput("clip-check runs in f32 or f64 (bf16 round-off would hide a real mismatch)".into()).into());
    }
    let texts = read_lines(&args.data, "text")?;
    let opts = load_options(global, args.dtype)?;
    let dir = models::hub::resolve(&args.model).map_err(input_error)?;
    let (model, tokenizer) = models::load_causal(&dir, &opts).map_err(input_error)?;
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
        if ids.len() as i64 > model.max_positions() {
            return Err(BadInput(format!(
                "{}:{}: {} tokens exceed the model's n_positions = {}",
                args.data.display(),
                i + 1,
                ids.len(),
                model.max_positions()
            ))
            .into());
        }
        batch.push(ids);
    }
    let pad = model.pad_token_id().or(model.eos_token_id()).unwrap_or(0);
    let mode = match args.mode {
        ModeArg::Bk => ClipMode::Bk,
        ModeArg::Ghost => ClipMode::Ghost,
        ModeArg::Naive => ClipMode::Naive,
    };
    let clipper = Clipper {
        max_grad_norm: args.max_grad_norm,
        stability: 0.0,
        mode,
        norm_method: NormMethod::Auto,
        style: ClipStyle::Flat,
    };
    let (floor, tolerance) = if args.dtype == DtypeArg::F64 { (1e-6, 1e-9) } else { (1e-3, 1e-3) };
    let check = clip_check(model.as_ref(), &batch, pad, &clipper, floor).map_err(input_error)?;
    let passed = check.max_rel_diff_norms <= tolerance && check.max_rel_diff_grad <= tolerance;
    let c = args.max_grad_norm;
    let out = &check;
    if let Some(path) = &args.dump {
        let mut tensors: Vec<(String, Tensor)> = vec![(
            "per_example_norms".into(),
            out.norms.to_kind(Kind::Double).to_device(tch::Device::Cpu).contiguous(),
        )];
        for (name, g) in &out.grads {
            tensors.push((name.clone(), g.to_device(tch::Device::Cpu).contiguous()));
        }
        let tmp = models::safe_fs::claim_temp(path).with_context(|| format!("writing --dump {}", path.display()))?;
        let written = Tensor::write_safetensors(&tensors, &tmp)
            .map_err(anyhow::Error::from)
            .and_then(|()| std::fs::rename(&tmp, path).map_err(anyhow::Error::from));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.context(format!("writing --dump {}", path.display())));
        }
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
        per_example_norms: check.per_example_norms.clone(),
        oracle_per_example_norms: check.oracle_per_example_norms.clone(),
        max_rel_diff_norms: check.max_rel_diff_norms,
        max_rel_diff_grad: check.max_rel_diff_grad,
        worst_tensor: check.worst_tensor.clone(),
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
