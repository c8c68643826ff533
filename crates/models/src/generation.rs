//! Text generation with a causal LM (GPT-2, the Llama family): greedy search and beam search, batched (left padding), with a key/value
//! cache; deterministic. The paper decodes E2E and DART with beam search (Li et al. 2022, App.: beam size
//! 5, following prefix-tuning).
//!
//! Beam search follows Hugging Face transformers' `_beam_search` (v5, `generation/utils.py`) step for step,
//! so that the same settings give the same token ids:
//! 1. scores of a step are log_softmax of the last logits in f32; then banned tokens and, before
//!    `min_new_tokens` tokens, EOS are set to −∞ (after the softmax, as Hugging Face's processors run);
//!    each beam adds its running score;
//! 2. the top 2k of the k·V continuations are taken; a continuation ending in EOS, or reaching
//!    `max_new_tokens`, is finished; the k best unfinished ones (finished ones pushed down by −1e9) run on;
//! 3. a finished continuation ranked among the top k of the 2k enters the k best finished hypotheses with
//!    score = sum of log-probabilities / (generated length, EOS included)^length_penalty;
//! 4. a prompt is done when all k hypothesis slots are full and the best running beam's score divided by
//!    its generated length^length_penalty cannot beat the worst hypothesis (`early_stopping=False`), or at
//!    `max_new_tokens`; the output is the best hypothesis.
//!
//! Greedy search (num_beams = 1) takes the arg-max of the processed logits and stops a row at EOS.

use dp_core::engine::Tape;
use tch::{Kind, Tensor};

use crate::causal::CausalModel;
use crate::inputs::Inputs;
use crate::kv_cache::KvCache;
use crate::ModelError;

/// Settings of one generation call.
#[derive(Clone, Debug)]
pub struct GenerationConfig {
    /// Beams (1 = greedy).
    pub num_beams: usize,
    /// Most tokens generated per prompt.
    pub max_new_tokens: usize,
    /// EOS is forbidden before this many tokens were generated (Hugging Face `min_new_tokens`).
    pub min_new_tokens: usize,
    /// Token ids never generated (Hugging Face `suppress_tokens`).
    pub banned_token_ids: Vec<i64>,
    /// End of sequence; `None` generates `max_new_tokens` always.
    pub eos_token_id: Option<i64>,
    /// Exponent of the length normalisation of finished hypotheses (1.0 = mean log-probability).
    pub length_penalty: f64,
    /// Prompts processed together.
    pub batch_size: usize,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            num_beams: 5,
            max_new_tokens: 100,
            min_new_tokens: 0,
            banned_token_ids: Vec::new(),
            eos_token_id: None,
            length_penalty: 1.0,
            batch_size: 8,
        }
    }
}

impl GenerationConfig {
    fn check(&self, vocab: i64) -> Result<(), ModelError> {
        if self.num_beams == 0 || self.max_new_tokens == 0 || self.batch_size == 0 {
            return Err(ModelError::Invalid("num_beams, max_new_tokens and batch_size must be at least 1".into()));
        }
        if let Some(bad) =
            self.banned_token_ids.iter().chain(self.eos_token_id.iter()).find(|&&t| !(0..vocab).contains(&t))
        {
            return Err(ModelError::Invalid(format!("token id {bad} is outside the vocabulary (size {vocab})")));
        }
        if self.min_new_tokens > self.max_new_tokens {
            return Err(ModelError::Invalid(format!(
                "min_new_tokens = {} exceeds max_new_tokens = {}",
                self.min_new_tokens, self.max_new_tokens
            )));
        }
        Ok(())
    }
}

/// Generates a continuation of every prompt (token ids, none empty); returns the new tokens of each, EOS
/// included when it was generated.
pub fn generate(
    model: &dyn CausalModel,
    prompts: &[Vec<i64>],
    config: &GenerationConfig,
) -> Result<Vec<Vec<i64>>, ModelError> {
    config.check(model.vocab_size())?;
    if let Some(i) = prompts.iter().position(Vec::is_empty) {
        return Err(ModelError::Invalid(format!(
            "prompt {} is empty: GPT-2 needs at least one token to continue",
            i + 1
        )));
    }
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let room = model.text_positions();
    if (longest + config.max_new_tokens) as i64 > room {
        return Err(ModelError::Invalid(format!(
            "the longest prompt ({longest} tokens) plus max_new_tokens ({}) exceeds the {room} positions the model has for text (n_positions = {}, prefix {})",
            config.max_new_tokens,
            model.max_positions(),
            model.prefix_length()
        )));
    }
    let _guard = tch::no_grad_guard();
    let mut out = Vec::with_capacity(prompts.len());
    for chunk in prompts.chunks(config.batch_size) {
        let batch =
            if config.num_beams == 1 { greedy(model, chunk, config)? } else { beam_search(model, chunk, config)? };
        out.extend(batch);
    }
    Ok(out)
}

/// Left-padded ids and mask `[B·k, L]` (each prompt repeated k times), and L.
fn left_pad(prompts: &[Vec<i64>], repeat: usize, pad: i64, device: tch::Device) -> (Tensor, Tensor, i64) {
    let len = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(prompts.len() * repeat * len);
    let mut mask = Vec::with_capacity(ids.capacity());
    for p in prompts {
        for _ in 0..repeat {
            ids.extend(std::iter::repeat_n(pad, len - p.len()).chain(p.iter().copied()));
            mask.extend(std::iter::repeat_n(0i64, len - p.len()).chain(std::iter::repeat_n(1i64, p.len())));
        }
    }
    let rows = (prompts.len() * repeat) as i64;
    let shape = [rows, len as i64];
    (
        Tensor::from_slice(&ids).reshape(shape).to(device),
        Tensor::from_slice(&mask).reshape(shape).to(device),
        len as i64,
    )
}

/// Position ids of left-padded rows, as Hugging Face computes them from the mask: cumsum(mask) − 1, and 1
/// on padding.
fn positions_from_mask(mask: &Tensor) -> Tensor {
    let pos = mask.cumsum(-1, Kind::Int64) - 1;
    pos.masked_fill(&mask.eq(0), 1)
}

/// Incremental decoding state shared by greedy and beam search: the attention mask and position ids of
/// the rows so far, and the key/value cache.
struct Decoder<'m> {
    model: &'m dyn CausalModel,
    mask: Tensor,
    positions: Tensor,
    cache: KvCache,
}

impl<'m> Decoder<'m> {
    /// Runs the left-padded prompts (each repeated `repeat` times); returns the decoder and the logits.
    fn start(
        model: &'m dyn CausalModel,
        prompts: &[Vec<i64>],
        repeat: usize,
        pad: i64,
    ) -> Result<(Self, Tensor), ModelError> {
        let (ids, mask, _) = left_pad(prompts, repeat, pad, model.device());
        let positions = positions_from_mask(&mask);
        let mut decoder = Self { model, mask, positions, cache: KvCache::default() };
        let logits = decoder.forward(&ids)?;
        Ok((decoder, logits))
    }

    fn forward(&mut self, ids: &Tensor) -> Result<Tensor, ModelError> {
        let inputs = Inputs::ids(ids).with_mask(&self.mask).with_positions(&self.positions);
        self.model.forward(inputs, Some(&mut self.cache), false, &mut Tape::off())
    }

    /// Keeps rows `index` of the batch (beam search).
    fn reorder(&mut self, index: &[i64]) {
        self.cache.reorder(&Tensor::from_slice(index).to(self.mask.device()));
    }

    /// Feeds one token per row; returns the logits `[rows, 1, V]`.
    fn step(&mut self, tokens: &[i64]) -> Result<Tensor, ModelError> {
        self.mask = Tensor::cat(&[&self.mask, &self.mask.ones_like().narrow(1, 0, 1)], 1);
        self.positions = self.positions.narrow(1, self.positions.size()[1] - 1, 1) + 1;
        let ids = Tensor::from_slice(tokens).to(self.mask.device()).unsqueeze(1); // [rows, 1]
        self.forward(&ids)
    }
}

/// Log-probabilities (beam) or logits (greedy) of the next token after the processors: banned tokens and,
/// before `min_new_tokens`, EOS get −∞.
fn process(scores: Tensor, generated: usize, config: &GenerationConfig) -> Tensor {
    let mut banned = config.banned_token_ids.clone();
    if generated < config.min_new_tokens {
        banned.extend(config.eos_token_id);
    }
    if banned.is_empty() {
        return scores;
    }
    let index = Tensor::from_slice(&banned).to(scores.device());
    scores.index_fill(1, &index, f64::NEG_INFINITY)
}

fn greedy(
    model: &dyn CausalModel,
    prompts: &[Vec<i64>],
    config: &GenerationConfig,
) -> Result<Vec<Vec<i64>>, ModelError> {
    let pad = config.eos_token_id.unwrap_or(0);
    let (mut decoder, mut logits) = Decoder::start(model, prompts, 1, pad)?;
    let rows = prompts.len();
    let mut out: Vec<Vec<i64>> = vec![Vec::new(); rows];
    let mut done = vec![false; rows];
    for step in 0..config.max_new_tokens {
        let last = logits.select(1, -1).to_kind(Kind::Float); // [B, V]
        let next: Vec<i64> = Vec::try_from(process(last, step, config).argmax(-1, false))?;
        let mut fed = Vec::with_capacity(rows);
        for (r, &token) in next.iter().enumerate() {
            if done[r] {
                fed.push(pad);
                continue;
            }
            out[r].push(token);
            fed.push(token);
            if Some(token) == config.eos_token_id {
                done[r] = true;
            }
        }
        if done.iter().all(|&d| d) || step + 1 == config.max_new_tokens {
            break;
        }
        logits = decoder.step(&fed)?;
    }
    Ok(out)
}

/// One finished or running hypothesis: its generated tokens and score.
#[derive(Clone, Debug)]
struct Hypothesis {
    tokens: Vec<i64>,
    score: f32,
    finished: bool,
}

/// Indices of the `k` largest values, largest first (ties: lower index first; exact ties between distinct
/// continuations have not been seen in the transformers comparisons).
fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

fn beam_search(
    model: &dyn CausalModel,
    prompts: &[Vec<i64>],
    config: &GenerationConfig,
) -> Result<Vec<Vec<i64>>, ModelError> {
    let device = model.device();
    let k = config.num_beams;
    let keep = 2 * k; // Hugging Face: max(2, 1 + number of EOS ids) · k, with one EOS id
    let b = prompts.len();
    let pad = config.eos_token_id.unwrap_or(0);
    let lp = config.length_penalty as f32;
    let (mut decoder, mut logits) = Decoder::start(model, prompts, k, pad)?;
    let v = model.vocab_size();
    // Running beams per prompt (beam 0 starts alone: the others at −1e9), finished slots per prompt.
    let mut running: Vec<Vec<Hypothesis>> = (0..b)
        .map(|_| {
            (0..k)
                .map(|j| Hypothesis { tokens: Vec::new(), score: if j == 0 { 0.0 } else { -1e9 }, finished: false })
                .collect()
        })
        .collect();
    let mut finished: Vec<Vec<Hypothesis>> =
        (0..b).map(|_| vec![Hypothesis { tokens: Vec::new(), score: -1e9, finished: false }; k]).collect();
    let mut improvable = vec![true; b];
    for step in 0..config.max_new_tokens {
        let log_probs = logits.select(1, -1).to_kind(Kind::Float).log_softmax(-1, Kind::Float); // [B·k, V]
        let log_probs = process(log_probs, step, config);
        let run_scores: Vec<f32> = running.iter().flat_map(|r| r.iter().map(|h| h.score)).collect();
        let acc = log_probs + Tensor::from_slice(&run_scores).to(device).unsqueeze(1); // [B·k, V]
        let (top_vals, top_idx) = acc.reshape([b as i64, -1]).topk(keep as i64, -1, true, true); // [B, 2k]
        let top_vals: Vec<f32> = Vec::try_from(top_vals.reshape([-1]))?;
        let top_idx: Vec<i64> = Vec::try_from(top_idx.reshape([-1]))?;
        let generated = step + 1; // tokens generated by each continuation
        let at_max = generated == config.max_new_tokens;
        let mut reorder = Vec::with_capacity(b * k);
        let mut next_tokens = Vec::with_capacity(b * k);
        let mut all_hit = true;
        for p in 0..b {
            let cands: Vec<(f32, usize, i64)> = (0..keep)
                .map(|j| {
                    let idx = top_idx[p * keep + j];
                    (top_vals[p * keep + j], (idx / v) as usize, idx % v)
                })
                .collect();
            let hits: Vec<bool> = cands.iter().map(|&(_, _, t)| at_max || Some(t) == config.eos_token_id).collect();
            all_hit &= hits.iter().all(|&h| h);
            let extend = |beam: usize, token: i64| {
                let mut t = running[p][beam].tokens.clone();
                t.push(token);
                t
            };
            // Next running beams: the k best continuations, finished ones pushed down.
            let run_vals: Vec<f32> =
                cands.iter().zip(&hits).map(|(&(s, _, _), &h)| if h { s + -1e9 } else { s }).collect();
            let next_running: Vec<Hypothesis> = top_k(&run_vals, k)
                .into_iter()
                .map(|j| {
                    let (_, beam, token) = cands[j];
                    reorder.push((p * k + beam) as i64);
                    next_tokens.push(token);
                    Hypothesis { tokens: extend(beam, token), score: run_vals[j], finished: false }
                })
                .collect();
            // Finished hypotheses: merge the old slots with the top-k candidates that just finished.
            let norm = (generated as f32).powf(lp);
            let mut merged = finished[p].clone();
            for (j, &(s, beam, token)) in cands.iter().enumerate() {
                let mut score = s / norm;
                if !improvable[p] {
                    score += -1e9;
                }
                let just_finished = hits[j] && j < k;
                if !just_finished {
                    score += -1e9;
                }
                merged.push(Hypothesis { tokens: extend(beam, token), score, finished: just_finished });
            }
            let scores: Vec<f32> = merged.iter().map(|h| h.score).collect();
            finished[p] = top_k(&scores, k).into_iter().map(|j| merged[j].clone()).collect();
            running[p] = next_running;
            // Early-stop heuristic (early_stopping=False): can the best running beam still improve?
            let best = running[p][0].score / (generated as f32).powf(lp);
            let worst = finished[p].iter().map(|h| h.score).fold(f32::INFINITY, f32::min);
            let can_improve = finished[p].iter().any(|h| best > if h.finished { worst } else { -1e9 });
            improvable[p] &= can_improve;
        }
        if !improvable.iter().any(|&i| i) || all_hit || at_max {
            break;
        }
        decoder.reorder(&reorder);
        logits = decoder.step(&next_tokens)?;
    }
    Ok(finished.into_iter().map(|f| f.into_iter().next().map(|h| h.tokens).unwrap_or_default()).collect())
}
