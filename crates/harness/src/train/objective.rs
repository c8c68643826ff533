//! What is trained: a model with its per-example loss over a featurised training set, and how it is
//! evaluated. [`CausalLm`] covers GPT-2 on E2E/DART (loss on the target only) and plain-text language
//! modelling (loss on every token).

use anyhow::Result;
use dp_core::engine::{DpLayer, Tape};
use models::clip_check::causal_batch;
use models::{causal_lm_losses, Gpt2LmHeadModel, Inputs, TextTokenizer};
use tch::{Kind, Tensor};

use crate::tasks::causal::CausalExample;

/// A model, its data and its per-example loss.
pub trait Objective {
    /// Training examples.
    fn train_len(&self) -> usize;
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
}

/// A causal LM on featurised examples (labels −100 where no loss is taken).
pub struct CausalLm {
    /// The model.
    pub model: Gpt2LmHeadModel,
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
        let device = self.model.wte.weight.device();
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
