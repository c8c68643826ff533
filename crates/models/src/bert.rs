//! BERT (Devlin et al. 2019) and RoBERTa (Liu et al. 2019) encoders with a masked-LM head (the paper's
//! prompt-based classification reads its logits at `<mask>`, Li et al. 2022, Sec. 5.1) or a
//! sequence-classification head (the baseline), built from dp-core's DP-aware layers.
//!
//! Layout follows Hugging Face `BertModel` / `RobertaModel` (transformers `models/bert/modeling_bert.py`,
//! `models/roberta/modeling_roberta.py`): `embeddings.{word,position,token_type}_embeddings`,
//! `embeddings.LayerNorm`, post-LN layers `encoder.layer.N.{attention.self.{query,key,value},
//! attention.output.{dense,LayerNorm}, intermediate.dense, output.{dense,LayerNorm}}`. RoBERTa numbers
//! positions from `pad_token_id + 1` and skips padding (`create_position_ids_from_input_ids`).
//! Heads: RoBERTa `lm_head.{dense,layer_norm,bias}`, BERT `cls.predictions.{transform.dense,
//! transform.LayerNorm,bias}`, each with a decoder tied to the word embeddings (exact under the engine, as
//! GPT-2's tie); RoBERTa `classifier.{dense,out_proj}` on `<s>`, BERT `pooler.dense` (tanh) + `classifier`;
//! and, for sentence-embedding checkpoints (sentence-transformers, e.g. all-MiniLM-L6-v2, whose
//! `1_Pooling` is a mean over tokens), one `classifier` on the mean of the last hidden states over the
//! real tokens — the representation such a checkpoint was trained to produce.
//!
//! Fine-tuning methods besides full (Li et al. 2022, Sec. 5 and Table 2, compare full fine-tuning with
//! low-dimensional updates): [`EncoderModel::add_lora`] (LoRA on `query` and `value`) and
//! [`EncoderModel::train_only_top_layers`] (top-k).

use std::collections::HashSet;

use dp_core::engine::{DpLayer, Embedding, LayerNorm, Linear, Tape, WeightLayout};
use tch::{Kind, Tensor};

use crate::attention::{attend, attention_mask as build_mask, merge_heads, split_heads};
use crate::config::{Activation, BertConfig};
use crate::inputs::Inputs;
use crate::lora::Lora;
use crate::weights::{layer_norm, Init, Weights};
use crate::ModelError;

/// Which head sits on the encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadKind {
    /// Masked-LM head (prompt-based classification).
    MaskedLm,
    /// Sequence-classification head with `num_labels` outputs.
    SequenceClassification,
    /// A linear `classifier` with `num_labels` outputs on the mean of the last hidden states over the
    /// real (unpadded) tokens: sentence-transformers' mean pooling. The checkpoint's `pooler` and any
    /// first-token head are unused.
    MeanPooledClassification,
}

/// One encoder layer `encoder.layer.N`.
#[derive(Debug)]
pub struct BertLayer {
    /// Query projection.
    pub query: Linear,
    /// Key projection.
    pub key: Linear,
    /// Value projection.
    pub value: Linear,
    /// Attention output projection.
    pub attention_output_dense: Linear,
    /// LayerNorm after attention (post-LN).
    pub attention_output_layer_norm: LayerNorm,
    /// Feed-forward up-projection.
    pub intermediate_dense: Linear,
    /// Feed-forward down-projection.
    pub output_dense: Linear,
    /// LayerNorm after the feed-forward.
    pub output_layer_norm: LayerNorm,
    /// LoRA update of `query` (method `lora`; `None` otherwise).
    pub query_lora: Option<Lora>,
    /// LoRA update of `value` (method `lora`; `None` otherwise).
    pub value_lora: Option<Lora>,
}

impl BertLayer {
    /// The layer's DP-aware layers, its LoRA factors (when present) after the projection they update.
    pub fn layers(&self) -> Vec<&dyn DpLayer> {
        let mut out: Vec<&dyn DpLayer> = vec![&self.query];
        if let Some(l) = &self.query_lora {
            out.extend([&l.lora_a as &dyn DpLayer, &l.lora_b]);
        }
        out.push(&self.key);
        out.push(&self.value);
        if let Some(l) = &self.value_lora {
            out.extend([&l.lora_a as &dyn DpLayer, &l.lora_b]);
        }
        out.extend([
            &self.attention_output_dense as &dyn DpLayer,
            &self.attention_output_layer_norm,
            &self.intermediate_dense,
            &self.output_dense,
            &self.output_layer_norm,
        ]);
        out
    }
}

/// The head on the encoder.
#[derive(Debug)]
pub enum EncoderHead {
    /// transform (dense → act → LayerNorm) → decoder tied to the word embeddings, plus a bias.
    MaskedLm {
        /// `lm_head.dense` / `cls.predictions.transform.dense`.
        dense: Linear,
        /// `lm_head.layer_norm` / `cls.predictions.transform.LayerNorm`.
        layer_norm: LayerNorm,
        /// Decoder `[V, d]` sharing the word-embedding tensor, with the head's bias `[V]`.
        decoder: Linear,
    },
    /// RoBERTa: dense → tanh → out_proj on `<s>`.
    RobertaClassification {
        /// `classifier.dense`.
        dense: Linear,
        /// `classifier.out_proj`.
        out_proj: Linear,
    },
    /// BERT: pooler (dense → tanh on `[CLS]`) → classifier.
    BertClassification {
        /// `pooler.dense`.
        pooler: Linear,
        /// `classifier`.
        classifier: Linear,
    },
    /// Mean over the real tokens → dropout → classifier (BERT or RoBERTa).
    MeanPooledClassification {
        /// `classifier`.
        classifier: Linear,
    },
}

/// A BERT or RoBERTa encoder with its head.
#[derive(Debug)]
pub struct EncoderModel {
    /// The configuration.
    pub config: BertConfig,
    activation: Activation,
    /// `embeddings.word_embeddings` `[V, d]`.
    pub word_embeddings: Embedding,
    /// `embeddings.position_embeddings`.
    pub position_embeddings: Embedding,
    /// `embeddings.token_type_embeddings`.
    pub token_type_embeddings: Embedding,
    /// `embeddings.LayerNorm`.
    pub embeddings_layer_norm: LayerNorm,
    /// The layers.
    pub layers: Vec<BertLayer>,
    /// The head.
    pub head: EncoderHead,
}

fn linear(w: &mut Weights, name: &str, d_in: i64, d_out: i64, std: f64) -> Linear {
    Linear {
        name: format!("{}{name}", w.prefix()),
        weight: w.base(&format!("{name}.weight"), &[d_out, d_in], Init::Normal(std)),
        bias: Some(w.base(&format!("{name}.bias"), &[d_out], Init::Zeros)),
        layout: WeightLayout::OutIn,
    }
}

/// A head linear layer (no prefix), initialised when the checkpoint lacks it.
fn head_linear(w: &mut Weights, name: &str, d_in: i64, d_out: i64, std: f64) -> Linear {
    Linear {
        name: name.into(),
        weight: w.optional(&format!("{name}.weight"), &[d_out, d_in], Init::Normal(std)),
        bias: Some(w.optional(&format!("{name}.bias"), &[d_out], Init::Zeros)),
        layout: WeightLayout::OutIn,
    }
}

impl EncoderModel {
    /// Builds the encoder and `head` from `weights`. Head tensors absent from the checkpoint (a base-model
    /// checkpoint such as sentence-transformers' MiniLM, or an MLM checkpoint under a classification head)
    /// are initialised as Hugging Face does (decoder tied to the word embeddings; fresh dense layers,
    /// LayerNorm and bias) and returned in the second list, for the caller to warn about. Returns (model,
    /// ignored checkpoint tensors, initialised head tensors).
    pub fn build(
        config: BertConfig,
        mut w: Weights,
        head: HeadKind,
        config_path: &std::path::Path,
    ) -> Result<(Self, Vec<String>, Vec<String>), ModelError> {
        let activation = config.check(config_path)?;
        let roberta = config.is_roberta();
        let (d, v, std, eps) = (config.hidden_size, config.vocab_size, config.initializer_range, config.layer_norm_eps);
        let pad = config.pad_token_id;
        let embedding = |w: &mut Weights, name: &str, rows: i64, padding_idx: Option<i64>| Embedding {
            name: format!("{}embeddings.{name}", w.prefix()),
            weight: w.base(&format!("embeddings.{name}.weight"), &[rows, d], Init::Normal(std)),
            padding_idx,
        };
        let word_embeddings = embedding(&mut w, "word_embeddings", v, Some(pad));
        let position_embeddings =
            embedding(&mut w, "position_embeddings", config.max_position_embeddings, roberta.then_some(pad));
        let token_type_embeddings = embedding(&mut w, "token_type_embeddings", config.type_vocab_size, None);
        let embeddings_layer_norm = layer_norm(&mut w, "embeddings.LayerNorm", d, eps);
        let inner = config.intermediate_size;
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let p = format!("encoder.layer.{i}");
                BertLayer {
                    query: linear(&mut w, &format!("{p}.attention.self.query"), d, d, std),
                    key: linear(&mut w, &format!("{p}.attention.self.key"), d, d, std),
                    value: linear(&mut w, &format!("{p}.attention.self.value"), d, d, std),
                    attention_output_dense: linear(&mut w, &format!("{p}.attention.output.dense"), d, d, std),
                    attention_output_layer_norm: layer_norm(&mut w, &format!("{p}.attention.output.LayerNorm"), d, eps),
                    intermediate_dense: linear(&mut w, &format!("{p}.intermediate.dense"), d, inner, std),
                    output_dense: linear(&mut w, &format!("{p}.output.dense"), inner, d, std),
                    output_layer_norm: layer_norm(&mut w, &format!("{p}.output.LayerNorm"), d, eps),
                    query_lora: None,
                    value_lora: None,
                }
            })
            .collect();
        let head = match (head, roberta) {
            (HeadKind::MaskedLm, _) => {
                let (dense, ln, bias, decoder) = if roberta {
                    ("lm_head.dense", "lm_head.layer_norm", "lm_head.bias", "lm_head.decoder")
                } else {
                    (
                        "cls.predictions.transform.dense",
                        "cls.predictions.transform.LayerNorm",
                        "cls.predictions.bias",
                        "cls.predictions.decoder",
                    )
                };
                let dense = head_linear(&mut w, dense, d, d, std);
                let layer_norm = LayerNorm {
                    name: ln.into(),
                    weight: w.optional(&format!("{ln}.weight"), &[d], Init::Ones),
                    bias: w.optional(&format!("{ln}.bias"), &[d], Init::Zeros),
                    eps,
                };
                // The decoder's bias is one tensor under two names in Hugging Face (`…bias` and
                // `…decoder.bias`); read whichever the file holds. Its weight is the word embedding.
                let decoder_bias_name = format!("{decoder}.bias");
                let bias = if !w.contains(bias) && w.contains(&decoder_bias_name) {
                    w.optional(&decoder_bias_name, &[v], Init::Zeros)
                } else {
                    w.mark_used(&decoder_bias_name);
                    w.optional(bias, &[v], Init::Zeros)
                };
                w.mark_used(&format!("{decoder}.weight"));
                EncoderHead::MaskedLm {
                    dense,
                    layer_norm,
                    decoder: Linear {
                        name: decoder.into(),
                        weight: word_embeddings.weight.shallow_clone(),
                        bias: Some(bias),
                        layout: WeightLayout::OutIn,
                    },
                }
            }
            (HeadKind::SequenceClassification, true) => EncoderHead::RobertaClassification {
                dense: head_linear(&mut w, "classifier.dense", d, d, std),
                out_proj: head_linear(&mut w, "classifier.out_proj", d, config.num_labels(), std),
            },
            (HeadKind::MeanPooledClassification, _) => EncoderHead::MeanPooledClassification {
                classifier: head_linear(&mut w, "classifier", d, config.num_labels(), std),
            },
            (HeadKind::SequenceClassification, false) => {
                let pooler_name = format!("{}pooler.dense", w.prefix());
                EncoderHead::BertClassification {
                    pooler: head_linear(&mut w, &pooler_name, d, d, std),
                    classifier: head_linear(&mut w, "classifier", d, config.num_labels(), std),
                }
            }
        };
        // A decoder weight saved separately must equal the embedding it is tied to.
        if let EncoderHead::MaskedLm { decoder, .. } = &head {
            let embedding_name = format!("{}embeddings.word_embeddings.weight", w.prefix());
            if let (Some(saved), Some(embedding)) = (w.raw(&format!("{}.weight", decoder.name)), w.raw(&embedding_name))
            {
                // Compared as stored, before any dtype conversion.
                let same = saved.size() == embedding.size() && saved.equal(&embedding);
                if !same {
                    return Err(ModelError::Invalid(format!(
                        "{}.weight differs from the word embeddings: untied MLM decoders are not supported",
                        decoder.name
                    )));
                }
            }
        }
        let prefix = w.prefix().to_string();
        let (ignored, initialised) = w.finish(|name| encoder_ignorable(name, &prefix, head_kind_of(&head), roberta))?;
        let model = Self {
            config,
            activation,
            word_embeddings,
            position_embeddings,
            token_type_embeddings,
            embeddings_layer_norm,
            layers,
            head,
        };
        Ok((model, ignored, initialised))
    }

    /// Every layer, for the engine's ownership check.
    pub fn layers(&self) -> Vec<&dyn DpLayer> {
        let mut out: Vec<&dyn DpLayer> = vec![
            &self.word_embeddings,
            &self.position_embeddings,
            &self.token_type_embeddings,
            &self.embeddings_layer_norm,
        ];
        for l in &self.layers {
            out.extend(l.layers());
        }
        match &self.head {
            EncoderHead::MaskedLm { dense, layer_norm, decoder } => {
                out.extend([dense as &dyn DpLayer, layer_norm, decoder])
            }
            EncoderHead::RobertaClassification { dense, out_proj } => out.extend([dense as &dyn DpLayer, out_proj]),
            EncoderHead::BertClassification { pooler, classifier } => out.extend([pooler as &dyn DpLayer, classifier]),
            EncoderHead::MeanPooledClassification { classifier } => out.push(classifier),
        }
        out
    }

    /// Every parameter once, under its checkpoint name (the tied decoder weight is the word embedding).
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        crate::weights::unique_parameters(&self.layers())
    }

    /// Parameters that require gradients.
    pub fn trainable(&self) -> Vec<(String, Tensor)> {
        self.named_parameters().into_iter().filter(|(_, t)| t.requires_grad()).collect()
    }

    /// LoRA (Hu et al. 2022) of rank `r` and scale `alpha` on every layer's attention `query` and `value`
    /// projections — where Hu et al. put it for RoBERTa; the paper's LoRA baseline uses rank 4 (Li et al.
    /// 2022, Sec. 5 and Table 2). Each projection becomes W x + b + (α/r)·B(A x) with A `[r, d]`, B
    /// `[d, r]` = 0 (`<projection>.lora_A` / `.lora_B`, two DP-aware linear layers, initialised from
    /// libtorch's generator: seed it first).
    ///
    /// Every existing parameter is frozen, except a sequence-classification head's: a fresh head must
    /// train (as in Hu et al.'s RoBERTa GLUE runs), so trainable = LoRA factors + head. Under the masked-LM
    /// head (prompt-based classification) only the LoRA factors train. Call it once, before taking
    /// [`trainable`](Self::trainable) and building optimizers.
    pub fn add_lora(&mut self, r: i64, alpha: f64) -> Result<(), ModelError> {
        if self.layers.iter().any(|l| l.query_lora.is_some() || l.value_lora.is_some()) {
            return Err(ModelError::Invalid("LoRA was already added to this encoder; add it once".into()));
        }
        let d = self.config.hidden_size;
        // Built first, so that an invalid rank or alpha leaves the model untouched.
        let loras = self
            .layers
            .iter()
            .map(|l| {
                let q = Lora::new(&l.query.name, d, d, r, alpha, &l.query.weight)?;
                let v = Lora::new(&l.value.name, d, d, r, alpha, &l.value.weight)?;
                Ok((q, v))
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        let keep = match self.head {
            EncoderHead::MaskedLm { .. } => HashSet::new(),
            _ => ptrs(self.head_parameters()),
        };
        self.train_only(&keep);
        for (l, (q, v)) in self.layers.iter_mut().zip(loras) {
            l.query_lora = Some(q);
            l.value_lora = Some(v);
        }
        Ok(())
    }

    /// Freezes every parameter except those of the top `k` encoder layers and of the head (the paper's
    /// "top2" baseline, Li et al. 2022, Table 2, on the encoder). Under the masked-LM head its dense,
    /// LayerNorm and decoder bias train, but the decoder weight is the word-embedding tensor and stays
    /// frozen with the embeddings; a classification head trains whole. `k` must lie in 1..=layers, or be 0
    /// under a classification head: the head alone trains (linear probing of the frozen encoder).
    pub fn train_only_top_layers(&mut self, k: usize) -> Result<(), ModelError> {
        let n = self.layers.len();
        let lowest = if matches!(self.head, EncoderHead::MaskedLm { .. }) { 1 } else { 0 };
        if k < lowest || k > n {
            return Err(ModelError::Invalid(format!(
                "top_k = {k} must lie in {lowest}..={n} (the encoder's layers; 0, the head alone, needs a \
                 classification head)"
            )));
        }
        let mut keep = ptrs(self.layers[n - k..].iter().flat_map(|l| l.layers()).flat_map(|l| l.parameters()));
        keep.extend(ptrs(self.head_parameters()));
        self.train_only(&keep);
        Ok(())
    }

    /// Names of the classification head's parameters (`classifier.*`, BERT's `pooler.*`): the layers a
    /// sequence-classification task adds on top of the encoder. Empty under the masked-LM head, which is
    /// pretrained and shares its decoder with the embeddings.
    pub fn classification_head_names(&self) -> Vec<String> {
        match &self.head {
            EncoderHead::MaskedLm { .. } => Vec::new(),
            _ => self.head_parameters().into_iter().map(|(n, _)| n).collect(),
        }
    }

    /// The head's own parameters: a classification head's all; the masked-LM head's dense, LayerNorm and
    /// decoder bias, not the decoder weight (the word embedding).
    fn head_parameters(&self) -> Vec<(String, Tensor)> {
        match &self.head {
            EncoderHead::MaskedLm { dense, layer_norm, decoder } => {
                let mut out = dense.parameters();
                out.extend(layer_norm.parameters());
                out.extend(decoder.bias.iter().map(|b| (format!("{}.bias", decoder.name), b.shallow_clone())));
                out
            }
            EncoderHead::RobertaClassification { dense, out_proj } => {
                [dense, out_proj].iter().flat_map(|l| l.parameters()).collect()
            }
            EncoderHead::BertClassification { pooler, classifier } => {
                [pooler, classifier].iter().flat_map(|l| l.parameters()).collect()
            }
            EncoderHead::MeanPooledClassification { classifier } => classifier.parameters(),
        }
    }

    /// Sets `requires_grad` on every parameter: true iff its storage (`data_ptr`) is in `keep`. Per
    /// tensor, so the tied decoder weight follows the word embedding.
    fn train_only(&self, keep: &HashSet<usize>) {
        for (_, t) in self.named_parameters() {
            let _ = t.shallow_clone().set_requires_grad(keep.contains(&(t.data_ptr() as usize)));
        }
    }

    /// Position ids `[B, T]`: 0, 1, … (BERT), or RoBERTa's pad + cumsum(non-pad) over non-pad tokens and
    /// pad on padding.
    pub fn position_ids(&self, input_ids: &Tensor) -> Tensor {
        let size = input_ids.size();
        let (b, t) = (size[0], size[size.len() - 1]);
        if self.config.is_roberta() {
            let pad = self.config.pad_token_id;
            let mask = input_ids.ne(pad).to_kind(Kind::Int64);
            mask.cumsum(1, Kind::Int64) * &mask + pad
        } else {
            Tensor::arange(t, (Kind::Int64, input_ids.device())).unsqueeze(0).expand([b, t], true)
        }
    }

    /// The encoder's last hidden states `[B, T, d]`. `attention_mask` `[B, T]` (1 = token) masks padded
    /// keys; `token_type_ids` `[B, T]` default to zeros; `position_ids` to [`position_ids`](Self::position_ids).
    /// Dropout is active iff `train`.
    pub fn encode(&self, inputs: Inputs, train: bool, tape: &mut Tape) -> Result<Tensor, ModelError> {
        let c = &self.config;
        let (b, t) = inputs.check(c.vocab_size, 0, c.max_position_embeddings, Some(c.type_vocab_size))?;
        let (input_ids, attention_mask) = (inputs.input_ids, inputs.attention_mask);
        let positions = match inputs.position_ids {
            Some(p) => p.shallow_clone(),
            None => self.position_ids(input_ids),
        };
        let max_pos = i64::try_from(positions.max())?;
        if max_pos >= c.max_position_embeddings {
            return Err(ModelError::Invalid(format!(
                "a sequence of {t} tokens needs position {max_pos}, beyond max_position_embeddings = {}",
                c.max_position_embeddings
            )));
        }
        let types = match inputs.token_type_ids {
            Some(tt) => tt.shallow_clone(),
            None => Tensor::zeros([b, t], (Kind::Int64, input_ids.device())),
        };
        let x = self.word_embeddings.forward(input_ids, tape)
            + self.position_embeddings.forward(&positions, tape)
            + self.token_type_embeddings.forward(&types, tape);
        let p_hidden = self.config.hidden_dropout_prob;
        let mut x = self.embeddings_layer_norm.forward(&x, tape).dropout(p_hidden, train);
        let mask = attention_mask
            .filter(|m| !bool::try_from(Tensor::ne(m, 0).all()).unwrap_or(false))
            .and_then(|m| build_mask(Some(m), t, t, None, input_ids.device()));
        let heads = self.config.num_attention_heads;
        let scale = 1.0 / ((self.config.hidden_size / heads) as f64).sqrt();
        let p_attn = if train { self.config.attention_probs_dropout_prob } else { 0.0 };
        for l in &self.layers {
            let mut q = l.query.forward(&x, tape); // [B, T, d]
            if let Some(lora) = &l.query_lora {
                // Not `+=`: q is query's recorded output, which the engine differentiates at.
                q = &q + lora.forward(&x, tape);
            }
            let k = split_heads(&l.key.forward(&x, tape), heads);
            let mut v = l.value.forward(&x, tape); // [B, T, d]
            if let Some(lora) = &l.value_lora {
                v = &v + lora.forward(&x, tape);
            }
            let (q, v) = (split_heads(&q, heads), split_heads(&v, heads));
            let ctx = attend(&q, &k, &v, mask.as_ref(), false, scale, p_attn);
            let attn = l.attention_output_dense.forward(&merge_heads(&ctx), tape).dropout(p_hidden, train);
            x = l.attention_output_layer_norm.forward(&(attn + &x), tape);
            let inner = self.activation.apply(&l.intermediate_dense.forward(&x, tape));
            let out = l.output_dense.forward(&inner, tape).dropout(p_hidden, train);
            x = l.output_layer_norm.forward(&(out + &x), tape);
        }
        Ok(x)
    }

    /// Masked-LM logits `[B, T', V]` of hidden states `[B, T', d]` (pass only the `<mask>` positions,
    /// `[B, 1, d]`, for prompt-based classification).
    pub fn mlm_logits(&self, hidden: &Tensor, tape: &mut Tape) -> Result<Tensor, ModelError> {
        match &self.head {
            EncoderHead::MaskedLm { dense, layer_norm, decoder } => {
                // RoBERTa's head applies the exact GELU whatever `hidden_act` says (transformers
                // `RobertaLMHead`); BERT's transform uses `hidden_act`.
                let act = if self.config.is_roberta() { Activation::Gelu } else { self.activation };
                let h = act.apply(&dense.forward(hidden, tape));
                Ok(decoder.forward(&layer_norm.forward(&h, tape), tape))
            }
            _ => Err(ModelError::Invalid("this model has a classification head, not a masked-LM head".into())),
        }
    }

    /// Logits at one position per example, restricted to `label_word_ids` `[K]`: `[B, K]` (LM-BFF
    /// prompt-based classification). `positions` `[B]` are the `<mask>` indices.
    pub fn prompt_logits(
        &self,
        hidden: &Tensor,
        positions: &Tensor,
        label_word_ids: &Tensor,
        tape: &mut Tape,
    ) -> Result<Tensor, ModelError> {
        let d = hidden.size()[2];
        let b = hidden.size()[0];
        let at = hidden.gather(1, &positions.reshape([b, 1, 1]).expand([b, 1, d], true), false); // [B, 1, d]
        let logits = self.mlm_logits(&at, tape)?.squeeze_dim(1); // [B, V]
        Ok(logits.index_select(1, label_word_ids))
    }

    /// Classification logits `[B, num_labels]` from hidden states `[B, T, d]`: the first token, or the mean
    /// over the real tokens (`attention_mask` `[B, T]`, 1 = real; `None`: every position is real) under
    /// [`HeadKind::MeanPooledClassification`]. Each example's logits depend on its own tokens only.
    pub fn classification_logits(
        &self,
        hidden: &Tensor,
        attention_mask: Option<&Tensor>,
        train: bool,
        tape: &mut Tape,
    ) -> Result<Tensor, ModelError> {
        let first = hidden.narrow(1, 0, 1); // [B, 1, d]
        let p = self.config.classifier_dropout.unwrap_or(self.config.hidden_dropout_prob);
        let out = match &self.head {
            EncoderHead::MeanPooledClassification { classifier } => {
                let pooled = mean_over_tokens(hidden, attention_mask)?; // [B, 1, d]
                classifier.forward(&pooled.dropout(p, train), tape)
            }
            EncoderHead::RobertaClassification { dense, out_proj } => {
                let h = dense.forward(&first.dropout(p, train), tape).tanh().dropout(p, train);
                out_proj.forward(&h, tape)
            }
            EncoderHead::BertClassification { pooler, classifier } => {
                let pooled = pooler.forward(&first, tape).tanh().dropout(p, train);
                classifier.forward(&pooled, tape)
            }
            EncoderHead::MaskedLm { .. } => {
                return Err(ModelError::Invalid("this model has a masked-LM head, not a classification head".into()))
            }
        };
        Ok(out.squeeze_dim(1))
    }
}

/// The storages of `params`, to compare tensors by identity (a tied weight is one storage).
fn ptrs(params: impl IntoIterator<Item = (String, Tensor)>) -> HashSet<usize> {
    params.into_iter().map(|(_, t)| t.data_ptr() as usize).collect()
}

fn head_kind_of(head: &EncoderHead) -> HeadKind {
    match head {
        EncoderHead::MaskedLm { .. } => HeadKind::MaskedLm,
        EncoderHead::MeanPooledClassification { .. } => HeadKind::MeanPooledClassification,
        _ => HeadKind::SequenceClassification,
    }
}

/// Mean of `hidden` `[B, T, d]` over the positions where `attention_mask` `[B, T]` is 1: `[B, 1, d]`
/// (sentence-transformers' `pooling_mode_mean_tokens`). Refuses a row with no real token.
fn mean_over_tokens(hidden: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor, ModelError> {
    let Some(mask) = attention_mask else { return Ok(hidden.mean_dim(1, true, hidden.kind())) };
    let (b, t) = (hidden.size()[0], hidden.size()[1]);
    if mask.size() != [b, t] {
        return Err(ModelError::Invalid(format!(
            "attention mask {:?} does not match hidden states [{b}, {t}, _]",
            mask.size()
        )));
    }
    let m = mask.to_kind(hidden.kind()).unsqueeze(-1); // [B, T, 1]
    let counts = m.sum_dim_intlist(1, true, hidden.kind()); // [B, 1, 1]
    if counts.min().double_value(&[]) < 1.0 {
        return Err(ModelError::Invalid("mean pooling: an example has no real token".into()));
    }
    Ok((hidden * &m).sum_dim_intlist(1, true, hidden.kind()) / counts)
}

/// Unused checkpoint tensors that carry nothing this model needs: the `position_ids` / `token_type_ids`
/// buffers, BERT's next-sentence head, and the tensors of the other head (an MLM checkpoint fine-tuned
/// with a classification head, or the reverse; a base model's pooler under an MLM head).
fn encoder_ignorable(name: &str, prefix: &str, head: HeadKind, roberta: bool) -> bool {
    let base = name.strip_prefix(prefix).unwrap_or(name);
    if base.starts_with("embeddings.position_ids") || base.starts_with("embeddings.token_type_ids") {
        return true;
    }
    if name.starts_with("cls.seq_relationship.") {
        return true;
    }
    // RoBERTa's classification head reads <s> directly: a checkpoint's pooler (sentence-embedding models,
    // some fine-tuned classifiers) is unused under either head, as in Hugging Face.
    if roberta && base.starts_with("pooler.") {
        return true;
    }
    let mlm = name.starts_with("lm_head.") || name.starts_with("cls.predictions.");
    match head {
        HeadKind::MaskedLm => name.starts_with("classifier.") || base.starts_with("pooler."),
        HeadKind::SequenceClassification => mlm,
        // The mean-pooled head reads no first-token transform: the pooler and RoBERTa's classifier.dense /
        // out_proj are another head's.
        HeadKind::MeanPooledClassification => {
            mlm || base.starts_with("pooler.")
                || name.starts_with("classifier.dense.")
                || name.starts_with("classifier.out_proj.")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_pooling_averages_the_real_tokens_only() {
        let hidden = Tensor::from_slice(&[1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0])
            .reshape([2, 3, 2]);
        let mask = Tensor::from_slice(&[1i64, 1, 0, 1, 0, 0]).reshape([2, 3]);
        let got: Vec<f64> = Vec::try_from(mean_over_tokens(&hidden, Some(&mask)).unwrap().flatten(0, -1)).unwrap();
        assert_eq!(got, [2.0, 3.0, 10.0, 20.0]);
        let all: Vec<f64> = Vec::try_from(mean_over_tokens(&hidden, None).unwrap().flatten(0, -1)).unwrap();
        assert_eq!(all, [3.0, 4.0, 30.0, 40.0]);
        let empty = Tensor::from_slice(&[1i64, 1, 0, 0, 0, 0]).reshape([2, 3]);
        assert!(mean_over_tokens(&hidden, Some(&empty)).is_err(), "a row without real tokens is refused");
        assert!(mean_over_tokens(&hidden, Some(&mask.narrow(1, 0, 2))).is_err(), "shape mismatch is refused");
    }
}
