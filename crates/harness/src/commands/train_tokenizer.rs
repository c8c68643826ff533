//! `dpft train-tokenizer`: a small byte-level BPE vocabulary for the mini reproduction's tiny models.

use anyhow::Result;

use super::model_io::input_error;
use crate::cli::{GlobalArgs, TrainTokenizerArgs};
use crate::exit::BadInput;

pub fn run(global: &GlobalArgs, args: &TrainTokenizerArgs) -> Result<()> {
    let data = models::DataDir::resolve(global.data_dir.as_deref());
    let resolve = |f: &std::path::PathBuf| match f.to_str().and_then(|s| s.strip_prefix("data:")) {
        Some(rel) => data.root().join(rel),
        None => f.clone(),
    };
    let files: Vec<std::path::PathBuf> = args.files.iter().map(resolve).collect();
    for f in &files {
        check_text_file(f)?;
    }
    if args.out.join("tokenizer.json").exists() {
        return Err(BadInput(format!(
            "{}/tokenizer.json exists; choose another --out (nothing was changed)",
            args.out.display()
        ))
        .into());
    }
    let tokenizer = match &args.cut_from {
        Some(dir) => {
            let dir = resolve(dir);
            if !dir.join("merges.txt").is_file() {
                return Err(BadInput(format!("--cut-from {}: no merges.txt there", dir.display())).into());
            }
            log::info!("keeping the first {} ids of the byte-level BPE in {}", args.vocab_size, dir.display());
            models::tokenizer::truncate_byte_level_bpe(&dir, args.vocab_size, &args.out).map_err(input_error)?
        }
        None => {
            log::info!("training a {}-id byte-level BPE on {} file(s)", args.vocab_size, files.len());
            models::tokenizer::train_byte_level_bpe(&files, args.vocab_size, &args.out).map_err(input_error)?
        }
    };
    println!("wrote {} ({} ids)", args.out.join("tokenizer.json").display(), tokenizer.vocab_size());
    Ok(())
}

/// A training text must be a readable, non-empty UTF-8 file (the BPE trainer's own errors do not say which
/// file failed).
fn check_text_file(f: &std::path::Path) -> Result<()> {
    let bad = |why: String| -> anyhow::Error { BadInput(format!("--file {}: {why}", f.display())).into() };
    if f.is_dir() {
        return Err(bad("is a folder; give text files".into()));
    }
    let bytes = std::fs::read(f).map_err(|e| bad(format!("cannot read it: {e}")))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(bad("the file is empty (no text to learn merges from)".into()));
    }
    if let Err(e) = std::str::from_utf8(&bytes) {
        let line = 1 + bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count();
        return Err(bad(format!("line {line}: not UTF-8 text (byte {} of the file)", e.valid_up_to() + 1)));
    }
    Ok(())
}
