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
    if let Some(missing) = files.iter().find(|f| !f.is_file()) {
        return Err(BadInput(format!("--file {}: no such file", missing.display())).into());
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
