//! What the model subcommands share: load options from `--device`/`--dtype`, reading a file of lines,
//! and writing an output file atomically (a kill never leaves half a file under the final name).

use std::path::Path;

use anyhow::{Context, Result};
use models::LoadOptions;
use tch::Kind;

use crate::cli::{DtypeArg, GlobalArgs};
use crate::exit::BadInput;

/// Device and dtype of a model to load.
pub fn load_options(global: &GlobalArgs, dtype: DtypeArg) -> Result<LoadOptions> {
    let device = global.device.resolve()?;
    log::info!("device: {} (requested: {})", dp_core::device::describe(device), global.device);
    let kind = match dtype {
        DtypeArg::F32 => Kind::Float,
        DtypeArg::F64 => Kind::Double,
        DtypeArg::Bf16 => Kind::BFloat16,
    };
    let opts = LoadOptions { device, kind };
    opts.check().map_err(|e| BadInput(e.to_string()))?;
    Ok(opts)
}

/// The causal LM of `--model` (GPT-2, Llama, Qwen2, Mistral), with `--adapter` applied when given.
pub fn load_causal(
    args: &crate::cli::ModelArgs,
    opts: &LoadOptions,
) -> Result<(Box<dyn models::CausalModel>, models::TextTokenizer)> {
    let dir = models::hub::resolve(&args.model).map_err(input_error)?;
    let (mut model, mut tokenizer) = models::load_causal(&dir, opts).map_err(input_error)?;
    if let Some(dir) = &args.adapter {
        if let Some(llama) = model.as_llama_mut() {
            models::llama::adapter::apply_adapter(llama, &mut tokenizer, dir).map_err(input_error)?;
        } else {
            let kind = model.model_type().to_string();
            let gpt2 = model
                .as_gpt2_mut()
                .ok_or_else(|| BadInput(format!("--adapter: adapter folders are not read for {kind} models")))?;
            models::adapter::apply_adapter(gpt2, &mut tokenizer, dir).map_err(input_error)?;
        }
        log::info!("adapter {} applied to {}", dir.display(), args.model.display());
    }
    Ok((model, tokenizer))
}

/// Maps a model-loading error to bad input (exit 2) when it is the user's files, not a run-time failure.
pub fn input_error(err: models::ModelError) -> anyhow::Error {
    if err.is_input_error() {
        anyhow::Error::new(BadInput(err.to_string()))
    } else {
        anyhow::Error::new(err)
    }
}

/// The lines of a UTF-8 text file (a trailing newline ends the last line; `\r\n` accepted). Refuses an
/// empty line, naming it, and a file with no lines.
pub fn read_lines(path: &Path, what: &str) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| BadInput(format!("{}: cannot read the {what} file: {e}", path.display())))?;
    let lines: Vec<String> = text.lines().map(|l| l.trim_end_matches('\r').to_string()).collect();
    if let Some(i) = lines.iter().position(|l| l.trim().is_empty()) {
        return Err(BadInput(format!("{}:{}: empty line; give one {what} per line", path.display(), i + 1)).into());
    }
    if lines.is_empty() {
        return Err(BadInput(format!("{}: no {what}s (the file is empty)", path.display())).into());
    }
    Ok(lines)
}

/// Writes `bytes` to `path` through an exclusively created temporary file in the same folder and a
/// rename ([`models::safe_fs::write_atomic`]: a link planted at either name is not followed).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    models::safe_fs::write_atomic(path, bytes).with_context(|| format!("writing {}", path.display()))
}
