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
//! GPT-2's tie); RoBERTa `classifier.{dense,out_proj}` on `<s>`, BERT `pooler.dense` (tanh) + `classifier`.

use dp_core::engine::{DpLayer, Embedding, LayerNorm, Linear, Tape, WeightLayout};
use tch::{Kind, Tensor};

use crate::attention::{attend, attention_mask as build_mask, merge_heads, split_heads};
use crate::config::{Activation, BertConfig};
use crate::inputs::Inputs;
use crate::weights::{layer_norm, Init, Weights};
use crate::ModelError;

/// Which head sits on the encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadKind {
    /// Masked-LM head (prompt-based classification).
    MaskedLm,
    /// Sequence-classification head with `num_labels` outputs.
    SequenceClassification,
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
    pub fn dp_layers(&self) -> Vec<&dyn DpLayer> {
        let mut out: Vec<&dyn DpLayer> = vec![
            &self.word_embeddings,
            &self.position_embeddings,
            &self.token_type_embeddings,
            &self.embeddings_layer_norm,
        ];
        for l in &self.layers {
            out.extend([
                &l.query as &dyn DpLayer,
                &l.key,
                &l.value,
                &l.attention_output_dense,
                &l.attention_output_layer_norm,
                &l.intermediate_dense,
                &l.output_dense,
                &l.output_layer_norm,
            ]);
        }
        match &self.head {
            EncoderHead::MaskedLm { dense, layer_norm, decoder } => {
                out.extend([dense as &dyn DpLayer, layer_norm, decoder])
            }
            EncoderHead::RobertaClassification { dense, out_proj } => out.extend([dense as &dyn DpLayer, out_proj]),
            EncoderHead::BertClassification { pooler, classifier } => out.extend([pooler as &dyn DpLayer, classifier]),
        }
        out
    }

    /// Every parameter once, under its checkpoint name (the tied decoder weight is the word embedding).
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        crate::weights::unique_parameters(&self.dp_layers())
    }

    /// Parameters that require gradients.
    pub fn trainable(&self) -> Vec<(String, Tensor)> {
        self.named_parameters().into_iter().filter(|(_, t)| t.requires_grad()).collect()
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
            let q = split_heads(&l.query.forward(&x, tape), heads);
            let k = split_heads(&l.key.forward(&x, tape), heads);
            let v = split_heads(&l.value.forward(&x, tape), heads);
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

    /// Classification logits `[B, num_labels]` from hidden states `[B, T, d]` (first token).
    pub fn classification_logits(&self, hidden: &Tensor, train: bool, tape: &mut Tape) -> Result<Tensor, ModelError> {
        let first = hidden.narrow(1, 0, 1); // [B, 1, d]
        let p = self.config.classifier_dropout.unwrap_or(self.config.hidden_dropout_prob);
        let out = match &self.head {
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

fn head_kind_of(head: &EncoderHead) -> HeadKind {
    match head {
        EncoderHead::MaskedLm { .. } => HeadKind::MaskedLm,
        _ => HeadKind::SequenceClassification,
    }
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
    match head {
        HeadKind::MaskedLm => name.starts_with("classifier.") || base.starts_with("pooler."),
        HeadKind::SequenceClassification => name.starts_with("lm_head.") || name.starts_with("cls.predictions."),
    }
}
