//! `config.json` of the Llama family: `model_type` `llama` (Llama 2/3, SmolLM, TinyLlama), `qwen2` and
//! `mistral`, with the keys of Hugging Face `LlamaConfig` / `Qwen2Config` / `MistralConfig`. The three share
//! one architecture here (RMSNorm, rotary positions, SwiGLU MLP, grouped-query attention); they differ in
//! their defaults and biases: Qwen2's q/k/v projections always have a bias; Llama's follow
//! `attention_bias` / `mlp_bias`; Mistral has none and may set `sliding_window`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::rope::RopeScaling;
use crate::ModelError;

/// Which member of the family a config describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LlamaFlavor {
    /// `llama`.
    Llama,
    /// `qwen2`.
    Qwen2,
    /// `mistral`.
    Mistral,
}

impl LlamaFlavor {
    /// The flavor of a `model_type`, if it is one of the family.
    pub fn of(model_type: &str) -> Option<Self> {
        match model_type {
            "llama" => Some(Self::Llama),
            "qwen2" => Some(Self::Qwen2),
            "mistral" => Some(Self::Mistral),
            _ => None,
        }
    }
}

/// An id, or (Llama 3's `eos_token_id`) a list of ids.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    /// One id.
    One(i64),
    /// Several ids (generation stops at any).
    Many(Vec<i64>),
}

impl TokenIds {
    /// The first id (the one generation and padding use).
    pub fn first(&self) -> Option<i64> {
        match self {
            Self::One(i) => Some(*i),
            Self::Many(v) => v.first().copied(),
        }
    }
}

/// The configuration of a Llama, Qwen2 or Mistral model.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// `llama`, `qwen2` or `mistral`.
    pub model_type: String,
    /// Vocabulary size V.
    pub vocab_size: i64,
    /// Hidden size d.
    pub hidden_size: i64,
    /// MLP inner size.
    pub intermediate_size: i64,
    /// Decoder layers.
    pub num_hidden_layers: i64,
    /// Query heads.
    pub num_attention_heads: i64,
    /// Key/value heads (grouped-query attention; default: as many as query heads).
    #[serde(default)]
    pub num_key_value_heads: Option<i64>,
    /// Head dim (default d / heads).
    #[serde(default)]
    pub head_dim: Option<i64>,
    /// Longest sequence.
    pub max_position_embeddings: i64,
    /// RMSNorm ε.
    #[serde(default = "rms_eps")]
    pub rms_norm_eps: f64,
    /// Rotary base θ (configs before transformers 5; later ones keep it in `rope_parameters`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
    /// Frequency scaling (`llama3`), or none (configs before transformers 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<RopeScaling>,
    /// θ, the rotary type and its scaling in one mapping (transformers ≥ 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<RopeScaling>,
    /// Bias on q/k/v/o (Llama; Qwen2's q/k/v always have one).
    #[serde(default)]
    pub attention_bias: bool,
    /// Bias on the MLP projections (Llama).
    #[serde(default)]
    pub mlp_bias: bool,
    /// Dropout on the attention probabilities.
    #[serde(default)]
    pub attention_dropout: f64,
    /// The MLP's gate activation (`silu`).
    #[serde(default = "silu")]
    pub hidden_act: String,
    /// Std of the normal initialisation.
    #[serde(default = "init_range")]
    pub initializer_range: f64,
    /// Whether `lm_head` shares `embed_tokens` (Hugging Face's default for these families: false).
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Beginning-of-sequence id.
    #[serde(default)]
    pub bos_token_id: Option<TokenIds>,
    /// End-of-sequence id(s).
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
    /// Padding id.
    #[serde(default)]
    pub pad_token_id: Option<i64>,
    /// Mistral's (and Qwen2's, with `use_sliding_window`) attention window.
    #[serde(default)]
    pub sliding_window: Option<i64>,
    /// Qwen2: whether `sliding_window` applies.
    #[serde(default)]
    pub use_sliding_window: bool,
    /// Every other key, kept as written.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

fn rms_eps() -> f64 {
    1e-6
}
fn silu() -> String {
    "silu".into()
}
fn init_range() -> f64 {
    0.02
}

impl LlamaConfig {
    /// The family member.
    pub fn flavor(&self) -> LlamaFlavor {
        LlamaFlavor::of(&self.model_type).unwrap_or(LlamaFlavor::Llama)
    }

    /// θ: `rope_parameters.rope_theta`, else `rope_theta`, else 10,000 (transformers' default).
    pub fn theta(&self) -> f64 {
        self.rope_parameters.as_ref().and_then(|p| p.rope_theta).or(self.rope_theta).unwrap_or(10_000.0)
    }

    /// The frequency scaling: `rope_parameters` unless its type is `default`, else `rope_scaling`.
    pub fn scaling(&self) -> Option<&RopeScaling> {
        match &self.rope_parameters {
            Some(p) if p.rope_type != "default" => Some(p),
            _ => self.rope_scaling.as_ref().filter(|s| s.rope_type != "default"),
        }
    }

    /// Key/value heads.
    pub fn kv_heads(&self) -> i64 {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Head dim h.
    pub fn head_dim(&self) -> i64 {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// Whether the q/k/v projections have a bias.
    pub fn qkv_bias(&self) -> bool {
        self.flavor() == LlamaFlavor::Qwen2 || self.attention_bias
    }

    /// Whether the output projection has a bias.
    pub fn o_bias(&self) -> bool {
        self.flavor() == LlamaFlavor::Llama && self.attention_bias
    }

    /// The attention window, when one applies (Mistral's `sliding_window`; Qwen2's with
    /// `use_sliding_window`).
    pub fn window(&self) -> Option<i64> {
        let sliding_layers = self
            .extra
            .get("layer_types")
            .and_then(serde_json::Value::as_array)
            .is_some_and(|t| t.iter().any(|l| l.as_str() == Some("sliding_attention")));
        match self.flavor() {
            LlamaFlavor::Mistral => self.sliding_window,
            LlamaFlavor::Qwen2 if self.use_sliding_window || sliding_layers => self.sliding_window,
            _ => None,
        }
    }

    /// Checks sizes and refuses what this implementation does not compute, naming the key.
    pub fn check(&self, path: &Path) -> Result<(), ModelError> {
        let bad = |message: String| ModelError::Config { path: path.to_path_buf(), message };
        for (k, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.kv_heads()),
            ("head_dim", self.head_dim()),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            if v <= 0 {
                return Err(bad(format!("{k} = {v} must be positive")));
            }
        }
        if self.num_attention_heads % self.kv_heads() != 0 {
            return Err(bad(format!(
                "num_attention_heads = {} is not a multiple of num_key_value_heads = {}",
                self.num_attention_heads,
                self.kv_heads()
            )));
        }
        if self.hidden_act != "silu" {
            return Err(bad(format!("hidden_act = {:?} is not supported (silu is)", self.hidden_act)));
        }
        if !(0.0..1.0).contains(&self.attention_dropout) {
            return Err(bad(format!("attention_dropout = {} must lie in [0, 1)", self.attention_dropout)));
        }
        if self.extra.get("pretraining_tp").and_then(serde_json::Value::as_i64).is_some_and(|tp| tp > 1) {
            return Err(bad("pretraining_tp > 1 is not supported".into()));
        }
        if let Some(q) = self.extra.get("quantization_config") {
            return Err(bad(format!(
                "the checkpoint is quantized ({q}); dequantize it first (transformers: load in float32 and save_pretrained without quantization_config)"
            )));
        }
        Ok(())
    }
}
