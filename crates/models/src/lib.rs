//! models: GPT-2, RoBERTa and BERT for dpft, built on libtorch (tch) from dp-core's DP-aware layers.
//!
//! - [`config`]: Hugging Face `config.json` as serde structs; [`loader`]: model folders (config,
//!   safetensors, tokenizer) and random initialisation; [`weights`]: tensors by Hugging Face name.
//! - [`gpt2`]: the causal LM with tied or untied head and the paper's `[PAD]` token; [`bert`]: BERT and
//!   RoBERTa encoders with masked-LM and classification heads; [`attention`]: shared attention.
//! - [`generation`]: greedy and beam search with a key/value cache; [`tokenizer`]: tokenizers.
//! - [`clip_check`]: the engine against a per-example loop on a causal LM.
//! - [`data`]: the data directory and its catalogue; [`safe_fs`]: writes a planted link cannot redirect.
//! - Fine-tuning methods beyond full: [`lora`], [`prefix`] (prefix-tuning), [`rgp`] (reparametrized
//!   gradient perturbation); top-k blocks and retraining are methods of the models themselves.

pub mod adapter;
pub mod attention;
pub mod bert;
pub mod clip_check;
pub mod config;
pub mod data;
pub mod error;
pub mod fixtures;
pub mod generation;
pub mod gpt2;
pub mod inputs;
pub mod loader;
pub mod lora;
pub mod prefix;
pub mod rgp;
pub mod safe_fs;
pub mod tokenizer;
pub mod weights;

pub use bert::{EncoderHead, EncoderModel, HeadKind};
pub use config::{BertConfig, Gpt2Config, ModelConfig};
pub use data::{DataDir, DataDirSource, DataError, Dataset, DATA_DIR_ENV};
pub use error::ModelError;
pub use gpt2::{causal_lm_losses, BlockRgp, Gpt2LmHeadModel, KvCache};
pub use inputs::Inputs;
pub use loader::{
    from_config, from_config_with_labels, from_model_config, load_encoder, load_encoder_with_labels, load_gpt2,
    AnyModel, LoadOptions,
};
pub use tokenizer::TextTokenizer;
