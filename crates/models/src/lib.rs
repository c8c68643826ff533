//! models: GPT-2, RoBERTa and BERT for dpft, built on libtorch (tch) from dp-core's DP-aware layers.
//!
//! - [`config`]: Hugging Face `config.json` as serde structs; [`loader`]: model folders (config,
//!   safetensors, tokenizer) and random initialisation; [`weights`]: tensors by Hugging Face name.
//! - [`causal`]: the trait every causal-LM family implements ([`CausalModel`]); [`gpt2`]: GPT-2 with tied
//!   or untied head and the paper's `[PAD]` token; [`llama`]: Llama, Qwen2 and Mistral ([`rope`]: rotary
//!   positions; [`kv_cache`]: the decoding cache; [`projection`]: a linear with its method's part); [`bert`]: BERT and
//!   RoBERTa encoders with masked-LM and classification heads; [`attention`]: shared attention.
//! - [`generation`]: greedy and beam search with a key/value cache; [`tokenizer`]: tokenizers.
//! - [`clip_check`]: the engine against a per-example loop on a causal LM.
//! - [`data`]: the data directory and its catalogue; [`safe_fs`]: writes a planted link cannot redirect.
//! - Fine-tuning methods beyond full: [`lora`], [`prefix`] (prefix-tuning), [`rgp`] (reparametrized
//!   gradient perturbation); top-k blocks and retraining are methods of the models themselves.

pub mod adapter;
pub mod attention;
pub mod bert;
pub mod causal;
pub mod clip_check;
pub mod config;
pub mod data;
pub mod error;
pub mod fixtures;
pub mod generation;
pub mod gpt2;
pub mod hub;
pub mod inputs;
pub mod kv_cache;
pub mod llama;
pub mod loader;
pub mod lora;
pub mod prefix;
pub mod projection;
pub mod rgp;
pub mod rope;
pub mod safe_fs;
pub mod tokenizer;
pub mod weights;

pub use bert::{EncoderHead, EncoderModel, HeadKind};
pub use causal::{CausalMethod, CausalModel};
pub use config::{BertConfig, Gpt2Config, ModelConfig};
pub use data::{DataDir, DataDirSource, DataError, Dataset, DATA_DIR_ENV};
pub use error::ModelError;
pub use gpt2::{causal_lm_losses, BlockRgp, Gpt2LmHeadModel};
pub use inputs::Inputs;
pub use kv_cache::KvCache;
pub use llama::{LlamaConfig, LlamaForCausalLm};
pub use loader::{
    from_config, from_config_with_labels, from_model_config, load_causal, load_encoder, load_encoder_with_labels,
    load_gpt2, load_llama, AnyModel, LoadOptions,
};
pub use tokenizer::TextTokenizer;
