//! GPT-2 causal language model (Radford et al. 2019), any size from its config (distilgpt2 … gpt2-xl),
//! built from dp-core's DP-aware layers so that private training clips it exactly.
//!
//! Layout follows Hugging Face `GPT2LMHeadModel` (transformers `models/gpt2/modeling_gpt2.py`): token and
//! position embeddings (`wte`, `wpe`), pre-LN blocks `h.N` with `ln_1`, `attn.c_attn` / `attn.c_proj`
//! (Conv1D, `[in, out]` weights), `ln_2`, `mlp.c_fc` / `mlp.c_proj`, the final `ln_f` and `lm_head`.
//! `lm_head` is tied to `wte` (Hugging Face default) or an untied copy; the paper's recipe (Li et al.
//! 2022, Sec. 3 and App.) adds a `[PAD]` token whose row is the mean of the existing rows. Both ties are
//! exact under the engine: a tied `wte`/`lm_head` is one variable owned by two factorable layers, whose
//! per-example cross term the clipper adds.

use dp_core::engine::{DpLayer, Embedding, LayerNorm, Linear, Tape, WeightLayout};
use tch::{Kind, Tensor};

use crate::attention::{attend, call_mask, merge_heads, split_heads};
use crate::causal::{CausalMethod, CausalModel};
use crate::config::{Activation, Gpt2Config};
use crate::inputs::Inputs;
pub use crate::kv_cache::KvCache;
use crate::prefix::Prefix;
use crate::rgp::Rgp;
use crate::tokenizer::TextTokenizer;
use crate::weights::{layer_norm, Init, Weights};
use crate::ModelError;

/// One transformer block `h.N`.
#[derive(Debug)]
pub struct Gpt2Block {
    /// LayerNorm before attention.
    pub ln_1: LayerNorm,
    /// Query/key/value projection `[d, 3d]`.
    pub c_attn: Linear,
    /// Attention output projection `[d, d]`.
    pub attn_c_proj: Linear,
    /// LayerNorm before the MLP.
    pub ln_2: LayerNorm,
    /// MLP up-projection `[d, inner]`.
    pub c_fc: Linear,
    /// MLP down-projection `[inner, d]`.
    pub mlp_c_proj: Linear,
    /// LoRA update of `c_attn` (method `lora`).
    pub c_attn_lora: Option<crate::lora::Lora>,
    /// RGP gradient carriers of the four weight matrices (method `rgp`).
    pub rgp: Option<BlockRgp>,
}

/// RGP gradient carriers of one block's weight matrices.
#[derive(Debug)]
pub struct BlockRgp {
    /// Of `attn.c_attn`.
    pub c_attn: Rgp,
    /// Of `attn.c_proj`.
    pub attn_c_proj: Rgp,
    /// Of `mlp.c_fc`.
    pub c_fc: Rgp,
    /// Of `mlp.c_proj`.
    pub mlp_c_proj: Rgp,
}

impl Gpt2Block {
    /// The four weight matrices with their carriers (when RGP is on), in a fixed order.
    fn rgp_pairs(&self) -> Vec<(&Linear, &Rgp)> {
        match &self.rgp {
            Some(r) => vec![
                (&self.c_attn, &r.c_attn),
                (&self.attn_c_proj, &r.attn_c_proj),
                (&self.c_fc, &r.c_fc),
                (&self.mlp_c_proj, &r.mlp_c_proj),
            ],
            None => Vec::new(),
        }
    }
}

/// `layer`'s output, through its RGP carriers when it has them.
fn project(layer: &Linear, rgp: Option<&Rgp>, x: &Tensor, tape: &mut Tape) -> Tensor {
    match rgp {
        Some(r) => r.forward(layer, x, tape),
        None => layer.forward(x, tape),
    }
}

/// GPT-2 with its language-model head.
#[derive(Debug)]
pub struct Gpt2LmHeadModel {
    /// The configuration (vocab_size grows when a pad token is added).
    pub config: Gpt2Config,
    activation: Activation,
    /// Token embeddings `[V, d]`.
    pub wte: Embedding,
    /// Position embeddings `[n_positions, d]`.
    pub wpe: Embedding,
    /// The blocks.
    pub h: Vec<Gpt2Block>,
    /// Final LayerNorm.
    pub ln_f: LayerNorm,
    /// Output projection `[V, d]` (torch layout); shares `wte`'s tensor when tied.
    pub lm_head: Linear,
    /// Prefix-tuning's prefix (method `prefix`).
    pub prefix: Option<Prefix>,
    tied: bool,
}

fn conv1d(w: &mut Weights, name: &str, d_in: i64, d_out: i64, std: f64) -> Linear {
    Linear {
        name: format!("{}{name}", w.prefix()),
        weight: w.base(&format!("{name}.weight"), &[d_in, d_out], Init::Normal(std)),
        bias: Some(w.base(&format!("{name}.bias"), &[d_out], Init::Zeros)),
        layout: WeightLayout::InOut,
    }
}

/// Whether an unused tensor name in a GPT-2 checkpoint carries nothing the model needs: the causal-mask
/// buffers `attn.bias` / `attn.masked_bias` of older checkpoints (Hugging Face ignores them too).
fn gpt2_ignorable(name: &str) -> bool {
    name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias")
}

impl Gpt2LmHeadModel {
    /// Builds the model from `weights` (a checkpoint or a random initialisation). `lm_head.weight` is read
    /// when the config unties it (`tie_word_embeddings: false`) and the checkpoint has it; a tied model
    /// shares `wte`. Returns the model and the names of ignored checkpoint tensors.
    pub fn build(
        config: Gpt2Config,
        mut w: Weights,
        config_path: &std::path::Path,
    ) -> Result<(Self, Vec<String>), ModelError> {
        let activation = config.check(config_path)?;
        let (d, v, std) = (config.n_embd, config.vocab_size, config.initializer_range);
        let eps = config.layer_norm_epsilon;
        let wte = Embedding {
            name: format!("{}wte", w.prefix()),
            weight: w.base("wte.weight", &[v, d], Init::Normal(std)),
            padding_idx: None,
        };
        let wpe = Embedding {
            name: format!("{}wpe", w.prefix()),
            weight: w.base("wpe.weight", &[config.n_positions, d], Init::Normal(std)),
            padding_idx: None,
        };
        // Hugging Face scales the residual projections' init by 1/sqrt(2·n_layer) (GPT-2 paper, Sec. 2.3).
        let proj_std = std / (2.0 * config.n_layer as f64).sqrt();
        let h = (0..config.n_layer)
            .map(|i| Gpt2Block {
                ln_1: layer_norm(&mut w, &format!("h.{i}.ln_1"), d, eps),
                c_attn: conv1d(&mut w, &format!("h.{i}.attn.c_attn"), d, 3 * d, std),
                attn_c_proj: conv1d(&mut w, &format!("h.{i}.attn.c_proj"), d, d, proj_std),
                ln_2: layer_norm(&mut w, &format!("h.{i}.ln_2"), d, eps),
                c_fc: conv1d(&mut w, &format!("h.{i}.mlp.c_fc"), d, config.inner(), std),
                mlp_c_proj: conv1d(&mut w, &format!("h.{i}.mlp.c_proj"), config.inner(), d, proj_std),
                c_attn_lora: None,
                rgp: None,
            })
            .collect();
        let ln_f = layer_norm(&mut w, "ln_f", d, eps);
        let tied = config.tie_word_embeddings;
        let lm_head_weight = if tied {
            // A tied head saved anyway must be the embedding itself (compared as stored).
            if let (Some(head), Some(emb)) = (w.raw("lm_head.weight"), w.raw(&format!("{}wte.weight", w.prefix()))) {
                if !(head.size() == emb.size() && head.equal(&emb)) {
                    return Err(ModelError::Invalid(format!(
                        "{}: tie_word_embeddings is true but lm_head.weight differs from wte.weight; set it to false to load an untied head",
                        config_path.display()
                    )));
                }
            }
            w.mark_used("lm_head.weight");
            wte.weight.shallow_clone()
        } else if w.contains("lm_head.weight") || w.prefix() == "transformer." {
            w.get("lm_head.weight", &[v, d], Init::Normal(std))
        } else {
            // A base-model checkpoint (no head) with an untied config: the head starts as a copy of wte
            // (the paper's untied head), said in a warning.
            log::warn!(
                "{}: no lm_head.weight in the checkpoint; the untied head starts as a copy of wte",
                config_path.display()
            );
            wte.weight.detach().copy().set_requires_grad(true)
        };
        let lm_head =
            Linear { name: "lm_head".into(), weight: lm_head_weight, bias: None, layout: WeightLayout::OutIn };
        let (ignored, _) = w.finish(gpt2_ignorable)?;
        Ok((Self { config, activation, wte, wpe, h, ln_f, lm_head, prefix: None, tied }, ignored))
    }

    /// Whether `lm_head` shares `wte`.
    pub fn is_tied(&self) -> bool {
        self.tied
    }

    /// Gives `lm_head` a tensor of its own, a copy of `wte` (the paper's untied head).
    pub fn untie_lm_head(&mut self) {
        if self.tied {
            self.lm_head.weight = self.wte.weight.detach().copy().set_requires_grad(self.wte.weight.requires_grad());
            self.tied = false;
            self.config.tie_word_embeddings = false;
        }
    }

    /// Appends the paper's `[PAD]` token to the tokenizer and the model: its embedding row, and untied head
    /// row, is the mean of the existing rows; it becomes `pad_token_id`. Returns its id, which must be the
    /// model's old vocabulary size in both (an error otherwise: the tokenizer and the embedding would
    /// disagree on what the id means). Replaces `wte` (and `lm_head`) by new tensors that keep their
    /// `requires_grad`: take [`trainable`](Self::trainable) and build optimizers after this call.
    pub fn add_pad_token(&mut self, tokenizer: &mut TextTokenizer) -> Result<i64, ModelError> {
        let id = self.config.vocab_size;
        let (wte, head) = grow_for_pad(tokenizer, id, &self.wte.weight, &self.lm_head.weight, self.tied)?;
        self.wte.weight = wte;
        self.lm_head.weight = head;
        self.config.vocab_size += 1;
        self.config.pad_token_id = Some(id);
        Ok(id)
    }

    /// Freezes every parameter except those of the top `k` blocks and `ln_f` (the paper's "top2" baseline,
    /// Li et al. 2022, Table 2): `wte`, `wpe` and `lm_head` (tied or not) no longer train.
    pub fn train_only_top_layers(&mut self, k: usize) -> Result<(), ModelError> {
        let n = self.h.len();
        if k == 0 || k > n {
            return Err(ModelError::Invalid(format!("top_k = {k} must lie in 1..={n} (the model's blocks)")));
        }
        let keep: std::collections::HashSet<usize> = self.h[n - k..]
            .iter()
            .flat_map(|b| [&b.ln_1 as &dyn DpLayer, &b.c_attn, &b.attn_c_proj, &b.ln_2, &b.c_fc, &b.mlp_c_proj])
            .chain(std::iter::once(&self.ln_f as &dyn DpLayer))
            .flat_map(|l| l.parameters())
            .map(|(_, t)| t.data_ptr() as usize)
            .collect();
        for (_, t) in self.named_parameters() {
            let _ = t.shallow_clone().set_requires_grad(keep.contains(&(t.data_ptr() as usize)));
        }
        Ok(())
    }

    /// LoRA on every block's `c_attn` (the paper's GPT-2 LoRA baseline: rank 4) with every other parameter
    /// frozen; the LoRA factors are the only trainable tensors.
    pub fn add_lora(&mut self, r: i64, alpha: f64) -> Result<(), ModelError> {
        for (_, t) in self.named_parameters() {
            let _ = t.shallow_clone().set_requires_grad(false);
        }
        let d = self.config.n_embd;
        for block in &mut self.h {
            block.c_attn_lora =
                Some(crate::lora::Lora::new(&block.c_attn.name, d, 3 * d, r, alpha, &block.c_attn.weight)?);
        }
        Ok(())
    }

    /// Prefix-tuning (the paper's "prefix" baseline: `length` 10, `mid_dim` 512) with every other
    /// parameter frozen; the prefix's reparametrisation is the only trainable part ([`Prefix`]).
    pub fn add_prefix(&mut self, length: i64, mid_dim: i64) -> Result<(), ModelError> {
        if self.prefix.is_some() {
            return Err(ModelError::Invalid("the model already has a prefix".into()));
        }
        if length >= self.config.n_positions {
            return Err(ModelError::Invalid(format!(
                "prefix length {length} leaves no positions for text (n_positions = {})",
                self.config.n_positions
            )));
        }
        for (_, t) in self.named_parameters() {
            let _ = t.shallow_clone().set_requires_grad(false);
        }
        let c = &self.config;
        self.prefix = Some(Prefix::new(length, mid_dim, c.n_layer, c.n_head, c.n_embd, &self.wte.weight)?);
        Ok(())
    }

    /// A prefix given by its embeddings P `[L, 2·n_layer·d]` (an adapter folder's), for inference; every
    /// other parameter frozen.
    pub fn set_prefix_embeddings(&mut self, p: Tensor) -> Result<(), ModelError> {
        self.add_prefix(p.size()[0], 1)?;
        self.prefix.as_mut().expect("just added").set_embeddings(p)
    }

    /// RGP of rank `r` on every block's four weight matrices (the paper's baseline: rank 1); every
    /// parameter is frozen for autograd, the carriers are the only trainable tensors, and the optimizer
    /// updates the weight matrices with the reconstructed gradient ([`Rgp`]: call
    /// [`prepare_step`](Self::prepare_step) before each step and
    /// [`reconstruct_gradients`](Self::reconstruct_gradients) after release).
    pub fn add_rgp(&mut self, r: i64) -> Result<(), ModelError> {
        if self.h.iter().any(|b| b.rgp.is_some() || b.c_attn_lora.is_some()) || self.prefix.is_some() {
            return Err(ModelError::Invalid("RGP cannot be combined with another method".into()));
        }
        for (_, t) in self.named_parameters() {
            let _ = t.shallow_clone().set_requires_grad(false);
        }
        for block in &mut self.h {
            block.rgp = Some(BlockRgp {
                c_attn: Rgp::new(&block.c_attn, r)?,
                attn_c_proj: Rgp::new(&block.attn_c_proj, r)?,
                c_fc: Rgp::new(&block.c_fc, r)?,
                mlp_c_proj: Rgp::new(&block.mlp_c_proj, r)?,
            });
        }
        Ok(())
    }

    /// Before a training step: RGP draws new gradient carriers from the weights' historical update;
    /// nothing to do for the other methods.
    pub fn prepare_step(&self) {
        for block in &self.h {
            for (layer, r) in block.rgp_pairs() {
                r.refresh(layer);
            }
        }
    }

    /// The tensors the optimizer updates: the trainable ones, or with RGP the weight matrices the
    /// carriers stand for.
    pub fn updated_parameters(&self) -> Vec<(String, Tensor)> {
        if self.h.iter().all(|b| b.rgp.is_none()) {
            return self.trainable();
        }
        self.h
            .iter()
            .flat_map(|b| b.rgp_pairs())
            .map(|(layer, _)| (format!("{}.weight", layer.name), layer.weight.shallow_clone()))
            .collect()
    }

    /// Gradients of [`updated_parameters`](Self::updated_parameters) from those of
    /// [`trainable`](Self::trainable) (same names and order as each): the identity, or with RGP the
    /// reconstruction ∂W = ∂L R + L ∂R − L Lᵀ ∂L R of each weight matrix.
    pub fn reconstruct_gradients(&self, grads: Vec<(String, Tensor)>) -> Result<Vec<(String, Tensor)>, ModelError> {
        if self.h.iter().all(|b| b.rgp.is_none()) {
            return Ok(grads);
        }
        let find =
            |layer: &Linear| -> Result<&Tensor, ModelError> {
                grads.iter().find(|(n, _)| *n == format!("{}.weight", layer.name)).map(|(_, g)| g).ok_or_else(|| {
                    ModelError::Invalid(format!("no gradient for the RGP carrier `{}.weight`", layer.name))
                })
            };
        self.h
            .iter()
            .flat_map(|b| b.rgp_pairs())
            .map(|(layer, r)| {
                let g = r.reconstruct(find(&r.left)?, find(&r.right)?);
                Ok((format!("{}.weight", layer.name), g))
            })
            .collect()
    }

    /// Writes the model as a Hugging Face folder `dir` (config.json, model.safetensors, tokenizer.json) that
    /// [`crate::load_gpt2`] and transformers' `GPT2LMHeadModel.from_pretrained` read. Written into a
    /// temporary folder renamed into place. RGP's carriers are not saved (the weights hold the update);
    /// a model with LoRA factors or a prefix is refused: the format has no place for them.
    pub fn save_pretrained(&self, dir: &std::path::Path, tokenizer: &TextTokenizer) -> Result<(), ModelError> {
        if self.prefix.is_some() || self.h.iter().any(|b| b.c_attn_lora.is_some()) {
            return Err(ModelError::Invalid(
                "a model with LoRA factors or a prefix cannot be written as a plain GPT-2 folder; its run checkpoint holds them"
                    .into(),
            ));
        }
        let mut config = self.config.clone();
        config.tie_word_embeddings = self.tied;
        let text = serde_json::to_string_pretty(&config).map_err(|e| ModelError::Invalid(e.to_string()))?;
        crate::loader::write_model_folder(dir, &text, &self.named_parameters(), tokenizer)
    }

    /// Positions left for text: n_positions less a prefix's.
    pub fn text_positions(&self) -> i64 {
        self.config.n_positions - self.prefix_length()
    }

    /// Positions taken by a prefix (0 without one).
    pub fn prefix_length(&self) -> i64 {
        self.prefix.as_ref().map_or(0, |p| p.length)
    }

    /// Every layer, for the engine's ownership check.
    pub fn layers(&self) -> Vec<&dyn DpLayer> {
        let mut out: Vec<&dyn DpLayer> = vec![&self.wte, &self.wpe];
        for b in &self.h {
            out.extend([&b.ln_1 as &dyn DpLayer, &b.c_attn, &b.attn_c_proj, &b.ln_2, &b.c_fc, &b.mlp_c_proj]);
            if let Some(l) = &b.c_attn_lora {
                out.extend([&l.lora_a as &dyn DpLayer, &l.lora_b]);
            }
            for (_, r) in b.rgp_pairs() {
                out.extend(r.layers());
            }
        }
        out.push(&self.ln_f);
        out.push(&self.lm_head);
        if let Some(p) = &self.prefix {
            out.extend(p.layers());
        }
        out
    }

    /// Every parameter once, under its checkpoint name (a tied `lm_head.weight` is `wte`'s, listed once
    /// as `wte.weight`, as Hugging Face saves it).
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        crate::weights::unique_parameters(&self.layers())
    }

    /// Parameters that require gradients.
    pub fn trainable(&self) -> Vec<(String, Tensor)> {
        self.named_parameters().into_iter().filter(|(_, t)| t.requires_grad()).collect()
    }

    /// Logits `[B, T, V]` for `inputs.input_ids` `[B, T]`.
    ///
    /// `attention_mask` `[B, S + T]` (1 = token, 0 = padding; S = cached positions) masks padded keys;
    /// `position_ids` `[B, T]` default to S, S+1, … for every row (with left padding pass
    /// cumsum(mask) − 1, as Hugging Face's `generate` does). With `cache`, keys and values of earlier
    /// calls are reused and this call's are appended. Dropout is active iff `train`.
    pub fn forward(
        &self,
        inputs: Inputs,
        mut cache: Option<&mut KvCache>,
        train: bool,
        tape: &mut Tape,
    ) -> Result<Tensor, ModelError> {
        let past = cache.as_ref().map_or(0, |c| c.len());
        let prefix_len = self.prefix_length();
        let room = self.text_positions();
        let (b, t) = inputs.check(self.config.vocab_size, past, room, None)?;
        if past + t > room {
            return Err(ModelError::Invalid(format!(
                "sequence of {} tokens is longer than the model's n_positions = {}{}",
                past + t,
                self.config.n_positions,
                if prefix_len > 0 { format!(" less the prefix's {prefix_len}") } else { String::new() }
            )));
        }
        let (input_ids, attention_mask) = (inputs.input_ids, inputs.attention_mask);
        let device = input_ids.device();
        let positions = match inputs.position_ids {
            Some(p) => p.shallow_clone(),
            // [B, T]: per example, so that the engine sees one position-embedding gradient per example.
            None => Tensor::arange_start(past, past + t, (Kind::Int64, device)).unsqueeze(0).expand([b, t], true),
        };
        // The text's positions come after the prefix's (see `prefix`).
        let positions = if prefix_len > 0 { positions + prefix_len } else { positions };
        // A prefix enters at the first call; later calls find it in the cache.
        let fresh = cache.as_ref().is_none_or(|c| c.is_empty());
        let prefix_kv = match &self.prefix {
            Some(p) if fresh => p.key_values(b, tape),
            _ => Vec::new(),
        };
        let mut x = self.wte.forward(input_ids, tape) + self.wpe.forward(&positions, tape); // [B, T, d]
        x = x.dropout(self.config.embd_pdrop, train);
        let mask = call_mask(attention_mask, t, past, prefix_len, device);
        let heads = self.config.n_head;
        let head_dim = self.config.n_embd / heads;
        let scale = if self.config.scale_attn_weights { 1.0 / (head_dim as f64).sqrt() } else { 1.0 };
        for (i, block) in self.h.iter().enumerate() {
            let hidden = block.ln_1.forward(&x, tape);
            let rgp = block.rgp.as_ref();
            let mut qkv = project(&block.c_attn, rgp.map(|r| &r.c_attn), &hidden, tape); // [B, T, 3d]
            if let Some(lora) = &block.c_attn_lora {
                // Not `+=`: qkv is c_attn's recorded output, which the engine differentiates at.
                qkv = &qkv + lora.forward(&hidden, tape);
            }
            let qkv = qkv.split(self.config.n_embd, -1); // 3 × [B, T, d]
            let (q, mut k, mut v) =
                (split_heads(&qkv[0], heads), split_heads(&qkv[1], heads), split_heads(&qkv[2], heads));
            if let Some((pk, pv)) = prefix_kv.get(i) {
                k = Tensor::cat(&[pk, &k], 2);
                v = Tensor::cat(&[pv, &v], 2);
            }
            if let Some(c) = cache.as_deref_mut() {
                if fresh {
                    c.set_prefix(prefix_len);
                }
                (k, v) = c.extend(i, k, v);
            }
            let p_attn = if train { self.config.attn_pdrop } else { 0.0 };
            let ctx = attend(&q, &k, &v, mask.as_ref(), true, scale, p_attn); // [B, H, T, h]
            let attn = project(&block.attn_c_proj, rgp.map(|r| &r.attn_c_proj), &merge_heads(&ctx), tape)
                .dropout(self.config.resid_pdrop, train);
            // Not `+=`: x is saved by ln_1 for the backward pass; an in-place add would corrupt it.
            x = &x + attn;
            let hidden = block.ln_2.forward(&x, tape);
            let inner = self.activation.apply(&project(&block.c_fc, rgp.map(|r| &r.c_fc), &hidden, tape));
            let mlp = project(&block.mlp_c_proj, rgp.map(|r| &r.mlp_c_proj), &inner, tape);
            x = &x + mlp.dropout(self.config.resid_pdrop, train);
        }
        let x = self.ln_f.forward(&x, tape);
        Ok(self.lm_head.forward(&x, tape))
    }
}

impl CausalModel for Gpt2LmHeadModel {
    fn model_type(&self) -> &str {
        "gpt2"
    }

    fn forward(
        &self,
        inputs: Inputs,
        cache: Option<&mut KvCache>,
        train: bool,
        tape: &mut Tape,
    ) -> Result<Tensor, ModelError> {
        Gpt2LmHeadModel::forward(self, inputs, cache, train, tape)
    }

    fn vocab_size(&self) -> i64 {
        self.config.vocab_size
    }

    fn max_positions(&self) -> i64 {
        self.config.n_positions
    }

    fn prefix_length(&self) -> i64 {
        Gpt2LmHeadModel::prefix_length(self)
    }

    fn eos_token_id(&self) -> Option<i64> {
        self.config.eos_token_id
    }

    fn pad_token_id(&self) -> Option<i64> {
        self.config.pad_token_id
    }

    fn device(&self) -> tch::Device {
        self.wte.weight.device()
    }

    fn kind(&self) -> Kind {
        self.wte.weight.kind()
    }

    fn hidden_size(&self) -> i64 {
        self.config.n_embd
    }

    fn layers(&self) -> Vec<&dyn DpLayer> {
        Gpt2LmHeadModel::layers(self)
    }

    fn updated_parameters(&self) -> Vec<(String, Tensor)> {
        Gpt2LmHeadModel::updated_parameters(self)
    }

    fn reconstruct_gradients(&self, grads: Vec<(String, Tensor)>) -> Result<Vec<(String, Tensor)>, ModelError> {
        Gpt2LmHeadModel::reconstruct_gradients(self, grads)
    }

    fn prepare_step(&self) {
        Gpt2LmHeadModel::prepare_step(self)
    }

    fn is_tied(&self) -> bool {
        self.tied
    }

    fn untie_lm_head(&mut self) {
        Gpt2LmHeadModel::untie_lm_head(self)
    }

    fn add_pad_token(&mut self, tokenizer: &mut TextTokenizer) -> Result<i64, ModelError> {
        Gpt2LmHeadModel::add_pad_token(self, tokenizer)
    }

    fn apply_method(&mut self, method: &CausalMethod) -> Result<(), ModelError> {
        match method {
            CausalMethod::Full => Ok(()),
            CausalMethod::TopK(k) => self.train_only_top_layers(*k),
            CausalMethod::Lora { rank, alpha, targets } => {
                if let Some(other) = targets.iter().find(|t| t.as_str() != "c_attn") {
                    return Err(ModelError::Invalid(format!(
                        "LoRA target {other:?}: GPT-2's LoRA adapts c_attn (the paper's; queries, keys and values in one matrix)"
                    )));
                }
                self.add_lora(*rank, *alpha)
            }
            CausalMethod::Prefix { length, mid_dim } => self.add_prefix(*length, *mid_dim),
            CausalMethod::Rgp(r) => self.add_rgp(*r),
        }
    }

    fn save_pretrained(&self, dir: &std::path::Path, tokenizer: &TextTokenizer) -> Result<(), ModelError> {
        Gpt2LmHeadModel::save_pretrained(self, dir, tokenizer)
    }

    fn as_gpt2(&self) -> Option<&Gpt2LmHeadModel> {
        Some(self)
    }

    fn as_gpt2_mut(&mut self) -> Option<&mut Gpt2LmHeadModel> {
        Some(self)
    }
}

/// Adds `[PAD]` to `tokenizer` as id `id` (the model's vocabulary size, which the tokenizer's must equal)
/// and returns the embedding and head grown by one row, the mean of the existing rows (the paper's
/// recipe); a tied head is the grown embedding itself. The new tensors keep their `requires_grad`.
pub(crate) fn grow_for_pad(
    tokenizer: &mut TextTokenizer,
    id: i64,
    embedding: &Tensor,
    head: &Tensor,
    tied: bool,
) -> Result<(Tensor, Tensor), ModelError> {
    if let Some(existing) = tokenizer.token_to_id("[PAD]") {
        return Err(ModelError::Invalid(format!(
            "the tokenizer already has [PAD] (id {existing}); it was added before"
        )));
    }
    if tokenizer.vocab_size() != id {
        return Err(ModelError::Invalid(format!(
            "the tokenizer has {} ids but the model's vocab_size is {id}: the new [PAD] id would differ between them",
            tokenizer.vocab_size()
        )));
    }
    let got = tokenizer.add_special_token("[PAD]");
    if got != id {
        return Err(ModelError::Invalid(format!("the tokenizer gave [PAD] id {got}, the model expects {id}")));
    }
    let grow = |w: &Tensor| {
        let trainable = w.requires_grad();
        let w = w.detach();
        Tensor::cat(&[&w, &w.mean_dim([0i64].as_slice(), true, None::<Kind>)], 0).set_requires_grad(trainable)
    };
    let embedding = grow(embedding);
    let head = if tied { embedding.shallow_clone() } else { grow(head) };
    Ok((embedding, head))
}

/// Per-example causal-LM loss `[B]`: position t's logits predict `labels[t + 1]` (labels are the input
/// ids with −100 where no loss is wanted, as in Hugging Face); each example's loss is the mean negative
/// log-likelihood over its counted positions. Fails when an example has no counted position (its mean
/// would be 0/0).
pub fn causal_lm_losses(logits: &Tensor, labels: &Tensor) -> Result<Tensor, ModelError> {
    let (b, t, v) = logits.size3().map_err(|_| ModelError::Invalid("logits must be [B, T, V]".into()))?;
    if labels.size() != [b, t] {
        return Err(ModelError::Invalid(format!(
            "labels of shape {:?} do not match logits [{b}, {t}, {v}]",
            labels.size()
        )));
    }
    // Half-precision logits are upcast (as Hugging Face's loss does): a log-softmax over V in bf16 and
    // token counts above 256 would be inexact.
    let kind = if matches!(logits.kind(), Kind::Double) { Kind::Double } else { Kind::Float };
    // The targets are shifted, not the logits: position t's target is labels[t + 1] and the last position's
    // is −100 (ignored, a loss of exactly 0). Narrowing the logits to T − 1 positions instead would copy all
    // of them (a non-contiguous [B, T−1, V] view flattened) and, in the backward pass, write their gradient
    // into a zero-filled [B, T, V]: two buffers of the logits' size (206 MB for GPT-2 at B·T = 1,024).
    let ignored = Tensor::full([b, 1], -100, (labels.kind(), labels.device()));
    let targets = Tensor::cat(&[&labels.narrow(1, 1, t - 1), &ignored], 1); // [B, T]
    let nll = logits
        .reshape([-1, v])
        .to_kind(kind)
        .cross_entropy_loss::<Tensor>(&targets.reshape([-1]), None, tch::Reduction::None, -100, 0.0)
        .reshape([b, t])
        .narrow(1, 0, t - 1); // the last position's 0 left out: each sum runs over the T − 1 predictions
    let counts = targets.ne(-100).sum_dim_intlist([1i64].as_slice(), false, kind); // [B]
    if bool::try_from(counts.eq(0).any()).unwrap_or(true) {
        return Err(ModelError::Invalid(
            "an example has no target tokens (all labels −100 after the first position): its per-example loss is undefined; drop it"
                .into(),
        ));
    }
    Ok(nll.sum_dim_intlist([1i64].as_slice(), false, None::<Kind>) / counts)
}

#[cfg(test)]
mod tests {
    use tch::{Device, Kind, Tensor};

    use super::causal_lm_losses;

    /// The loss shifts the targets instead of the logits (no copy of the logits): it must give exactly, bit
    /// for bit, the per-example losses and logits gradient of the shifted-logits formula, with −100 labels.
    #[test]
    fn shifting_the_targets_equals_shifting_the_logits_bit_for_bit() {
        tch::manual_seed(3);
        let (b, t, v) = (3, 7, 11);
        let logits = Tensor::randn([b, t, v], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let labels = Tensor::randint(v, [b, t], (Kind::Int64, Device::Cpu));
        let _ = labels.get(1).narrow(0, 4, 3).fill_(-100);
        let got = causal_lm_losses(&logits, &labels).unwrap();
        let g_got = Tensor::run_backward(&[got.sum(None::<Kind>)], &[&logits], false, false);

        let shifted = logits.narrow(1, 0, t - 1).reshape([-1, v]);
        let targets = labels.narrow(1, 1, t - 1);
        let nll = shifted
            .cross_entropy_loss::<Tensor>(&targets.reshape([-1]), None, tch::Reduction::None, -100, 0.0)
            .reshape([b, t - 1]);
        let counts = targets.ne(-100).sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
        let want = nll.sum_dim_intlist([1i64].as_slice(), false, None::<Kind>) / counts;
        let g_want = Tensor::run_backward(&[want.sum(None::<Kind>)], &[&logits], false, false);
        assert!(got.equal(&want), "{got:?} vs {want:?}");
        assert!(g_got[0].equal(&g_want[0]));
    }
}
