//! Loading a Hugging Face model folder: `config.json`, `model.safetensors` (or its shards listed in
//! `model.safetensors.index.json`) and the tokenizer files; or a random initialisation from a config alone.

use std::path::{Path, PathBuf};

use dp_core::engine::check_ownership;
use tch::{Device, Kind};

use crate::bert::{EncoderModel, HeadKind};
use crate::config::ModelConfig;
use crate::gpt2::Gpt2LmHeadModel;
use crate::tokenizer::TextTokenizer;
use crate::weights::Weights;
use crate::ModelError;

/// Where and in which precision a model lives.
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    /// The device.
    pub device: Device,
    /// Parameter dtype: f32 (default), f64 (exactness checks) or bf16 (CUDA only).
    pub kind: Kind,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { device: Device::Cpu, kind: Kind::Float }
    }
}

impl LoadOptions {
    /// Refuses bf16 off CUDA and dtypes other than f32, f64, bf16.
    pub fn check(&self) -> Result<(), ModelError> {
        match (self.kind, self.device) {
            (Kind::Float | Kind::Double, _) => Ok(()),
            (Kind::BFloat16, Device::Cuda(_)) => Ok(()),
            (Kind::BFloat16, _) => Err(ModelError::Invalid(
                "bf16 parameters are supported on CUDA only; use --dtype f32 on the CPU".into(),
            )),
            (k, _) => Err(ModelError::Invalid(format!("parameter dtype {k:?} is not supported; use f32, f64 or bf16"))),
        }
    }
}

/// The config file of model folder `dir`, checked to exist.
pub fn config_path(dir: &Path) -> Result<PathBuf, ModelError> {
    if !dir.is_dir() {
        return Err(ModelError::NotAModel { path: dir.to_path_buf(), what: "no such folder".into() });
    }
    let config = dir.join("config.json");
    if !config.is_file() {
        return Err(ModelError::NotAModel { path: dir.to_path_buf(), what: "no config.json".into() });
    }
    Ok(config)
}

/// The safetensors file(s) of `dir`.
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, ModelError> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(|e| ModelError::Io { path: index.clone(), source: e })?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| ModelError::BadWeights { path: index.clone(), message: format!("malformed index: {e}") })?;
        let map = value.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| ModelError::BadWeights {
            path: index.clone(),
            message: "no \"weight_map\" object".into(),
        })?;
        let mut files: Vec<PathBuf> = map.values().filter_map(|v| v.as_str()).map(|f| dir.join(f)).collect();
        files.sort();
        files.dedup();
        if let Some(missing) = files.iter().find(|f| !f.is_file()) {
            return Err(ModelError::BadWeights {
                path: index,
                message: format!("lists the shard {} which is not in the folder", missing.display()),
            });
        }
        return Ok(files);
    }
    let hint = if dir.join("pytorch_model.bin").is_file() {
        " (only pytorch_model.bin, a pickle that is not read here for safety); convert it once with Python: \
         from transformers import AutoModel; AutoModel.from_pretrained(DIR).save_pretrained(DIR) \
         (use the model's head class, e.g. GPT2LMHeadModel, to keep the head)"
            .to_string()
    } else {
        "; expected the weights of a Hugging Face model saved with save_pretrained".to_string()
    };
    Err(ModelError::MissingWeights { path: dir.to_path_buf(), hint })
}

fn base_prefix(config: &ModelConfig) -> &'static str {
    match config {
        ModelConfig::Gpt2(_) => "transformer",
        ModelConfig::Bert(c) if c.is_roberta() => "roberta",
        ModelConfig::Bert(_) => "bert",
    }
}

fn warn_loaded(dir: &Path, ignored: &[String], initialised: &[String]) {
    if !ignored.is_empty() {
        log::info!(
            "{}: ignored {} tensors this model does not use: {}",
            dir.display(),
            ignored.len(),
            ignored.join(", ")
        );
    }
    if !initialised.is_empty() {
        log::warn!(
            "{}: the checkpoint has no {}; initialised fresh (train them before use)",
            dir.display(),
            initialised.join(", ")
        );
    }
}

/// Weights of `dir`, or a seeded random initialisation when `dir` has a config only and `random` is set.
fn weights_of(dir: &Path, config: &ModelConfig, opts: &LoadOptions) -> Result<Weights, ModelError> {
    opts.check()?;
    Weights::from_safetensors(&weight_files(dir)?, base_prefix(config), opts.kind, opts.device)
}

/// A GPT-2 model and its tokenizer from the folder `dir`.
pub fn load_gpt2(dir: &Path, opts: &LoadOptions) -> Result<(Gpt2LmHeadModel, TextTokenizer), ModelError> {
    let path = config_path(dir)?;
    let config = ModelConfig::from_file(&path)?;
    let ModelConfig::Gpt2(c) = &config else {
        return Err(ModelError::Invalid(format!(
            "{}: model_type \"{}\" is not a causal language model; this command needs a GPT-2 model",
            path.display(),
            config.model_type()
        )));
    };
    let tokenizer = TextTokenizer::from_dir(dir, "gpt2")?;
    let weights = weights_of(dir, &config, opts)?;
    tokenizer.check_fits(c.vocab_size)?;
    let (model, ignored) = Gpt2LmHeadModel::build(c.clone(), weights, &path)?;
    warn_loaded(dir, &ignored, &[]);
    check_ownership(&model.layers(), &model.trainable())?;
    Ok((model, tokenizer))
}

/// A BERT/RoBERTa encoder with `head` and its tokenizer from the folder `dir`.
pub fn load_encoder(
    dir: &Path,
    head: HeadKind,
    opts: &LoadOptions,
) -> Result<(EncoderModel, TextTokenizer), ModelError> {
    load_encoder_with_labels(dir, head, None, opts)
}

/// [`load_encoder`] with a classification head of `num_labels` outputs whatever the config says (a task
/// with three labels on a checkpoint whose config has two); a saved head of another size is refused
/// with the checkpoint's mis-shaped tensors named.
pub fn load_encoder_with_labels(
    dir: &Path,
    head: HeadKind,
    num_labels: Option<i64>,
    opts: &LoadOptions,
) -> Result<(EncoderModel, TextTokenizer), ModelError> {
    let path = config_path(dir)?;
    let config = ModelConfig::from_file(&path)?;
    let ModelConfig::Bert(c) = &config else {
        return Err(ModelError::Invalid(format!(
            "{}: model_type \"{}\" is not an encoder; this needs a BERT or RoBERTa model",
            path.display(),
            config.model_type()
        )));
    };
    let tokenizer = TextTokenizer::from_dir(dir, &c.model_type)?;
    let weights = weights_of(dir, &config, opts)?;
    tokenizer.check_fits(c.vocab_size)?;
    let mut c = c.clone();
    if let Some(n) = num_labels {
        c.set_num_labels(n);
    }
    let (model, ignored, initialised) = EncoderModel::build(c, weights, head, &path)?;
    warn_loaded(dir, &ignored, &initialised);
    check_ownership(&model.layers(), &model.trainable())?;
    Ok((model, tokenizer))
}

/// Either model family.
#[derive(Debug)]
pub enum AnyModel {
    /// GPT-2.
    Gpt2(Box<Gpt2LmHeadModel>),
    /// BERT/RoBERTa.
    Encoder(Box<EncoderModel>),
}

/// A randomly initialised model from a config file (`seed` seeds libtorch's generator), for benchmarks
/// and the `retrain` method; encoders get `head`.
pub fn from_config(path: &Path, head: HeadKind, opts: &LoadOptions, seed: i64) -> Result<AnyModel, ModelError> {
    from_config_with_labels(path, head, None, opts, seed)
}

/// [`from_config`] with an encoder classification head of `num_labels` outputs.
pub fn from_config_with_labels(
    path: &Path,
    head: HeadKind,
    num_labels: Option<i64>,
    opts: &LoadOptions,
    seed: i64,
) -> Result<AnyModel, ModelError> {
    from_model_config(ModelConfig::from_file(path)?, path, head, num_labels, opts, seed)
}

/// [`from_config_with_labels`] on a parsed config; `origin` names it in error messages (a file, or a
/// built-in config's name).
pub fn from_model_config(
    mut config: ModelConfig,
    origin: &Path,
    head: HeadKind,
    num_labels: Option<i64>,
    opts: &LoadOptions,
    seed: i64,
) -> Result<AnyModel, ModelError> {
    let path = origin;
    opts.check()?;
    if let (ModelConfig::Bert(c), Some(n)) = (&mut config, num_labels) {
        c.set_num_labels(n);
    }
    tch::manual_seed(seed);
    let weights = Weights::random(base_prefix(&config), opts.kind, opts.device);
    Ok(match config {
        ModelConfig::Gpt2(c) => AnyModel::Gpt2(Box::new(Gpt2LmHeadModel::build(c, weights, path)?.0)),
        ModelConfig::Bert(c) => AnyModel::Encoder(Box::new(EncoderModel::build(c, weights, head, path)?.0)),
    })
}
