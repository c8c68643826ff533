//! `dpft train-tokenizer`: a small byte-level BPE vocabulary for the mini reproduction's tiny models.

use anyhow::Result;

use super::model_io::input_error;
use crate::cli::{GlobalArgs, TrainTokenizerArgs};
use crate::exit::BadInput;

pub fn run(global: &GlobalArgs, args: &TrainTokenizerArgs) -> Result<()> {
    let data = models::DataDir::resolve(global.data_dir.as_deref());
    let files: Vec<std::path::PathBuf> = args
        .files
        .iter()
        .map(|f| match f.to_str().and_then(|s| s.strip_prefix("data:")) {
            Some(rel) => data.root().join(rel),
            None => f.clone(),
        })
        .collect();
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
    log::info!("training a {}-id byte-level BPE on {} file(s)", args.vocab_size, files.len());
    let tokenizer = models::tokenizer::train_byte_level_bpe(&files, args.vocab_size, &args.out).map_err(input_error)?;
    println!("wrote {} ({} ids)", args.out.join("tokenizer.json").display(), tokenizer.vocab_size());
    Ok(())
}
