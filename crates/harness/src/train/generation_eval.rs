//! Evaluation of a generation task (E2E, DART) as the paper does it (Li et al. 2022, App.; decoding of
//! prefix-tuning): beam search from `" {table} <|endoftext|>"`, newline tokens banned, the output cut at
//! the first `<|endoftext|>`; then the e2e-metrics scores against all references of each table (DART: GEM's BLEU and ROUGE-L).
//! Writes `predictions.txt` (one line per table) and `references.txt` (e2e-metrics format) into the run
//! folder.

use std::path::Path;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use models::generation::{generate, GenerationConfig};
use models::{CausalModel, TextTokenizer};
use serde_json::Value;

use crate::run_config::GenerationSection;

/// One table with its references.
pub struct Segment {
    /// The prompt's token ids.
    pub prompt: Vec<i64>,
    /// All references of the table.
    pub references: Vec<String>,
}

/// The ids of tokens that contain a newline (banned during decoding).
pub fn newline_ids(tokenizer: &TextTokenizer) -> Vec<i64> {
    let mut ids: Vec<i64> =
        ["\n", "\n\n", " \n"].iter().filter_map(|s| tokenizer.encode(s, false).ok()).flatten().collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Generates for every segment, writes the files and scores them.
pub fn evaluate(
    model: &dyn CausalModel,
    tokenizer: &TextTokenizer,
    segments: &[Segment],
    settings: &GenerationSection,
    dart: bool,
    out: &Path,
) -> Result<Value> {
    if segments.is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    let eos = tokenizer.token_to_id("<|endoftext|>").or(model.eos_token_id());
    let config = GenerationConfig {
        num_beams: settings.num_beams,
        max_new_tokens: settings.max_new_tokens,
        min_new_tokens: settings.min_new_tokens,
        banned_token_ids: newline_ids(tokenizer),
        eos_token_id: eos,
        length_penalty: 1.0,
        batch_size: settings.batch_size,
    };
    let bar = ProgressBar::new(segments.len() as u64);
    bar.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} tables generated  eta {eta}").expect("template"));
    let mut predictions = Vec::with_capacity(segments.len());
    for chunk in segments.chunks(settings.batch_size) {
        let prompts: Vec<Vec<i64>> = chunk.iter().map(|s| s.prompt.clone()).collect();
        for mut ids in generate(model, &prompts, &config)? {
            if let Some(cut) = ids.iter().position(|&t| Some(t) == eos) {
                ids.truncate(cut);
            }
            predictions.push(tokenizer.decode(&ids, true)?.replace(['\n', '\r'], " ").trim().to_string());
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let mut pred_text = predictions.join("\n");
    pred_text.push('\n');
    crate::commands::model_io::write_atomic(&out.join("predictions.txt"), pred_text.as_bytes())?;
    let refs: Vec<Vec<String>> = segments.iter().map(|s| s.references.clone()).collect();
    let references = crate::commands::eval_gen::references_text(&refs);
    crate::commands::model_io::write_atomic(&out.join("references.txt"), references.as_bytes())?;
    if dart {
        return crate::gen_metrics::evaluate_dart(&predictions, &refs);
    }
    let meteor = if settings.meteor { crate::gen_metrics::Meteor::Auto } else { crate::gen_metrics::Meteor::Off };
    crate::gen_metrics::evaluate(&predictions, &refs, meteor)
}
