//! Model configurations: plain serde structs with the keys of Hugging Face `config.json`.
//!
//! Keys a config file carries that a model here does not use (`architectures`, `task_specific_params`, …) are
//! kept in `extra` and ignored; a value that would change the math in a way this crate does not implement
//! (another activation, relative position embeddings, …) is refused by [`Gpt2Config::check`] /
//! [`BertConfig::check`] with the key named.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::ModelError;

/// `config.json` of a GPT-2 model (`model_type: "gpt2"`), Hugging Face `GPT2Config`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Gpt2Config {
    /// Vocabulary size V.
    pub vocab_size: i64,
    /// Longest sequence (rows of `wpe`).
    pub n_positions: i64,
    /// Hidden size d.
    pub n_embd: i64,
    /// Number of blocks.
    pub n_layer: i64,
    /// Attention heads.
    pub n_head: i64,
    /// MLP inner size (`null` means 4·d).
    #[serde(default)]
    pub n_inner: Option<i64>,
    /// MLP activation (`gelu_new`: the tanh approximation).
    #[serde(default = "gelu_new")]
    pub activation_function: String,
    /// Dropout after attention and MLP projections.
    #[serde(default = "p_drop")]
    pub resid_pdrop: f64,
    /// Dropout on the embeddings.
    #[serde(default = "p_drop")]
    pub embd_pdrop: f64,
    /// Dropout on the attention probabilities.
    #[serde(default = "p_drop")]
    pub attn_pdrop: f64,
    /// LayerNorm ε.
    #[serde(default = "ln_eps_gpt2")]
    pub layer_norm_epsilon: f64,
    /// Std of the normal initialisation.
    #[serde(default = "init_range")]
    pub initializer_range: f64,
    /// Scale attention scores by 1/sqrt(head dim).
    #[serde(default = "yes")]
    pub scale_attn_weights: bool,
    /// Also scale by 1/(layer index + 1) (not supported).
    #[serde(default)]
    pub scale_attn_by_inverse_layer_idx: bool,
    /// Upcast-and-reorder attention (numerics only; ignored, we compute in the model's dtype).
    #[serde(default)]
    pub reorder_and_upcast_attn: bool,
    /// Beginning-of-sequence id.
    #[serde(default)]
    pub bos_token_id: Option<i64>,
    /// End-of-sequence id.
    #[serde(default)]
    pub eos_token_id: Option<i64>,
    /// Padding id (GPT-2 has none unless one was added).
    #[serde(default)]
    pub pad_token_id: Option<i64>,
    /// Whether `lm_head` shares `wte` (Hugging Face default true).
    #[serde(default = "yes")]
    pub tie_word_embeddings: bool,
    /// Every other key, kept as written.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// `config.json` of a BERT or RoBERTa encoder (`model_type: "bert" | "roberta"`), Hugging Face
/// `BertConfig` / `RobertaConfig`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BertConfig {
    /// `bert` or `roberta`.
    pub model_type: String,
    /// Vocabulary size V.
    pub vocab_size: i64,
    /// Hidden size d.
    pub hidden_size: i64,
    /// Number of layers.
    pub num_hidden_layers: i64,
    /// Attention heads.
    pub num_attention_heads: i64,
    /// Feed-forward inner size.
    pub intermediate_size: i64,
    /// Activation (`gelu`: the exact erf form).
    #[serde(default = "gelu")]
    pub hidden_act: String,
    /// Dropout on embeddings and sub-layer outputs.
    #[serde(default = "p_drop")]
    pub hidden_dropout_prob: f64,
    /// Dropout on attention probabilities.
    #[serde(default = "p_drop")]
    pub attention_probs_dropout_prob: f64,
    /// Rows of the position table (RoBERTa: longest sequence + padding offset).
    pub max_position_embeddings: i64,
    /// Rows of the token-type table.
    #[serde(default = "two")]
    pub type_vocab_size: i64,
    /// LayerNorm ε.
    #[serde(default = "ln_eps_bert")]
    pub layer_norm_eps: f64,
    /// Std of the normal initialisation.
    #[serde(default = "init_range")]
    pub initializer_range: f64,
    /// Padding id (BERT 0, RoBERTa 1).
    #[serde(default)]
    pub pad_token_id: i64,
    /// Beginning-of-sequence id.
    #[serde(default)]
    pub bos_token_id: Option<i64>,
    /// End-of-sequence id.
    #[serde(default)]
    pub eos_token_id: Option<i64>,
    /// Only `absolute` is supported.
    #[serde(default = "absolute")]
    pub position_embedding_type: String,
    /// Dropout of the classification head (`null`: `hidden_dropout_prob`).
    #[serde(default)]
    pub classifier_dropout: Option<f64>,
    /// Class names by index; their count is the number of labels of a classification head.
    #[serde(default)]
    pub id2label: Option<BTreeMap<String, String>>,
    /// Every other key, kept as written.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

fn gelu_new() -> String {
    "gelu_new".into()
}
fn gelu() -> String {
    "gelu".into()
}
fn absolute() -> String {
    "absolute".into()
}
fn p_drop() -> f64 {
    0.1
}
fn ln_eps_gpt2() -> f64 {
    1e-5
}
fn ln_eps_bert() -> f64 {
    1e-12
}
fn init_range() -> f64 {
    0.02
}
fn yes() -> bool {
    true
}
fn two() -> i64 {
    2
}

/// A model's configuration, by `model_type`.
#[derive(Clone, Debug)]
pub enum ModelConfig {
    /// GPT-2 family.
    Gpt2(Gpt2Config),
    /// BERT or RoBERTa encoder.
    Bert(BertConfig),
    /// Llama, Qwen2 or Mistral.
    Llama(Box<crate::llama::LlamaConfig>),
}

/// Activations the models implement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// GELU, exact (erf) form: Hugging Face `gelu`.
    Gelu,
    /// GELU, tanh approximation: Hugging Face `gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`-free.
    GeluTanh,
    /// ReLU.
    Relu,
}

impl Activation {
    /// The activation of a Hugging Face `activation_function` / `hidden_act` value.
    pub fn parse(key: &str, value: &str, path: &Path) -> Result<Self, ModelError> {
        match value {
            "gelu" => Ok(Self::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" => Ok(Self::GeluTanh),
            "relu" => Ok(Self::Relu),
            other => Err(ModelError::Config {
                path: path.to_path_buf(),
                message: format!(
                    "{key} = \"{other}\" is not supported (supported: gelu, gelu_new, gelu_pytorch_tanh, relu)"
                ),
            }),
        }
    }

    /// Applies the activation.
    pub fn apply(self, x: &tch::Tensor) -> tch::Tensor {
        match self {
            Self::Gelu => x.gelu("none"),
            Self::GeluTanh => x.gelu("tanh"),
            Self::Relu => x.relu(),
        }
    }
}

/// Refuses `is_decoder` / `add_cross_attention` set to true (decoder variants are not implemented).
fn refuse_flags(path: &Path, extra: &BTreeMap<String, serde_json::Value>) -> Result<(), ModelError> {
    for key in ["is_decoder", "add_cross_attention"] {
        if extra.get(key).and_then(serde_json::Value::as_bool) == Some(true) {
            return Err(ModelError::Config {
                path: path.to_path_buf(),
                message: format!("{key} = true is not supported"),
            });
        }
    }
    Ok(())
}

fn positive(path: &Path, key: &str, value: i64) -> Result<(), ModelError> {
    if value > 0 {
        Ok(())
    } else {
        Err(ModelError::Config { path: path.to_path_buf(), message: format!("{key} = {value} must be positive") })
    }
}

fn probability(path: &Path, key: &str, value: f64) -> Result<(), ModelError> {
    if (0.0..1.0).contains(&value) {
        Ok(())
    } else {
        Err(ModelError::Config { path: path.to_path_buf(), message: format!("{key} = {value} must lie in [0, 1)") })
    }
}

impl Gpt2Config {
    /// Checks sizes and refuses options this implementation does not compute.
    pub fn check(&self, path: &Path) -> Result<Activation, ModelError> {
        for (k, v) in [
            ("vocab_size", self.vocab_size),
            ("n_positions", self.n_positions),
            ("n_embd", self.n_embd),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_inner", self.inner()),
        ] {
            positive(path, k, v)?;
        }
        refuse_flags(path, &self.extra)?;
        if self.n_embd % self.n_head != 0 {
            return Err(ModelError::Config {
                path: path.to_path_buf(),
                message: format!("n_embd = {} is not a multiple of n_head = {}", self.n_embd, self.n_head),
            });
        }
        for (k, v) in
            [("resid_pdrop", self.resid_pdrop), ("embd_pdrop", self.embd_pdrop), ("attn_pdrop", self.attn_pdrop)]
        {
            probability(path, k, v)?;
        }
        if self.scale_attn_by_inverse_layer_idx {
            return Err(ModelError::Config {
                path: path.to_path_buf(),
                message: "scale_attn_by_inverse_layer_idx = true is not supported".into(),
            });
        }
        Activation::parse("activation_function", &self.activation_function, path)
    }

    /// MLP inner size.
    pub fn inner(&self) -> i64 {
        self.n_inner.unwrap_or(4 * self.n_embd)
    }
}

impl BertConfig {
    /// Whether this is RoBERTa (padding-offset position ids, `roberta.` names).
    pub fn is_roberta(&self) -> bool {
        self.model_type == "roberta"
    }

    /// Number of labels of a classification head: `id2label`'s size, else `num_labels`, else 2 (Hugging
    /// Face's default).
    pub fn num_labels(&self) -> i64 {
        match (&self.id2label, self.extra.get("num_labels").and_then(serde_json::Value::as_i64)) {
            (Some(m), _) => m.len() as i64,
            (None, Some(n)) => n,
            (None, None) => 2,
        }
    }

    /// Sets the classification head's size (drops `id2label`, whose names would no longer fit).
    pub fn set_num_labels(&mut self, n: i64) {
        if self.num_labels() != n {
            self.id2label = None;
            self.extra.insert("num_labels".into(), serde_json::Value::from(n));
        }
    }

    /// Checks sizes and refuses options this implementation does not compute.
    pub fn check(&self, path: &Path) -> Result<Activation, ModelError> {
        for (k, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
            ("num_labels", self.num_labels()),
        ] {
            positive(path, k, v)?;
        }
        refuse_flags(path, &self.extra)?;
        if self.hidden_size % self.num_attention_heads != 0 {
            return Err(ModelError::Config {
                path: path.to_path_buf(),
                message: format!(
                    "hidden_size = {} is not a multiple of num_attention_heads = {}",
                    self.hidden_size, self.num_attention_heads
                ),
            });
        }
        for (k, v) in [
            ("hidden_dropout_prob", self.hidden_dropout_prob),
            ("attention_probs_dropout_prob", self.attention_probs_dropout_prob),
            ("classifier_dropout", self.classifier_dropout.unwrap_or(0.0)),
        ] {
            probability(path, k, v)?;
        }
        if self.position_embedding_type != "absolute" {
            return Err(ModelError::Config {
                path: path.to_path_buf(),
                message: format!(
                    "position_embedding_type = \"{}\" is not supported (only \"absolute\")",
                    self.position_embedding_type
                ),
            });
        }
        if !(0..self.vocab_size).contains(&self.pad_token_id) {
            return Err(ModelError::Config {
                path: path.to_path_buf(),
                message: format!("pad_token_id = {} is outside the vocabulary", self.pad_token_id),
            });
        }
        Activation::parse("hidden_act", &self.hidden_act, path)
    }
}

impl ModelConfig {
    /// Reads `config.json` and dispatches on `model_type` (`gpt2`, `bert`, `roberta`, `llama`, `qwen2`,
    /// `mistral`).
    pub fn from_file(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::Io { path: path.to_path_buf(), source: e })?;
        Self::from_json(&text, path)
    }

    /// Parses the text of a `config.json` (`path` names it in errors).
    pub fn from_json(text: &str, path: &Path) -> Result<Self, ModelError> {
        let bad = |e: serde_json::Error| ModelError::Config { path: path.to_path_buf(), message: e.to_string() };
        let value: serde_json::Value = serde_json::from_str(text).map_err(bad)?;
        let model_type = value.get("model_type").and_then(|v| v.as_str()).unwrap_or_default().to_string();
        match model_type.as_str() {
            "gpt2" => Ok(Self::Gpt2(serde_json::from_value(value).map_err(bad)?)),
            "bert" | "roberta" => Ok(Self::Bert(serde_json::from_value(value).map_err(bad)?)),
            "llama" | "qwen2" | "mistral" => Ok(Self::Llama(Box::new(serde_json::from_value(value).map_err(bad)?))),
            _ => Err(ModelError::UnknownModelType { path: path.to_path_buf(), model_type }),
        }
    }

    /// The `model_type`.
    pub fn model_type(&self) -> &str {
        match self {
            Self::Gpt2(_) => "gpt2",
            Self::Bert(c) => &c.model_type,
            Self::Llama(c) => &c.model_type,
        }
    }
}
