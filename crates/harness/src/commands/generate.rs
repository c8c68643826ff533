//! `dpft generate`: continue prompts (one per line) with greedy or beam search.

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use models::generation::{generate, GenerationConfig};

use super::model_io::{input_error, load_options, read_lines, write_atomic};
use crate::cli::{GenerateArgs, GlobalArgs};
use crate::exit::BadInput;

pub fn run(global: &GlobalArgs, args: &GenerateArgs) -> Result<()> {
    let prompts = read_lines(&args.input, "prompt")?;
    if let Some(out) = &args.out {
        if out.is_dir() {
            return Err(BadInput(format!("--out {} is a folder; give a file name", out.display())).into());
        }
        let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        if !parent.is_dir() {
            return Err(
                BadInput(format!("--out {}: the folder {} does not exist", out.display(), parent.display())).into()
            );
        }
    }
    if !args.length_penalty.is_finite() {
        return Err(BadInput(format!("--length-penalty {}: give a finite number", args.length_penalty)).into());
    }
    let opts = load_options(global, args.model.dtype)?;
    let (model, tokenizer) = super::model_io::load_causal(&args.model, &opts)?;
    let config = GenerationConfig {
        num_beams: args.num_beams,
        max_new_tokens: args.max_new_tokens,
        min_new_tokens: args.min_length,
        banned_token_ids: args.banned.clone(),
        eos_token_id: args.eos_token_id.or(model.eos_token_id()),
        length_penalty: args.length_penalty,
        batch_size: args.batch_size,
    };
    let mut ids = Vec::with_capacity(prompts.len());
    for (i, p) in prompts.iter().enumerate() {
        let t = tokenizer.encode(p, false).map_err(input_error)?;
        if t.is_empty() {
            return Err(BadInput(format!("{}:{}: the prompt has no tokens", args.input.display(), i + 1)).into());
        }
        ids.push(t);
    }
    log::info!(
        "generating for {} prompts: {} beam(s), up to {} new tokens (at least {}), eos {:?}",
        ids.len(),
        config.num_beams,
        config.max_new_tokens,
        config.min_new_tokens,
        config.eos_token_id
    );
    let bar = ProgressBar::new(ids.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} prompts  {per_sec}  eta {eta}").expect("template"),
    );
    // Every prompt must fit with its continuation before hours of decoding start.
    let longest = ids.iter().map(Vec::len).max().unwrap_or(0);
    if (longest + config.max_new_tokens) as i64 > model.max_positions() {
        let line = ids.iter().position(|p| p.len() == longest).unwrap_or(0) + 1;
        return Err(BadInput(format!(
            "{}:{line}: the prompt has {longest} tokens; with --max-new-tokens {} that exceeds the model's n_positions = {}",
            args.input.display(),
            config.max_new_tokens,
            model.max_positions()
        ))
        .into());
    }
    // The first forward pass holds the logits of every prompt position of every beam of a batch.
    let rows = config.batch_size.min(ids.len()) as u64 * config.num_beams as u64;
    let logits = crate::memory_guard::tensor_bytes(&[rows, longest as u64, model.vocab_size() as u64], opts.kind);
    let what = format!("decoding {rows} sequences (batch × beams) of {longest} prompt tokens");
    crate::memory_guard::check_fits(opts.device, logits, &what, "--num-beams or --batch-size")?;
    let mut lines = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(config.batch_size) {
        for new in generate(model.as_ref(), chunk, &config).map_err(input_error)? {
            let text = tokenizer.decode(&new, true).map_err(input_error)?;
            lines.push(text.replace(['\n', '\r'], " ").trim().to_string());
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let mut body = lines.join("\n");
    body.push('\n');
    match &args.out {
        Some(path) => {
            write_atomic(path, body.as_bytes())?;
            log::info!("wrote {} continuations to {}", lines.len(), path.display());
        }
        None => print!("{body}"),
    }
    Ok(())
}
