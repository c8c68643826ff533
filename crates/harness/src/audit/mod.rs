//! `dpft audit`: one-run privacy auditing of a training config (Steinke, Nasr & Jagielski, NeurIPS 2023)
//! with white-box gradient canaries. M canaries are drawn, each included in the training set independently
//! with probability ½; the sampler runs over the real examples and the included canaries with the
//! config's sampling rate, and a canary picked into a batch contributes a clipped gradient of norm C along
//! its own coordinate of the parameter vector (a "Dirac" canary: the largest change one example may make).
//! The release is the config's — clipping, noise σC once per logical batch, division by the expected
//! batch — and the model trains on the released gradients as usual. A canary's score is the sum over steps
//! of the released gradient at its coordinate; the statistics ([`dp_core::accounting::audit`]) turn the
//! scores of included and excluded canaries into the largest ε they reject at the confidence level.
//!
//! Black-box input canaries (`--kind black-box`): the canaries are random token sequences added to the
//! training data (the included ones only), trained on like any example; a canary's score is minus its
//! loss under the trained model. Weaker than white-box (the canaries' influence goes through the model),
//! it audits the whole pipeline as a user would attack it.
//!
//! This audits sampling, the clipping bound and the noise as implemented: ε_lb above the accountant's ε
//! means the release is not the mechanism that was accounted. `--positive-control` releases without noise
//! (ε_lb must then be large: the audit has power); `--sabotage-noise F` releases F·σ while accounting σ
//! (a deliberately broken release, for testing the audit).

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use dp_core::accounting::audit::audit_one_run;
use dp_core::accounting::{default_delta, steps_for_epochs, AccountantKind, Accountants, Event, History};
use dp_core::engine::keys::{derived_key, os_key};
use dp_core::engine::{BatchSampler, ClippedSum, Key, Tape};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde_json::{json, Value};
use tch::Tensor;

use crate::exit::BadInput;
use crate::run_config::{NoiseSeedMode, Privacy, RunConfig, RunLength};
use crate::train::objective::Objective;

/// Which canaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditKind {
    /// Gradient canaries along one parameter coordinate each; score = released gradient there.
    WhiteBox,
    /// Random token sequences in the training data; score = −loss after training.
    BlackBox,
}

impl AuditKind {
    /// The name in the JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Self::WhiteBox => "white_box_gradient",
            Self::BlackBox => "black_box_input",
        }
    }
}

/// Random token sequences of `length` ids below `vocab`, one per canary (black-box audits), from `key`.
pub fn input_canaries(m: usize, length: usize, vocab: i64, key: Key) -> Vec<crate::tasks::causal::CausalExample> {
    let mut rng = ChaCha20Rng::from_seed(key);
    (0..m)
        .map(|_| {
            let ids: Vec<i64> = (0..length).map(|_| rng.gen_range(0..vocab)).collect();
            crate::tasks::causal::CausalExample { labels: ids.clone(), input_ids: ids }
        })
        .collect()
}

/// The key of `domain` for an audit of `config`: derived from its seed when the config's noise seed is
/// fixed (a reproducible audit), else from the OS.
pub fn audit_key(config: &RunConfig, domain: &str) -> Key {
    match &config.privacy {
        Privacy::Dp(p) if p.noise_seed == NoiseSeedMode::Fixed => {
            derived_key(domain, config.optimization.seed, &crate::train::config_hash(config))
        }
        _ => os_key(),
    }
}

/// What the audit run is asked to do.
pub struct AuditOptions {
    /// White-box gradient canaries, or black-box input canaries (then the objective's training set ends
    /// with the M canary sequences, see [`input_canaries`]).
    pub kind: AuditKind,
    /// M.
    pub canaries: usize,
    /// Confidence of the lower bound.
    pub confidence: f64,
    /// Release without noise (the audit's power check).
    pub positive_control: bool,
    /// Released noise is this multiple of the accounted σ (1 for a real audit).
    pub noise_factor: f64,
}

/// The canaries: which are included, and each one's coordinate (tensor index, offset) in the gradient.
struct Canaries {
    included: Vec<bool>,
    coordinates: Vec<(usize, i64)>,
    /// Index into `included`/`coordinates` of each included canary, in order (its dataset slot).
    slots: Vec<usize>,
}

impl Canaries {
    /// M canaries over the trainable tensors `sizes` (elements each), from `key`.
    fn draw(m: usize, sizes: &[i64], key: Key) -> Result<Self> {
        let total: i64 = sizes.iter().sum();
        if (m as i64) > total {
            return Err(BadInput(format!(
                "--canaries {m} exceeds the {total} trainable parameters (one coordinate each)"
            ))
            .into());
        }
        let mut rng = ChaCha20Rng::from_seed(key);
        let included: Vec<bool> = (0..m).map(|_| rng.gen_bool(0.5)).collect();
        let mut chosen = std::collections::BTreeSet::new();
        let mut flat = Vec::with_capacity(m);
        while flat.len() < m {
            let c = rng.gen_range(0..total);
            if chosen.insert(c) {
                flat.push(c);
            }
        }
        let starts: Vec<i64> = sizes.iter().scan(0, |acc, &s| Some(std::mem::replace(acc, *acc + s))).collect();
        let coordinates = flat
            .iter()
            .map(|&c| {
                let t = starts.partition_point(|&s| s <= c) - 1;
                (t, c - starts[t])
            })
            .collect();
        let slots = (0..m).filter(|&i| included[i]).collect();
        Ok(Self { included, coordinates, slots })
    }
}

/// Runs the audit of `config` on `objective`; writes `audit.json` and the scores under `out` when given.
pub fn run(config: &RunConfig, objective: &dyn Objective, opts: &AuditOptions, out: Option<&Path>) -> Result<Value> {
    let started = Instant::now();
    let Privacy::Dp(p) = &config.privacy else {
        return Err(BadInput("dpft audit needs a private config (privacy: {target_epsilon|noise_multiplier, max_grad_norm, …}); --positive-control turns the noise off for the control run".into()).into());
    };
    if !(opts.confidence > 0.0 && opts.confidence < 1.0) {
        return Err(BadInput(format!("--confidence {} must lie in (0, 1)", opts.confidence)).into());
    }
    if opts.canaries < 2 {
        return Err(BadInput("--canaries must be at least 2".into()).into());
    }
    let o = &config.optimization;
    let hash = crate::train::config_hash(config);
    let key = |domain: &str| audit_key(config, domain);
    let trainable = objective.trainable();
    dp_core::engine::check_ownership(&objective.layers(), &trainable)?;
    let updated = objective.updated();
    let sizes: Vec<i64> = trainable.iter().map(|(_, t)| t.numel() as i64).collect();
    let canaries = Canaries::draw(opts.canaries, &sizes, key("dpft/audit-canaries"))?;
    // Black-box: the last M training examples are the canaries (all of them; the sampler sees the included).
    let black_box = opts.kind == AuditKind::BlackBox;
    let n_real = objective.train_len() - if black_box { opts.canaries } else { 0 };
    let n_total = n_real + canaries.slots.len();
    // The number of included canaries is random: a batch size above the examples means every example in
    // every batch (q = 1), said in the log and in the result's sample_rate.
    let q = (o.batch_size as f64 / n_total as f64).min(1.0);
    if o.batch_size > n_total {
        log::info!(
            "optimization.batch_size = {} ≥ the {n_total} examples (real and included canaries): sample rate 1",
            o.batch_size
        );
    }
    let mut sampler = BatchSampler::poisson(n_total as u64, q, key("dpft/audit-sampler"))?;
    let steps = match o.length().map_err(BadInput)? {
        RunLength::Steps(s) => s,
        RunLength::Epochs(e) => steps_for_epochs(e, sampler.sampling().sample_rate())?,
    };
    let dp = crate::train::setup::resolve_dp(p, sampler.sampling(), steps, n_total, o.seed, &hash)?;
    let delta = p.delta.unwrap_or_else(|| default_delta(n_total as u64));
    let released_sigma = if opts.positive_control { 0.0 } else { dp.sigma * opts.noise_factor };
    let c = dp.clipper.max_grad_norm;
    let mut optimizer = crate::train::setup::optimizer_for(config, steps, objective)?;
    let mut history = History::new();
    let mut scores = vec![0.0f64; opts.canaries];
    let bar = indicatif::ProgressBar::new(steps);
    for step in 1..=steps {
        tch::manual_seed((o.seed.wrapping_mul(1_000_003).wrapping_add(step)) as i64);
        let batch = sampler.next_batch();
        let (mut real, picked): (Vec<u64>, Vec<u64>) = batch.into_iter().partition(|&i| (i as usize) < n_real);
        if black_box {
            // An included canary's slot is a training example: the sequence at n_real + its index.
            real.extend(picked.iter().map(|&s| (n_real + canaries.slots[s as usize - n_real]) as u64));
        }
        objective.prepare_step();
        let mut losses = |chunk: &[u64], tape: &mut Tape| objective.losses(chunk, true, tape);
        let mut sum = if real.is_empty() {
            ClippedSum::zeros(&trainable)
        } else {
            crate::train::gradients::clipped_sum(
                &dp.clipper,
                &trainable,
                &objective.order_for_padding(real),
                o.physical_batch_size,
                &mut losses,
            )?
            .0
        };
        if !black_box {
            for slot in picked {
                let (t, offset) = canaries.coordinates[canaries.slots[slot as usize - n_real]];
                sum.add_at(t, offset, c)?;
            }
        }
        let released = dp.noise.privatize(sum.sums(), released_sigma, c, sampler.expected_batch_size(), step)?;
        history.push(Event::new(dp.sigma, sampler.sampling(), 1)?)?;
        if !black_box {
            add_scores(&mut scores, &canaries.coordinates, &released)?;
        }
        optimizer.step(&updated, &objective.reconstruct(released)?)?;
        bar.set_position(step);
    }
    bar.finish_and_clear();
    if black_box {
        // Score = −loss of each canary sequence under the trained model (no dropout, no tape).
        let indices: Vec<u64> = (n_real..n_real + opts.canaries).map(|i| i as u64).collect();
        for (chunk, out) in
            indices.chunks(o.physical_batch_size.max(1)).zip(scores.chunks_mut(o.physical_batch_size.max(1)))
        {
            let losses = tch::no_grad(|| objective.losses(chunk, false, &mut Tape::off()))?;
            for (s, l) in out.iter_mut().zip(Vec::<f64>::try_from(losses.to_kind(tch::Kind::Double))?) {
                *s = -l;
            }
        }
    }
    let epsilon_claimed = Accountants::default().epsilon(AccountantKind::Rdp, &history, delta)?;
    let pick = |inside: bool| -> Vec<f64> {
        scores.iter().zip(&canaries.included).filter(|(_, &i)| i == inside).map(|(&s, _)| s).collect()
    };
    let (ins, outs) = (pick(true), pick(false));
    let audit = audit_one_run(&ins, &outs, opts.confidence, delta)?;
    let result = json!({
        "kind": opts.kind.name(),
        "epsilon_claimed": epsilon_claimed,
        "delta": delta,
        "epsilon_lower_bound": audit.epsilon_lower_bound,
        "confidence": opts.confidence,
        "canaries": opts.canaries,
        "canaries_included": ins.len(),
        "guesses": audit.guesses,
        "correct": audit.correct,
        "thresholds": audit.thresholds,
        "positive_control": opts.positive_control,
        "released_noise_multiplier": released_sigma,
        "noise_multiplier": dp.sigma,
        "sample_rate": sampler.sampling().sample_rate(),
        "steps": steps,
        "real_examples": n_real,
        "passed": opts.positive_control || audit.epsilon_lower_bound <= epsilon_claimed,
        "wall_time_s": started.elapsed().as_secs_f64(),
    });
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let lines = |v: &[f64]| v.iter().map(|x| format!("{x:e}\n")).collect::<String>();
        crate::commands::model_io::write_atomic(&dir.join("in_scores.txt"), lines(&ins).as_bytes())?;
        crate::commands::model_io::write_atomic(&dir.join("out_scores.txt"), lines(&outs).as_bytes())?;
        crate::train::write_json(&dir.join("audit.json"), &result)?;
    }
    Ok(result)
}

/// Adds each canary's coordinate of the released gradients to its score.
fn add_scores(scores: &mut [f64], coordinates: &[(usize, i64)], released: &[(String, Tensor)]) -> Result<()> {
    for (t, (_, g)) in released.iter().enumerate() {
        let picks: Vec<(usize, i64)> =
            coordinates.iter().enumerate().filter(|(_, (ct, _))| *ct == t).map(|(i, (_, off))| (i, *off)).collect();
        if picks.is_empty() {
            continue;
        }
        let index = Tensor::from_slice(&picks.iter().map(|(_, off)| *off).collect::<Vec<i64>>()).to_device(g.device());
        let values = Vec::<f64>::try_from(g.reshape([-1]).index_select(0, &index).to_kind(tch::Kind::Double))?;
        for ((i, _), v) in picks.iter().zip(values) {
            scores[*i] += v;
        }
    }
    Ok(())
}
