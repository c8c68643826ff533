//! The seam a causal-LM family plugs into: what generation, scoring, clip-check, training objectives and
//! the bench need of a model, whatever its architecture. GPT-2 ([`crate::Gpt2LmHeadModel`]) and the
//! Llama family ([`crate::LlamaForCausalLm`]: Llama, Qwen2, Mistral) implement it; a new family is one
//! model file, its config, this impl and a row in the tests.

use dp_core::engine::{DpLayer, Tape};
use tch::{Device, Kind, Tensor};

use crate::inputs::Inputs;
use crate::kv_cache::KvCache;
use crate::tokenizer::TextTokenizer;
use crate::ModelError;

/// A fine-tuning method's settings, as a causal model applies them (the paper's Table 2 columns).
#[derive(Clone, Debug, PartialEq)]
pub enum CausalMethod {
    /// Every parameter trains.
    Full,
    /// Only the top `k` blocks and the final norm train.
    TopK(usize),
    /// LoRA of `rank` and `alpha` on the projections `targets` (family short names; empty: the family's
    /// default, GPT-2's `c_attn`, the Llama family's `q_proj` and `v_proj`).
    Lora {
        /// r.
        rank: i64,
        /// α.
        alpha: f64,
        /// Projections to adapt.
        targets: Vec<String>,
    },
    /// Prefix-tuning with `length` positions and an MLP of width `mid_dim`.
    Prefix {
        /// L.
        length: i64,
        /// The reparametrisation's width.
        mid_dim: i64,
    },
    /// RGP of `rank` on every block matrix.
    Rgp(i64),
}

/// A causal language model dpft can train privately, generate from and score.
pub trait CausalModel: std::fmt::Debug {
    /// Hugging Face `model_type` (`gpt2`, `llama`, `qwen2`, `mistral`).
    fn model_type(&self) -> &str;
    /// Logits `[B, T, V]`; the mask `[B, S + T]`, positions `[B, T]` and cache as GPT-2's
    /// ([`crate::Gpt2LmHeadModel::forward`]); dropout iff `train`; DP layers record on `tape`.
    fn forward(
        &self,
        inputs: Inputs,
        cache: Option<&mut KvCache>,
        train: bool,
        tape: &mut Tape,
    ) -> Result<Tensor, ModelError>;
    /// Vocabulary size V (after an added pad token).
    fn vocab_size(&self) -> i64;
    /// Longest sequence the model takes (`n_positions`, `max_position_embeddings`).
    fn max_positions(&self) -> i64;
    /// Positions a prefix takes (0 without one).
    fn prefix_length(&self) -> i64;
    /// Positions left for text.
    fn text_positions(&self) -> i64 {
        self.max_positions() - self.prefix_length()
    }
    /// The config's end-of-sequence id (the first, when it lists several).
    fn eos_token_id(&self) -> Option<i64>;
    /// The config's padding id.
    fn pad_token_id(&self) -> Option<i64>;
    /// Where the parameters live.
    fn device(&self) -> Device;
    /// Their dtype.
    fn kind(&self) -> Kind;
    /// Hidden size d.
    fn hidden_size(&self) -> i64;
    /// Every DP-aware layer (the engine's ownership check).
    fn layers(&self) -> Vec<&dyn DpLayer>;
    /// Every parameter once under its checkpoint name.
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        crate::weights::unique_parameters(&self.layers())
    }
    /// Parameters that require gradients.
    fn trainable(&self) -> Vec<(String, Tensor)> {
        self.named_parameters().into_iter().filter(|(_, t)| t.requires_grad()).collect()
    }
    /// The tensors the optimizer updates ([`trainable`](Self::trainable) unless RGP reparametrises).
    fn updated_parameters(&self) -> Vec<(String, Tensor)>;
    /// Gradients of [`updated_parameters`](Self::updated_parameters) from the released ones.
    fn reconstruct_gradients(&self, grads: Vec<(String, Tensor)>) -> Result<Vec<(String, Tensor)>, ModelError>;
    /// Before each training step (RGP's new carriers).
    fn prepare_step(&self);
    /// Whether the head shares the token embedding.
    fn is_tied(&self) -> bool;
    /// Gives the head a tensor of its own.
    fn untie_lm_head(&mut self);
    /// Appends the paper's `[PAD]` token; its id.
    fn add_pad_token(&mut self, tokenizer: &mut TextTokenizer) -> Result<i64, ModelError>;
    /// Applies a fine-tuning method (freezing what it does not train).
    fn apply_method(&mut self, method: &CausalMethod) -> Result<(), ModelError>;
    /// Writes a Hugging Face folder transformers reads.
    fn save_pretrained(&self, dir: &std::path::Path, tokenizer: &TextTokenizer) -> Result<(), ModelError>;
    /// The model as GPT-2, for what only GPT-2 has (PEFT adapter folders).
    fn as_gpt2(&self) -> Option<&crate::Gpt2LmHeadModel> {
        None
    }
    /// [`as_gpt2`](Self::as_gpt2), mutably.
    fn as_gpt2_mut(&mut self) -> Option<&mut crate::Gpt2LmHeadModel> {
        None
    }
    /// The model as a Llama-family model, for its adapter folders.
    fn as_llama(&self) -> Option<&crate::LlamaForCausalLm> {
        None
    }
    /// [`as_llama`](Self::as_llama), mutably.
    fn as_llama_mut(&mut self) -> Option<&mut crate::LlamaForCausalLm> {
        None
    }
}
