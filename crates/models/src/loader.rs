//! Loading a Hugging Face model folder: `config.json`, `model.safetensors` (or its shards listed in
//! `model.safetensors.index.json`) and the tokenizer files; or a random initialisation from a config alone.

use std::path::{Path, PathBuf};

use dp_core::engine::check_ownership;
use tch::{Device, Kind};

use crate::bert::{EncoderModel, HeadKind};
use crate::causal::CausalModel;
use crate::config::ModelConfig;
use crate::gpt2::Gpt2LmHeadModel;
use crate::llama::LlamaForCausalLm;
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
        ModelConfig::Llama(_) => "model",
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

/// Any model family.
#[derive(Debug)]
pub enum AnyModel {
    /// GPT-2.
    Gpt2(Box<Gpt2LmHeadModel>),
    /// Llama, Qwen2 or Mistral.
    Llama(Box<LlamaForCausalLm>),
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
        ModelConfig::Llama(c) => AnyModel::Llama(Box::new(LlamaForCausalLm::build(*c, weights, path)?.0)),
        ModelConfig::Bert(c) => AnyModel::Encoder(Box::new(EncoderModel::build(c, weights, head, path)?.0)),
    })
}

impl AnyModel {
    /// The model as a causal LM (GPT-2 or the Llama family), or `None` for an encoder.
    pub fn as_causal(&self) -> Option<&dyn CausalModel> {
        match self {
            Self::Gpt2(m) => Some(m.as_ref()),
            Self::Llama(m) => Some(m.as_ref()),
            Self::Encoder(_) => None,
        }
    }

    /// [`as_causal`](Self::as_causal), mutably.
    pub fn as_causal_mut(&mut self) -> Option<&mut dyn CausalModel> {
        match self {
            Self::Gpt2(m) => Some(m.as_mut()),
            Self::Llama(m) => Some(m.as_mut()),
            Self::Encoder(_) => None,
        }
    }

    /// The model as a causal LM (GPT-2 or the Llama family), or `None` for an encoder.
    pub fn into_causal(self) -> Option<Box<dyn CausalModel>> {
        match self {
            Self::Gpt2(m) => Some(m),
            Self::Llama(m) => Some(m),
            Self::Encoder(_) => None,
        }
    }
}

/// A Llama, Qwen2 or Mistral model and its tokenizer from the folder `dir`.
pub fn load_llama(dir: &Path, opts: &LoadOptions) -> Result<(LlamaForCausalLm, TextTokenizer), ModelError> {
    let path = config_path(dir)?;
    let config = ModelConfig::from_file(&path)?;
    let ModelConfig::Llama(c) = &config else {
        return Err(ModelError::Invalid(format!(
            "{}: model_type \"{}\" is not of the Llama family (llama, qwen2, mistral)",
            path.display(),
            config.model_type()
        )));
    };
    let tokenizer = TextTokenizer::from_dir(dir, &c.model_type)?;
    let weights = weights_of(dir, &config, opts)?;
    tokenizer.check_fits(c.vocab_size)?;
    let (model, ignored) = LlamaForCausalLm::build(c.as_ref().clone(), weights, &path)?;
    warn_loaded(dir, &ignored, &[]);
    check_ownership(&model.layers(), &model.trainable())?;
    Ok((model, tokenizer))
}

/// A causal LM of any family (`model_type` gpt2, llama, qwen2, mistral) and its tokenizer from the folder
/// `dir`.
pub fn load_causal(dir: &Path, opts: &LoadOptions) -> Result<(Box<dyn CausalModel>, TextTokenizer), ModelError> {
    let path = config_path(dir)?;
    let config = ModelConfig::from_file(&path)?;
    match config {
        ModelConfig::Gpt2(_) => {
            let (m, t) = load_gpt2(dir, opts)?;
            Ok((Box::new(m), t))
        }
        ModelConfig::Llama(_) => {
            let (m, t) = load_llama(dir, opts)?;
            Ok((Box::new(m), t))
        }
        ModelConfig::Bert(c) => Err(ModelError::Invalid(format!(
            "{}: model_type \"{}\" is not a causal language model; this command needs GPT-2, Llama, Qwen2 or Mistral",
            path.display(),
            c.model_type
        ))),
    }
}

/// Writes a Hugging Face model folder `dir`: `config_json`, the `tensors` (RGP carriers left out: the
/// weights hold their update) as model.safetensors, and the tokenizer; into a temporary folder renamed
/// into place ([`crate::safe_fs`]).
pub fn write_model_folder(
    dir: &Path,
    config_json: &str,
    tensors: &[(String, tch::Tensor)],
    tokenizer: &TextTokenizer,
) -> Result<(), ModelError> {
    let io = |e: std::io::Error| ModelError::Invalid(format!("writing {}: {e}", dir.display()));
    let tmp = dir.with_extension("tmp");
    crate::safe_fs::fresh_dir(&tmp).map_err(io)?;
    std::fs::write(tmp.join("config.json"), format!("{config_json}\n")).map_err(io)?;
    let tensors: Vec<(String, tch::Tensor)> = tensors
        .iter()
        .filter(|(n, _)| !n.contains(".rgp_"))
        .map(|(n, t)| (n.clone(), t.detach().to_device(Device::Cpu).contiguous()))
        .collect();
    tch::Tensor::write_safetensors(&tensors, tmp.join("model.safetensors"))?;
    tokenizer.save(&tmp)?;
    crate::safe_fs::replace_dir(&tmp, dir).map_err(io)
}
