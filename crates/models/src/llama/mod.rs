//! The Llama family — Llama 2/3, SmolLM, TinyLlama (`model_type: llama`), Qwen2 (`qwen2`) and Mistral
//! (`mistral`) — as Hugging Face `LlamaForCausalLM` / `Qwen2ForCausalLM` / `MistralForCausalLM` compute it
//! (transformers `models/llama/modeling_llama.py`), built from dp-core's DP-aware layers so that private
//! training clips it exactly.
//!
//! Layout and names: `model.embed_tokens`; decoder layers `model.layers.N` with `input_layernorm`
//! (RMSNorm), `self_attn.{q,k,v,o}_proj`, `post_attention_layernorm`, `mlp.{gate,up,down}_proj`; the final
//! `model.norm` and `lm_head` (tied to `embed_tokens` when `tie_word_embeddings`, exact under the engine
//! through the cross term, as for GPT-2). Per layer:
//! x += o_proj(attn(rope(q_proj(n₁)), rope(k_proj(n₁)), v_proj(n₁))) with n₁ = RMSNorm(x), then
//! x += down_proj(silu(gate_proj(n₂)) ⊙ up_proj(n₂)) with n₂ = RMSNorm(x). Grouped-query attention: each
//! of the `num_key_value_heads` key/value heads serves `num_attention_heads / num_key_value_heads` query
//! heads. Rotary positions: [`crate::rope`].

pub mod adapter;
pub mod config;

use dp_core::engine::{DpLayer, Embedding, Linear, RmsNorm, Tape, WeightLayout};
use tch::{Device, Kind, Tensor};

use crate::attention::{attend, call_mask, merge_heads, split_heads};
use crate::causal::{CausalMethod, CausalModel};
use crate::inputs::Inputs;
use crate::kv_cache::KvCache;
use crate::prefix::Prefix;
use crate::projection::Projection;
use crate::rope::{self, Rope};
use crate::tokenizer::TextTokenizer;
use crate::weights::{Init, Weights};
use crate::ModelError;
pub use config::{LlamaConfig, LlamaFlavor};

/// The linears LoRA adapts by default, as the paper (Hu et al. 2021, Li et al. 2022) does: queries and values.
pub const DEFAULT_LORA_TARGETS: [&str; 2] = ["q_proj", "v_proj"];

/// The projections of a layer, by their Hugging Face short names.
pub const PROJECTIONS: [&str; 7] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

/// One decoder layer `model.layers.N`.
#[derive(Debug)]
pub struct LlamaLayer {
    /// RMSNorm before attention.
    pub input_layernorm: RmsNorm,
    /// `self_attn.q_proj` `[H·h, d]`.
    pub q_proj: Projection,
    /// `self_attn.k_proj` `[H_kv·h, d]`.
    pub k_proj: Projection,
    /// `self_attn.v_proj` `[H_kv·h, d]`.
    pub v_proj: Projection,
    /// `self_attn.o_proj` `[d, H·h]`.
    pub o_proj: Projection,
    /// RMSNorm before the MLP.
    pub post_attention_layernorm: RmsNorm,
    /// `mlp.gate_proj` `[inner, d]`.
    pub gate_proj: Projection,
    /// `mlp.up_proj` `[inner, d]`.
    pub up_proj: Projection,
    /// `mlp.down_proj` `[d, inner]`.
    pub down_proj: Projection,
}

impl LlamaLayer {
    /// The seven projections, in [`PROJECTIONS`] order.
    pub fn projections(&self) -> [&Projection; 7] {
        [&self.q_proj, &self.k_proj, &self.v_proj, &self.o_proj, &self.gate_proj, &self.up_proj, &self.down_proj]
    }

    fn projections_mut(&mut self) -> [&mut Projection; 7] {
        [
            &mut self.q_proj,
            &mut self.k_proj,
            &mut self.v_proj,
            &mut self.o_proj,
            &mut self.gate_proj,
            &mut self.up_proj,
            &mut self.down_proj,
        ]
    }

    fn layers(&self) -> Vec<&dyn DpLayer> {
        let mut out: Vec<&dyn DpLayer> = vec![&self.input_layernorm, &self.post_attention_layernorm];
        for p in self.projections() {
            out.extend(p.layers());
        }
        out
    }
}

/// A Llama-family causal LM with its head.
#[derive(Debug)]
pub struct LlamaForCausalLm {
    /// The configuration (vocab_size grows when a pad token is added).
    pub config: LlamaConfig,
    /// Token embeddings `[V, d]`.
    pub embed_tokens: Embedding,
    /// The decoder layers.
    pub layers: Vec<LlamaLayer>,
    /// The final RMSNorm.
    pub norm: RmsNorm,
    /// Output projection `[V, d]`; shares `embed_tokens`' tensor when tied.
    pub lm_head: Linear,
    /// Prefix-tuning's prefix (method `prefix`): per layer `num_key_value_heads` key/value heads.
    pub prefix: Option<Prefix>,
    rope: Rope,
    tied: bool,
}

fn linear(w: &mut Weights, name: &str, d_in: i64, d_out: i64, bias: bool, std: f64) -> Projection {
    Projection::new(Linear {
        name: format!("{}{name}", w.prefix()),
        weight: w.base(&format!("{name}.weight"), &[d_out, d_in], Init::Normal(std)),
        bias: bias.then(|| w.base(&format!("{name}.bias"), &[d_out], Init::Zeros)),
        layout: WeightLayout::OutIn,
    })
}

fn rms_norm(w: &mut Weights, name: &str, d: i64, eps: f64) -> RmsNorm {
    RmsNorm { name: format!("{}{name}", w.prefix()), weight: w.base(&format!("{name}.weight"), &[d], Init::Ones), eps }
}

/// Unused checkpoint tensors that carry nothing: rotary inverse-frequency buffers of older checkpoints.
fn ignorable(name: &str) -> bool {
    name.ends_with("rotary_emb.inv_freq")
}

impl LlamaForCausalLm {
    /// Builds the model from `weights` (a checkpoint under `model.`, a base-model checkpoint, or a random
    /// initialisation: N(0, initializer_range²) weights, zero biases, unit RMSNorm γ, as Hugging Face).
    /// Returns the model and the ignored checkpoint tensors.
    pub fn build(
        config: LlamaConfig,
        mut w: Weights,
        config_path: &std::path::Path,
    ) -> Result<(Self, Vec<String>), ModelError> {
        config.check(config_path)?;
        let c = &config;
        let (d, v, std, eps) = (c.hidden_size, c.vocab_size, c.initializer_range, c.rms_norm_eps);
        let (q_dim, kv_dim) = (c.num_attention_heads * c.head_dim(), c.kv_heads() * c.head_dim());
        let embed_tokens = Embedding {
            name: format!("{}embed_tokens", w.prefix()),
            weight: w.base("embed_tokens.weight", &[v, d], Init::Normal(std)),
            padding_idx: None,
        };
        let layers = (0..c.num_hidden_layers)
            .map(|i| {
                let p = |s: &str| format!("layers.{i}.{s}");
                LlamaLayer {
                    input_layernorm: rms_norm(&mut w, &p("input_layernorm"), d, eps),
                    q_proj: linear(&mut w, &p("self_attn.q_proj"), d, q_dim, c.qkv_bias(), std),
                    k_proj: linear(&mut w, &p("self_attn.k_proj"), d, kv_dim, c.qkv_bias(), std),
                    v_proj: linear(&mut w, &p("self_attn.v_proj"), d, kv_dim, c.qkv_bias(), std),
                    o_proj: linear(&mut w, &p("self_attn.o_proj"), q_dim, d, c.o_bias(), std),
                    post_attention_layernorm: rms_norm(&mut w, &p("post_attention_layernorm"), d, eps),
                    gate_proj: linear(&mut w, &p("mlp.gate_proj"), d, c.intermediate_size, c.mlp_bias, std),
                    up_proj: linear(&mut w, &p("mlp.up_proj"), d, c.intermediate_size, c.mlp_bias, std),
                    down_proj: linear(&mut w, &p("mlp.down_proj"), c.intermediate_size, d, c.mlp_bias, std),
                }
            })
            .collect();
        let norm = rms_norm(&mut w, "norm", d, eps);
        let tied = c.tie_word_embeddings;
        let lm_head_weight = if tied {
            if let Some(head) = w.raw("lm_head.weight") {
                let emb = embed_tokens.weight.detach().to_device(head.device()).to_kind(head.kind());
                if !(head.size() == emb.size() && head.equal(&emb)) {
                    return Err(ModelError::Invalid(format!(
                        "{}: tie_word_embeddings is true but lm_head.weight differs from embed_tokens.weight; set it to false to load an untied head",
                        config_path.display()
                    )));
                }
            }
            w.mark_used("lm_head.weight");
            embed_tokens.weight.shallow_clone()
        } else {
            w.get("lm_head.weight", &[v, d], Init::Normal(std))
        };
        let lm_head =
            Linear { name: "lm_head".into(), weight: lm_head_weight, bias: None, layout: WeightLayout::OutIn };
        let rope = Rope::new(c.head_dim(), c.theta(), c.scaling())?;
        let (ignored, _) = w.finish(ignorable)?;
        Ok((Self { config, embed_tokens, layers, norm, lm_head, prefix: None, rope, tied }, ignored))
    }

    /// Whether `lm_head` shares `embed_tokens`.
    pub fn is_tied(&self) -> bool {
        self.tied
    }

    /// Gives `lm_head` a tensor of its own, a copy of `embed_tokens`.
    pub fn untie_lm_head(&mut self) {
        if self.tied {
            let e = &self.embed_tokens.weight;
            self.lm_head.weight = e.detach().copy().set_requires_grad(e.requires_grad());
            self.tied = false;
            self.config.tie_word_embeddings = false;
        }
    }

    /// Appends a `[PAD]` token (its embedding and untied head rows the mean of the existing ones), as the
    /// paper's recipe does for GPT-2; see [`crate::Gpt2LmHeadModel::add_pad_token`].
    pub fn add_pad_token(&mut self, tokenizer: &mut TextTokenizer) -> Result<i64, ModelError> {
        let id = self.config.vocab_size;
        let (weight, head) =
            crate::gpt2::grow_for_pad(tokenizer, id, &self.embed_tokens.weight, &self.lm_head.weight, self.tied)?;
        self.embed_tokens.weight = weight;
        self.lm_head.weight = head;
        self.config.vocab_size += 1;
        self.config.pad_token_id = Some(id);
        Ok(id)
    }

    /// Freezes everything but the top `k` layers and the final norm (the paper's top-k baseline).
    pub fn train_only_top_layers(&mut self, k: usize) -> Result<(), ModelError> {
        let n = self.layers.len();
        if k == 0 || k > n {
            return Err(ModelError::Invalid(format!("top_k = {k} must lie in 1..={n} (the model's layers)")));
        }
        let keep: std::collections::HashSet<usize> = self.layers[n - k..]
            .iter()
            .flat_map(LlamaLayer::layers)
            .chain(std::iter::once(&self.norm as &dyn DpLayer))
            .flat_map(|l| l.parameters())
            .map(|(_, t)| t.data_ptr() as usize)
            .collect();
        for (_, t) in self.named_parameters() {
            let _ = t.shallow_clone().set_requires_grad(keep.contains(&(t.data_ptr() as usize)));
        }
        Ok(())
    }

    /// LoRA of rank `r` on the projections named in `targets` (short names of [`PROJECTIONS`]; the paper's
    /// default [`DEFAULT_LORA_TARGETS`]), every other parameter frozen.
    pub fn add_lora(&mut self, r: i64, alpha: f64, targets: &[&str]) -> Result<(), ModelError> {
        if let Some(bad) = targets.iter().find(|t| !PROJECTIONS.contains(t)) {
            return Err(ModelError::Invalid(format!(
                "LoRA target {bad:?} is not a projection of this model (one of {})",
                PROJECTIONS.join(", ")
            )));
        }
        self.freeze_all();
        for layer in &mut self.layers {
            for (name, p) in PROJECTIONS.iter().zip(layer.projections_mut()) {
                if targets.contains(name) {
                    p.add_lora(r, alpha)?;
                }
            }
        }
        Ok(())
    }

    /// Prefix-tuning: L key/value positions per layer (with `num_key_value_heads` heads), from an MLP of
    /// width `mid_dim`; every other parameter frozen.
    pub fn add_prefix(&mut self, length: i64, mid_dim: i64) -> Result<(), ModelError> {
        if self.prefix.is_some() {
            return Err(ModelError::Invalid("the model already has a prefix".into()));
        }
        if length >= self.config.max_position_embeddings {
            return Err(ModelError::Invalid(format!(
                "prefix length {length} leaves no positions for text (max_position_embeddings = {})",
                self.config.max_position_embeddings
            )));
        }
        self.freeze_all();
        let c = &self.config;
        let kv = c.kv_heads() * c.head_dim();
        let like = &self.embed_tokens.weight;
        self.prefix =
            Some(Prefix::with_width(length, mid_dim, c.num_hidden_layers, c.kv_heads(), c.hidden_size, kv, like)?);
        Ok(())
    }

    /// RGP of rank `r` on every projection of every layer; see [`crate::Gpt2LmHeadModel::add_rgp`].
    pub fn add_rgp(&mut self, r: i64) -> Result<(), ModelError> {
        if self.prefix.is_some() {
            return Err(ModelError::Invalid("RGP cannot be combined with another method".into()));
        }
        self.freeze_all();
        for layer in &mut self.layers {
            for p in layer.projections_mut() {
                p.add_rgp(r)?;
            }
        }
        Ok(())
    }

    fn freeze_all(&self) {
        for (_, t) in self.named_parameters() {
            let _ = t.shallow_clone().set_requires_grad(false);
        }
    }

    fn all_projections(&self) -> impl Iterator<Item = &Projection> + Clone {
        self.layers.iter().flat_map(|l| l.projections())
    }

    /// Before a step: RGP draws new carriers; nothing otherwise.
    pub fn prepare_step(&self) {
        for p in self.all_projections() {
            if let Some(r) = p.rgp() {
                r.refresh(&p.linear);
            }
        }
    }

    /// The tensors the optimizer updates (with RGP: the weight matrices).
    pub fn updated_parameters(&self) -> Vec<(String, Tensor)> {
        crate::projection::updated_parameters(self.all_projections(), || self.trainable())
    }

    /// Gradients of [`updated_parameters`](Self::updated_parameters) from those of the trainable tensors.
    pub fn reconstruct_gradients(&self, grads: Vec<(String, Tensor)>) -> Result<Vec<(String, Tensor)>, ModelError> {
        crate::projection::reconstruct_gradients(self.all_projections(), grads)
    }

    /// Writes a Hugging Face folder (config.json, model.safetensors, tokenizer.json) that transformers'
    /// `AutoModelForCausalLM` reads; refused with LoRA factors or a prefix (no place for them).
    pub fn save_pretrained(&self, dir: &std::path::Path, tokenizer: &TextTokenizer) -> Result<(), ModelError> {
        if self.prefix.is_some() || self.all_projections().any(|p| p.lora().is_some()) {
            return Err(ModelError::Invalid(
                "a model with LoRA factors or a prefix cannot be written as a plain model folder; its run checkpoint holds them"
                    .into(),
            ));
        }
        let mut config = self.config.clone();
        config.tie_word_embeddings = self.tied;
        let text = serde_json::to_string_pretty(&config).map_err(|e| ModelError::Invalid(e.to_string()))?;
        crate::loader::write_model_folder(dir, &text, &self.named_parameters(), tokenizer)
    }

    /// Positions left for text: max_position_embeddings less a prefix's.
    pub fn text_positions(&self) -> i64 {
        self.config.max_position_embeddings - self.prefix_length()
    }

    /// Positions taken by a prefix (0 without one).
    pub fn prefix_length(&self) -> i64 {
        self.prefix.as_ref().map_or(0, |p| p.length)
    }

    /// Every layer, for the engine's ownership check.
    pub fn layers(&self) -> Vec<&dyn DpLayer> {
        let mut out: Vec<&dyn DpLayer> = vec![&self.embed_tokens];
        for l in &self.layers {
            out.extend(l.layers());
        }
        out.push(&self.norm);
        out.push(&self.lm_head);
        if let Some(p) = &self.prefix {
            out.extend(p.layers());
        }
        out
    }

    /// Every parameter once, under its checkpoint name (a tied head under `embed_tokens`' name).
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        crate::weights::unique_parameters(&self.layers())
    }

    /// Parameters that require gradients.
    pub fn trainable(&self) -> Vec<(String, Tensor)> {
        self.named_parameters().into_iter().filter(|(_, t)| t.requires_grad()).collect()
    }

    /// The device of the parameters.
    pub fn device(&self) -> Device {
        self.embed_tokens.weight.device()
    }

    /// Logits `[B, T, V]` for `inputs.input_ids` `[B, T]`; the mask, positions and cache as in
    /// [`crate::Gpt2LmHeadModel::forward`]. Attention dropout (`attention_dropout`, 0 in released models)
    /// is active iff `train`.
    pub fn forward(
        &self,
        inputs: Inputs,
        mut cache: Option<&mut KvCache>,
        train: bool,
        tape: &mut Tape,
    ) -> Result<Tensor, ModelError> {
        let c = &self.config;
        let past = cache.as_ref().map_or(0, |c| c.len());
        let prefix_len = self.prefix_length();
        let room = self.text_positions();
        let (b, t) = inputs.check(c.vocab_size, past, room, None)?;
        if past + t > room {
            return Err(ModelError::Invalid(format!(
                "sequence of {} tokens is longer than the model's max_position_embeddings = {}{}",
                past + t,
                c.max_position_embeddings,
                if prefix_len > 0 { format!(" less the prefix's {prefix_len}") } else { String::new() }
            )));
        }
        if let Some(window) = c.window().filter(|&w| prefix_len + past + t > w) {
            return Err(ModelError::Invalid(format!(
                "sequence of {} positions exceeds sliding_window = {window}: sliding-window attention is not implemented",
                prefix_len + past + t
            )));
        }
        let device = inputs.input_ids.device();
        let positions = match inputs.position_ids {
            Some(p) => p.shallow_clone(),
            None => Tensor::arange_start(past, past + t, (Kind::Int64, device)).unsqueeze(0).expand([b, t], true),
        };
        let positions = if prefix_len > 0 { positions + prefix_len } else { positions };
        let fresh = cache.as_ref().is_none_or(|c| c.is_empty());
        let prefix_kv = match &self.prefix {
            Some(p) if fresh => p.key_values(b, tape),
            _ => Vec::new(),
        };
        let mut x = self.embed_tokens.forward(inputs.input_ids, tape); // [B, T, d]
        let mask = call_mask(inputs.attention_mask, t, past, prefix_len, device);
        let (cos, sin) = self.rope.cos_sin(&positions, x.kind());
        let (heads, kv_heads) = (c.num_attention_heads, c.kv_heads());
        let scale = 1.0 / (c.head_dim() as f64).sqrt();
        let p_attn = if train { c.attention_dropout } else { 0.0 };
        for (i, layer) in self.layers.iter().enumerate() {
            let hidden = layer.input_layernorm.forward(&x, tape);
            let q = rope::apply(&split_heads(&layer.q_proj.forward(&hidden, tape), heads), &cos, &sin);
            let mut k = rope::apply(&split_heads(&layer.k_proj.forward(&hidden, tape), kv_heads), &cos, &sin);
            let mut v = split_heads(&layer.v_proj.forward(&hidden, tape), kv_heads); // [B, H_kv, T, h]
            if let Some((pk, pv)) = prefix_kv.get(i) {
                k = Tensor::cat(&[pk, &k], 2);
                v = Tensor::cat(&[pv, &v], 2);
            }
            if let Some(cache) = cache.as_deref_mut() {
                if fresh {
                    cache.set_prefix(prefix_len);
                }
                (k, v) = cache.extend(i, k, v);
            }
            let (k, v) = (repeat_kv(&k, heads / kv_heads), repeat_kv(&v, heads / kv_heads));
            let ctx = attend(&q, &k, &v, mask.as_ref(), true, scale, p_attn); // [B, H, T, h]
                                                                              // Not `+=`: x is saved by the norm for the backward pass.
            x = &x + layer.o_proj.forward(&merge_heads(&ctx), tape);
            let hidden = layer.post_attention_layernorm.forward(&x, tape);
            let gate = layer.gate_proj.forward(&hidden, tape).silu();
            let inner = gate * layer.up_proj.forward(&hidden, tape);
            x = &x + layer.down_proj.forward(&inner, tape);
        }
        let x = self.norm.forward(&x, tape);
        Ok(self.lm_head.forward(&x, tape))
    }
}

impl CausalModel for LlamaForCausalLm {
    fn model_type(&self) -> &str {
        &self.config.model_type
    }

    fn forward(
        &self,
        inputs: Inputs,
        cache: Option<&mut KvCache>,
        train: bool,
        tape: &mut Tape,
    ) -> Result<Tensor, ModelError> {
        LlamaForCausalLm::forward(self, inputs, cache, train, tape)
    }

    fn vocab_size(&self) -> i64 {
        self.config.vocab_size
    }

    fn max_positions(&self) -> i64 {
        self.config.max_position_embeddings
    }

    fn prefix_length(&self) -> i64 {
        LlamaForCausalLm::prefix_length(self)
    }

    fn eos_token_id(&self) -> Option<i64> {
        self.config.eos_token_id.as_ref().and_then(|e| e.first())
    }

    fn pad_token_id(&self) -> Option<i64> {
        self.config.pad_token_id
    }

    fn device(&self) -> Device {
        LlamaForCausalLm::device(self)
    }

    fn kind(&self) -> Kind {
        self.embed_tokens.weight.kind()
    }

    fn hidden_size(&self) -> i64 {
        self.config.hidden_size
    }

    fn layers(&self) -> Vec<&dyn DpLayer> {
        LlamaForCausalLm::layers(self)
    }

    fn updated_parameters(&self) -> Vec<(String, Tensor)> {
        LlamaForCausalLm::updated_parameters(self)
    }

    fn reconstruct_gradients(&self, grads: Vec<(String, Tensor)>) -> Result<Vec<(String, Tensor)>, ModelError> {
        LlamaForCausalLm::reconstruct_gradients(self, grads)
    }

    fn prepare_step(&self) {
        LlamaForCausalLm::prepare_step(self)
    }

    fn is_tied(&self) -> bool {
        self.tied
    }

    fn untie_lm_head(&mut self) {
        LlamaForCausalLm::untie_lm_head(self)
    }

    fn add_pad_token(&mut self, tokenizer: &mut TextTokenizer) -> Result<i64, ModelError> {
        LlamaForCausalLm::add_pad_token(self, tokenizer)
    }

    fn apply_method(&mut self, method: &CausalMethod) -> Result<(), ModelError> {
        match method {
            CausalMethod::Full => Ok(()),
            CausalMethod::TopK(k) => self.train_only_top_layers(*k),
            CausalMethod::Lora { rank, alpha, targets } => {
                let targets: Vec<&str> = if targets.is_empty() {
                    DEFAULT_LORA_TARGETS.to_vec()
                } else {
                    targets.iter().map(String::as_str).collect()
                };
                self.add_lora(*rank, *alpha, &targets)
            }
            CausalMethod::Prefix { length, mid_dim } => self.add_prefix(*length, *mid_dim),
            CausalMethod::Rgp(r) => self.add_rgp(*r),
        }
    }

    fn save_pretrained(&self, dir: &std::path::Path, tokenizer: &TextTokenizer) -> Result<(), ModelError> {
        LlamaForCausalLm::save_pretrained(self, dir, tokenizer)
    }

    fn as_llama(&self) -> Option<&LlamaForCausalLm> {
        Some(self)
    }

    fn as_llama_mut(&mut self) -> Option<&mut LlamaForCausalLm> {
        Some(self)
    }
}

/// Key/value heads `[B, H_kv, S, h]` repeated for the `n_rep` query heads each serves: `[B, H_kv·n_rep,
/// S, h]`, head j of the result being key/value head j / n_rep (transformers' `repeat_kv`).
fn repeat_kv(x: &Tensor, n_rep: i64) -> Tensor {
    if n_rep == 1 {
        return x.shallow_clone();
    }
    x.repeat_interleave_self_int(n_rep, Some(1), None::<i64>)
}
