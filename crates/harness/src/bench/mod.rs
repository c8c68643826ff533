//! `dpft bench`: the cost of private training next to non-private training (Li et al. 2022, Sec. 4 and
//! Fig. 4: memory and throughput of ghost clipping; Bu et al. 2023 for book-keeping).
//!
//! - [`configs`]: built-in architectures (`--model gpt2`, …) so that no checkpoint is needed;
//! - [`step`]: the workload (random inputs) and one timed training step per mode;
//! - [`memory`]: peak memory (CPU resident-set high-water mark; CUDA through `nvidia-smi`);
//! - [`max_batch`]: the largest batch that fits a memory limit, one child process per candidate.
//!
//! `python/bench/bench_reference.py` times the same steps in PyTorch eager + transformers, Opacus ghost
//! clipping and Opacus per-sample hooks, and prints the same JSON; `make bench` runs both side by side.

pub mod configs;
pub mod max_batch;
pub mod memory;
pub mod step;

use std::path::Path;

use models::{
    from_model_config, load_encoder_with_labels, load_gpt2, load_llama, AnyModel, HeadKind, LoadOptions, ModelConfig,
};

use crate::exit::BadInput;

/// Labels of the classification head put on an encoder.
pub const NUM_LABELS: i64 = 2;

/// What `--model` named and the model built from it.
pub struct Resolved {
    /// The model.
    pub model: AnyModel,
    /// Where its weights came from.
    pub weights: &'static str,
}

/// Builds the model `--model` names: a built-in name, a `config.json` (random weights), or a Hugging
/// Face folder (its weights when it has `model.safetensors`, random weights from its config otherwise).
pub fn resolve_model(spec: &str, opts: &LoadOptions, seed: i64) -> anyhow::Result<Resolved> {
    let to_input = |e: models::ModelError| -> anyhow::Error {
        if e.is_input_error() {
            BadInput(format!("--model {spec}: {e}")).into()
        } else {
            e.into()
        }
    };
    let head = HeadKind::SequenceClassification;
    let random = |config: ModelConfig, origin: &Path| {
        from_model_config(config, origin, head, Some(NUM_LABELS), opts, seed).map_err(to_input)
    };
    if let Some(config) = configs::builtin(spec) {
        return Ok(Resolved { model: random(config, Path::new(spec))?, weights: "random (built-in config)" });
    }
    let path = &models::hub::resolve(Path::new(spec)).map_err(|e| {
        BadInput(format!(
            "--model {spec}: not a built-in model ({}), a config.json file or a model folder; as a model id: {e}",
            configs::NAMES.join(", ")
        ))
    })?;
    if path.is_file() {
        let config = ModelConfig::from_file(path).map_err(to_input)?;
        return Ok(Resolved { model: random(config, path)?, weights: "random (config file)" });
    }
    if path.is_dir() {
        let config_file = path.join("config.json");
        if !config_file.is_file() {
            return Err(BadInput(format!("--model {spec}: the folder has no config.json")).into());
        }
        let config = ModelConfig::from_file(&config_file).map_err(to_input)?;
        if !path.join("model.safetensors").is_file() && !path.join("model.safetensors.index.json").is_file() {
            return Ok(Resolved { model: random(config, &config_file)?, weights: "random (folder without weights)" });
        }
        let model = match config {
            ModelConfig::Gpt2(_) => AnyModel::Gpt2(Box::new(load_gpt2(path, opts).map_err(to_input)?.0)),
            ModelConfig::Llama(_) => AnyModel::Llama(Box::new(load_llama(path, opts).map_err(to_input)?.0)),
            ModelConfig::Bert(_) => AnyModel::Encoder(Box::new(
                load_encoder_with_labels(path, head, Some(NUM_LABELS), opts).map_err(to_input)?.0,
            )),
        };
        return Ok(Resolved { model, weights: "checkpoint" });
    }
    Err(BadInput(format!(
        "--model {spec}: not a built-in model ({}), a config.json file or a model folder",
        configs::NAMES.join(", ")
    ))
    .into())
}
