//! What is trained: a model with its per-example loss over a featurised training set, and how it is
//! evaluated. [`CausalLm`] covers GPT-2 on E2E/DART (loss on the target only) and plain-text language
//! modelling (loss on every token).

use anyhow::Result;
use dp_core::engine::{DpLayer, Tape};
use models::clip_check::causal_batch;
use models::{causal_lm_losses, CausalModel, Inputs, TextTokenizer};
use tch::{Kind, Tensor};

use super::fingerprint::Fingerprint;
use crate::tasks::causal::CausalExample;

/// A model, its data and its per-example loss.
pub trait Objective {
    /// Training examples.
    fn train_len(&self) -> usize;
    /// SHA-256 of the featurised training set ([`super::fingerprint`]).
    fn fingerprint(&self) -> String;
    /// Per-example losses `[B]` of the training examples `indices` (dropout iff `train`), recording on
    /// `tape`.
    fn losses(&self, indices: &[u64], train: bool, tape: &mut Tape) -> Result<Tensor>;
    /// Trainable parameters (checkpoint names).
    fn trainable(&self) -> Vec<(String, Tensor)>;
    /// Every parameter (for checkpoints).
    fn parameters(&self) -> Vec<(String, Tensor)>;
    /// Every DP-aware layer (the ownership check).
    fn layers(&self) -> Vec<&dyn DpLayer>;
    /// Mean per-example loss over the evaluation examples, in batches of `batch`.
    fn eval_loss(&self, batch: usize) -> Result<Option<f64>>;
    /// Names of the task head's parameters that `optimization.head_learning_rate` applies to (a
    /// classification head on an encoder); none by default.
    fn head_names(&self) -> Vec<String> {
        Vec::new()
    }
    /// Before each training step (RGP draws new gradient carriers); nothing by default.
    fn prepare_step(&self) {}
    /// The logical batch in the order its physical micro-batches take it: as sampled by default. Causal LMs
    /// sort it by length, so that a micro-batch pads to little more than its own examples' length (on E2E
    /// about a fifth of the tokens of random micro-batches are padding). The examples of the step, all
    /// that clipping and the accountant see, are the same; only their grouping into micro-batches changes.
    fn order_for_padding(&self, batch: Vec<u64>) -> Vec<u64> {
        batch
    }
    /// The tensors the optimizer updates: [`trainable`](Self::trainable) unless a method reparametrises
    /// the gradient (RGP: the weight matrices behind the carriers).
    fn updated(&self) -> Vec<(String, Tensor)> {
        self.trainable()
    }
    /// Gradients of [`updated`](Self::updated) from the (released) gradients of
    /// [`trainable`](Self::trainable): the identity unless a method reparametrises (RGP's reconstruction).
    fn reconstruct(&self, grads: Vec<(String, Tensor)>) -> Result<Vec<(String, Tensor)>> {
        Ok(grads)
    }
}

/// A causal LM on featurised examples (labels −100 where no loss is taken).
pub struct CausalLm {
    /// The model (GPT-2 or the Llama family).
    pub model: Box<dyn CausalModel>,
    /// Its tokenizer.
    pub tokenizer: TextTokenizer,
    /// Training examples.
    pub train: Vec<CausalExample>,
    /// Evaluation examples (loss).
    pub eval: Vec<CausalExample>,
    /// The padding id of batches (padding positions are masked and carry label −100).
    pub pad: i64,
}

impl CausalLm {
    fn batch_losses(&self, examples: &[&CausalExample], train: bool, tape: &mut Tape) -> Result<Tensor> {
        let ids: Vec<Vec<i64>> = examples.iter().map(|e| e.input_ids.clone()).collect();
        let device = self.model.device();
        let (input_ids, mask, _) = causal_batch(&ids, self.pad, device);
        let t = input_ids.size()[1] as usize;
        let labels: Vec<i64> = examples
            .iter()
            .flat_map(|e| e.labels.iter().copied().chain(std::iter::repeat_n(-100, t - e.labels.len())))
            .collect();
        let labels = Tensor::from_slice(&labels).reshape([examples.len() as i64, t as i64]).to(device);
        let logits = self.model.forward(Inputs::ids(&input_ids).with_mask(&mask), None, train, tape)?;
        Ok(causal_lm_losses(&logits, &labels)?)
    }
}

impl Objective for CausalLm {
    fn train_len(&self) -> usize {
        self.train.len()
    }

    fn fingerprint(&self) -> String {
        let mut f = Fingerprint::new("causal-lm");
        for e in &self.train {
            f.ids(&e.input_ids).ids(&e.labels);
        }
        f.finish()
    }

    fn losses(&self, indices: &[u64], train: bool, tape: &mut Tape) -> Result<Tensor> {
        let examples: Vec<&CausalExample> = indices.iter().map(|&i| &self.train[i as usize]).collect();
        self.batch_losses(&examples, train, tape)
    }

    fn trainable(&self) -> Vec<(String, Tensor)> {
        self.model.trainable()
    }

    fn parameters(&self) -> Vec<(String, Tensor)> {
        self.model.named_parameters()
    }

    fn layers(&self) -> Vec<&dyn DpLayer> {
        self.model.layers()
    }

    fn prepare_step(&self) {
        self.model.prepare_step();
    }

    fn order_for_padding(&self, mut batch: Vec<u64>) -> Vec<u64> {
        // Stable: equal lengths keep the sampler's order, so a resumed run groups them the same way.
        batch.sort_by_key(|&i| self.train[i as usize].input_ids.len());
        batch
    }

    fn updated(&self) -> Vec<(String, Tensor)> {
        self.model.updated_parameters()
    }

    fn reconstruct(&self, grads: Vec<(String, Tensor)>) -> Result<Vec<(String, Tensor)>> {
        Ok(self.model.reconstruct_gradients(grads)?)
    }

    fn eval_loss(&self, batch: usize) -> Result<Option<f64>> {
        if self.eval.is_empty() {
            return Ok(None);
        }
        let _guard = tch::no_grad_guard();
        let mut total = 0.0;
        for chunk in self.eval.chunks(batch.max(1)) {
            let refs: Vec<&CausalExample> = chunk.iter().collect();
            total += self.batch_losses(&refs, false, &mut Tape::off())?.sum(Kind::Double).double_value(&[]);
        }
        Ok(Some(total / self.eval.len() as f64))
    }
}

/// Padded ids and attention mask `[B, T]` of rows.
fn pad_rows(rows: &[&[i64]], pad: i64, device: tch::Device) -> (Tensor, Tensor) {
    let t = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let (mut ids, mut mask) = (Vec::with_capacity(rows.len() * t), Vec::with_capacity(rows.len() * t));
    for r in rows {
        ids.extend(r.iter().copied().chain(std::iter::repeat_n(pad, t - r.len())));
        mask.extend(std::iter::repeat_n(1i64, r.len()).chain(std::iter::repeat_n(0, t - r.len())));
    }
    let shape = [rows.len() as i64, t as i64];
    (Tensor::from_slice(&ids).reshape(shape).to(device), Tensor::from_slice(&mask).reshape(shape).to(device))
}

/// Accuracy and, for binary tasks, F1 of the positive class (label 1; QQP's "duplicate"); and
/// `majority_accuracy`, the accuracy of always answering the evaluation split's most frequent label (the
/// level a model has to beat to have learnt anything; a property of the public evaluation labels only).
pub fn classification_scores(predicted: &[i64], gold: &[i64], binary_f1: bool) -> serde_json::Value {
    let n = gold.len().max(1) as f64;
    let correct = predicted.iter().zip(gold).filter(|(p, g)| p == g).count() as f64;
    let mut counts = std::collections::BTreeMap::new();
    for g in gold {
        *counts.entry(*g).or_insert(0usize) += 1;
    }
    let majority = counts.values().copied().max().unwrap_or(0) as f64;
    let mut out =
        serde_json::json!({"accuracy": correct / n, "majority_accuracy": majority / n, "examples": gold.len()});
    if binary_f1 {
        let tp = predicted.iter().zip(gold).filter(|(p, g)| **p == 1 && **g == 1).count() as f64;
        let fp = predicted.iter().zip(gold).filter(|(p, g)| **p == 1 && **g != 1).count() as f64;
        let fneg = predicted.iter().zip(gold).filter(|(p, g)| **p != 1 && **g == 1).count() as f64;
        out["f1"] = serde_json::json!(if tp == 0.0 { 0.0 } else { 2.0 * tp / (2.0 * tp + fp + fneg) });
    }
    out
}

/// Accuracy (and F1) of `logits` (computed per chunk of `batch` examples) against the examples' labels.
fn evaluate_labels<E>(
    examples: &[E],
    batch: usize,
    label: impl Fn(&E) -> i64,
    logits: impl Fn(&[&E]) -> Result<Tensor>,
    binary_f1: bool,
) -> Result<serde_json::Value> {
    let _guard = tch::no_grad_guard();
    let (mut predicted, mut gold) = (Vec::new(), Vec::new());
    for chunk in examples.chunks(batch.max(1)) {
        let refs: Vec<&E> = chunk.iter().collect();
        let p: Vec<i64> = Vec::try_from(logits(&refs)?.argmax(-1, false))?;
        predicted.extend(p);
        gold.extend(chunk.iter().map(&label));
    }
    Ok(classification_scores(&predicted, &gold, binary_f1))
}

/// The paper's prompt-based classification (LM-BFF templates): the MLM head's logits at `<mask>`,
/// restricted to the label words, under cross-entropy (Li et al. 2022, Sec. 5.1).
pub struct PromptMlm {
    /// The encoder with its MLM head.
    pub model: models::EncoderModel,
    /// Training examples.
    pub train: Vec<crate::tasks::prompt::PromptExample>,
    /// Evaluation examples.
    pub eval: Vec<crate::tasks::prompt::PromptExample>,
    /// Token id of each label's word `[K]`.
    pub label_word_ids: Vec<i64>,
    /// Whether to report F1 (QQP).
    pub binary_f1: bool,
}

impl PromptMlm {
    fn logits(
        &self,
        examples: &[&crate::tasks::prompt::PromptExample],
        train: bool,
        tape: &mut Tape,
    ) -> Result<Tensor> {
        let device = self.model.word_embeddings.weight.device();
        let rows: Vec<&[i64]> = examples.iter().map(|e| e.input_ids.as_slice()).collect();
        let (ids, mask) = pad_rows(&rows, self.model.config.pad_token_id, device);
        let hidden = self.model.encode(Inputs::ids(&ids).with_mask(&mask), train, tape)?;
        let positions: Vec<i64> = examples.iter().map(|e| e.mask_position as i64).collect();
        let words = Tensor::from_slice(&self.label_word_ids).to(device);
        Ok(self.model.prompt_logits(&hidden, &Tensor::from_slice(&positions).to(device), &words, tape)?)
    }

    fn labels(examples: &[&crate::tasks::prompt::PromptExample], device: tch::Device) -> Tensor {
        Tensor::from_slice(&examples.iter().map(|e| e.label as i64).collect::<Vec<_>>()).to(device)
    }

    /// Accuracy (and F1) on the evaluation examples.
    pub fn evaluate(&self, batch: usize) -> Result<serde_json::Value> {
        let logits = |refs: &[&_]| self.logits(refs, false, &mut Tape::off());
        evaluate_labels(&self.eval, batch, |e| e.label as i64, logits, self.binary_f1)
    }
}

impl Objective for PromptMlm {
    fn train_len(&self) -> usize {
        self.train.len()
    }

    fn fingerprint(&self) -> String {
        let mut f = Fingerprint::new("prompt-mlm");
        f.ids(&self.label_word_ids);
        for e in &self.train {
            f.ids(&e.input_ids).number(e.mask_position as u64).number(e.label as u64);
        }
        f.finish()
    }

    fn losses(&self, indices: &[u64], train: bool, tape: &mut Tape) -> Result<Tensor> {
        let examples: Vec<_> = indices.iter().map(|&i| &self.train[i as usize]).collect();
        let logits = self.logits(&examples, train, tape)?;
        let labels = Self::labels(&examples, logits.device());
        Ok(logits.to_kind(Kind::Float).cross_entropy_loss::<Tensor>(&labels, None, tch::Reduction::None, -100, 0.0))
    }

    fn trainable(&self) -> Vec<(String, Tensor)> {
        self.model.trainable()
    }

    fn parameters(&self) -> Vec<(String, Tensor)> {
        self.model.named_parameters()
    }

    fn layers(&self) -> Vec<&dyn DpLayer> {
        self.model.layers()
    }

    fn order_for_padding(&self, mut batch: Vec<u64>) -> Vec<u64> {
        batch.sort_by_key(|&i| self.train[i as usize].input_ids.len());
        batch
    }

    fn eval_loss(&self, batch: usize) -> Result<Option<f64>> {
        if self.eval.is_empty() {
            return Ok(None);
        }
        let _guard = tch::no_grad_guard();
        let mut total = 0.0;
        for chunk in self.eval.chunks(batch.max(1)) {
            let refs: Vec<_> = chunk.iter().collect();
            let logits = self.logits(&refs, false, &mut Tape::off())?.to_kind(Kind::Double);
            let labels = Self::labels(&refs, logits.device());
            total +=
                logits.cross_entropy_loss::<Tensor>(&labels, None, tch::Reduction::Sum, -100, 0.0).double_value(&[]);
        }
        Ok(Some(total / self.eval.len() as f64))
    }
}

/// The baseline: a sequence-classification head on the first token.
pub struct PairClassifier {
    /// The encoder with its classification head.
    pub model: models::EncoderModel,
    /// Training examples.
    pub train: Vec<crate::tasks::prompt::PairExample>,
    /// Evaluation examples.
    pub eval: Vec<crate::tasks::prompt::PairExample>,
    /// Whether to report F1 (QQP).
    pub binary_f1: bool,
}

impl PairClassifier {
    fn logits(&self, examples: &[&crate::tasks::prompt::PairExample], train: bool, tape: &mut Tape) -> Result<Tensor> {
        let device = self.model.word_embeddings.weight.device();
        let rows: Vec<&[i64]> = examples.iter().map(|e| e.input_ids.as_slice()).collect();
        let (ids, mask) = pad_rows(&rows, self.model.config.pad_token_id, device);
        let types: Vec<&[i64]> = examples.iter().map(|e| e.token_type_ids.as_slice()).collect();
        let (types, _) = pad_rows(&types, 0, device);
        let hidden = self.model.encode(Inputs::ids(&ids).with_mask(&mask).with_token_types(&types), train, tape)?;
        Ok(self.model.classification_logits(&hidden, Some(&mask), train, tape)?)
    }

    /// Accuracy (and F1) on the evaluation examples.
    pub fn evaluate(&self, batch: usize) -> Result<serde_json::Value> {
        let logits = |refs: &[&_]| self.logits(refs, false, &mut Tape::off());
        evaluate_labels(&self.eval, batch, |e| e.label as i64, logits, self.binary_f1)
    }
}

impl Objective for PairClassifier {
    fn train_len(&self) -> usize {
        self.train.len()
    }

    fn head_names(&self) -> Vec<String> {
        self.model.classification_head_names()
    }

    fn fingerprint(&self) -> String {
        let mut f = Fingerprint::new("pair-classifier");
        for e in &self.train {
            f.ids(&e.input_ids).ids(&e.token_type_ids).number(e.label as u64);
        }
        f.finish()
    }

    fn losses(&self, indices: &[u64], train: bool, tape: &mut Tape) -> Result<Tensor> {
        let examples: Vec<_> = indices.iter().map(|&i| &self.train[i as usize]).collect();
        let logits = self.logits(&examples, train, tape)?;
        let labels =
            Tensor::from_slice(&examples.iter().map(|e| e.label as i64).collect::<Vec<_>>()).to(logits.device());
        Ok(logits.to_kind(Kind::Float).cross_entropy_loss::<Tensor>(&labels, None, tch::Reduction::None, -100, 0.0))
    }

    fn trainable(&self) -> Vec<(String, Tensor)> {
        self.model.trainable()
    }

    fn parameters(&self) -> Vec<(String, Tensor)> {
        self.model.named_parameters()
    }

    fn layers(&self) -> Vec<&dyn DpLayer> {
        self.model.layers()
    }

    fn order_for_padding(&self, mut batch: Vec<u64>) -> Vec<u64> {
        batch.sort_by_key(|&i| self.train[i as usize].input_ids.len());
        batch
    }

    fn eval_loss(&self, _batch: usize) -> Result<Option<f64>> {
        Ok(None)
    }
}
