//! One benchmark workload and its timed training steps.
//!
//! A step is what `dpft train` does for one logical batch held in one physical batch (Li et al. 2022,
//! Alg. 1): forward pass on random inputs with dropout on, per-example losses, then
//! - `nonprivate`: one backward pass to the parameters, the mean gradient;
//! - `bk` / `ghost` / `naive`: per-example clipping by the engine's mode ([`ClipMode`]), the clipped sum
//!   accumulated as the training loop does ([`dp_core::engine::ClippedSum`]), Gaussian noise N(0, σ²C²) added and the sum
//!   divided by the batch size ([`release`], which also appends the step to a privacy ledger);
//!
//! and an Adam update of every trainable tensor. GPT-2 takes the causal-LM loss on every token
//! (`labels = input_ids`); RoBERTa/BERT a two-label classification head on the first token with random
//! labels (the paper's classification baseline).

use std::time::Instant;

use anyhow::{Context, Result};
use dp_core::accounting::History;
use dp_core::engine::keys::derived_key;
use dp_core::engine::{
    release, BatchSampler, ClipMode, ClipStyle, Clipper, DpOptimizer, GaussianNoise, LrSchedule, NoiseSeed, NormMethod,
    OptimizerKind, Tape,
};
use models::{causal_lm_losses, AnyModel, Inputs};

use crate::train::gradients::{clipped_sum, mean_gradient};
use tch::{Device, Kind, Tensor};

/// How a step computes its gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchMode {
    /// No clipping, no noise: the mean gradient from one backward pass.
    Nonprivate,
    /// Book-keeping: one backward pass to the layer outputs; norms and clipped sum from them.
    Bk,
    /// The paper's ghost clipping: norms from a first backward pass, a second on the reweighted loss.
    Ghost,
    /// Per-example gradients instantiated for every parameter.
    Naive,
}

impl BenchMode {
    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Nonprivate => "nonprivate",
            Self::Bk => "bk",
            Self::Ghost => "ghost",
            Self::Naive => "naive",
        }
    }

    fn clip_mode(self) -> Option<ClipMode> {
        match self {
            Self::Nonprivate => None,
            Self::Bk => Some(ClipMode::Bk),
            Self::Ghost => Some(ClipMode::Ghost),
            Self::Naive => Some(ClipMode::Naive),
        }
    }
}

/// A model with a fixed batch of random inputs.
pub struct Workload {
    model: AnyModel,
    input_ids: Tensor,
    labels: Tensor,
}

impl Workload {
    /// Random inputs `[batch, seq_len]` for `model` (token ids drawn uniformly from the vocabulary, never
    /// RoBERTa's padding id), seeded by `seed`.
    pub fn new(model: AnyModel, batch: i64, seq_len: i64, seed: i64) -> Result<Self> {
        tch::manual_seed(seed);
        let (input_ids, labels) = match &model {
            AnyModel::Gpt2(_) | AnyModel::Llama(_) => {
                let m = model.as_causal().expect("a causal model");
                let ids = Tensor::randint(m.vocab_size(), [batch, seq_len], (Kind::Int64, m.device()));
                (ids.shallow_clone(), ids)
            }
            AnyModel::Encoder(m) => {
                let device = m.word_embeddings.weight.device();
                let c = &m.config;
                // Ids above the special tokens: a padding id inside the text would shift RoBERTa's positions.
                let low = c.pad_token_id + 1;
                let ids = Tensor::randint_low(low, c.vocab_size, [batch, seq_len], (Kind::Int64, device));
                let labels = Tensor::randint(c.num_labels(), [batch], (Kind::Int64, device));
                (ids, labels)
            }
        };
        Ok(Self { model, input_ids, labels })
    }

    /// The device the model lives on.
    pub fn device(&self) -> Device {
        self.input_ids.device()
    }

    /// Trainable tensors.
    pub fn trainable(&self) -> Vec<(String, Tensor)> {
        match (&self.model, self.model.as_causal()) {
            (AnyModel::Encoder(m), _) => m.trainable(),
            (_, Some(m)) => m.trainable(),
            (_, None) => Vec::new(),
        }
    }

    /// Per-example losses `[B]` with dropout on, recording on `tape`.
    pub fn losses(&self, tape: &mut Tape) -> Result<Tensor> {
        Ok(match &self.model {
            AnyModel::Gpt2(_) | AnyModel::Llama(_) => {
                let m = self.model.as_causal().expect("a causal model");
                let logits = m.forward(Inputs::ids(&self.input_ids), None, true, tape)?;
                causal_lm_losses(&logits, &self.labels)?
            }
            AnyModel::Encoder(m) => {
                let hidden = m.encode(Inputs::ids(&self.input_ids), true, tape)?;
                let logits = m.classification_logits(&hidden, None, true, tape)?;
                logits.to_kind(Kind::Float).cross_entropy_loss::<Tensor>(
                    &self.labels,
                    None,
                    tch::Reduction::None,
                    -100,
                    0.0,
                )
            }
        })
    }
}

/// Clipping and noise settings of the private modes.
#[derive(Clone, Copy, Debug)]
pub struct DpSettings {
    /// C.
    pub max_grad_norm: f64,
    /// σ.
    pub noise_multiplier: f64,
}

/// A workload with its optimizer and (private modes) clipper, noise and ledger.
pub struct Stepper {
    workload: Workload,
    trainable: Vec<(String, Tensor)>,
    batch: u64,
    optimizer: DpOptimizer,
    clipper: Option<Clipper>,
    dp: DpSettings,
    noise: GaussianNoise,
    sampler: BatchSampler,
    history: History,
    step: u64,
}

impl Stepper {
    /// Adam at learning rate 1e-4 (the value does not change the cost) over every trainable tensor.
    pub fn new(workload: Workload, mode: BenchMode, dp: DpSettings, seed: u64) -> Result<Self> {
        let trainable = workload.trainable();
        let batch = workload.input_ids.size()[0] as u64;
        let clipper = match mode.clip_mode() {
            Some(mode) => Some(
                Clipper {
                    max_grad_norm: dp.max_grad_norm,
                    stability: 1e-6,
                    mode,
                    norm_method: NormMethod::Auto,
                    style: ClipStyle::Flat,
                }
                .checked()?,
            ),
            None => None,
        };
        Ok(Self {
            workload,
            trainable,
            batch,
            optimizer: DpOptimizer::new(OptimizerKind::Adam, 1e-4, LrSchedule::Constant, 0)?,
            clipper,
            dp,
            noise: GaussianNoise::new(NoiseSeed::Fixed(derived_key("dpft/bench-noise", seed, "bench"))),
            // The ledger needs a sampling description; a dataset of 1000 batches stands in for one.
            sampler: BatchSampler::fixed_size(batch * 1000, batch, derived_key("dpft/bench-sampler", seed, "bench"))?,
            history: History::new(),
            step: 0,
        })
    }

    /// Trainable parameters (count).
    pub fn parameters(&self) -> i64 {
        self.trainable.iter().map(|(_, t)| t.numel() as i64).sum()
    }

    /// One whole training step, as `dpft train` takes it with one micro-batch
    /// ([`crate::train::gradients`]); returns its wall time in seconds (on CUDA, after synchronising) and
    /// the time of each phase: `forward` (losses), `backward` (non-private: the gradient; private: backward
    /// pass(es), per-example norms and the clipped sum), `noise` (private: noise and division by the batch
    /// size), `optimizer` (Adam).
    pub fn step(&mut self) -> Result<(f64, Vec<(&'static str, f64)>)> {
        self.step += 1;
        let start = Instant::now();
        let mut laps = Laps { device: self.workload.device(), mark: Instant::now(), phases: Vec::with_capacity(4) };
        let batch: Vec<u64> = (0..self.batch).collect();
        let workload = &self.workload;
        let mut losses = |_: &[u64], tape: &mut Tape| {
            let l = workload.losses(tape);
            laps.lap("forward");
            l
        };
        let grads = match self.clipper {
            Some(clipper) => {
                let (sum, _) = clipped_sum(&clipper, &self.trainable, &batch, batch.len(), &mut losses)?;
                laps.lap("backward");
                let released = release(
                    sum,
                    &self.noise,
                    self.dp.noise_multiplier,
                    self.dp.max_grad_norm,
                    &self.sampler,
                    self.step,
                    &mut self.history,
                    None,
                )?;
                laps.lap("noise");
                released
            }
            None => {
                let (grads, _) = mean_gradient(&self.trainable, &batch, batch.len(), &mut losses)?;
                laps.lap("backward");
                grads
            }
        };
        self.optimizer.step(&self.trainable, &grads).context("optimizer step")?;
        laps.lap("optimizer");
        Ok((start.elapsed().as_secs_f64(), laps.phases))
    }
}

/// Phase times of one step.
struct Laps {
    device: Device,
    mark: Instant,
    phases: Vec<(&'static str, f64)>,
}

impl Laps {
    /// Ends phase `name`: waits for the device's queued work (CUDA) so that the clock covers it.
    fn lap(&mut self, name: &'static str) {
        if let Device::Cuda(i) = self.device {
            tch::Cuda::synchronize(i as i64);
        }
        self.phases.push((name, self.mark.elapsed().as_secs_f64()));
        self.mark = Instant::now();
    }
}

/// The median of `times` (the mean of the two middle values for an even count).
pub fn median(times: &[f64]) -> f64 {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
