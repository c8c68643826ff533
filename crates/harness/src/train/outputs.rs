//! What a finished run writes: `privacy.json` (the ledger and what ε covers) and `summary.json` (status,
//! metrics, cost). Both are serde structs sharing [`RunFacts`]; the files keep their keys (sorted, as
//! `serde_json` writes a `Value`).

use serde::Serialize;
use serde_json::{json, Value};

use dp_core::accounting::{AccountantKind, Accountants, History, Sampling};

use super::setup::RunState;
use crate::run_config::{NoiseSeedMode, Privacy, RunConfig};

/// What ε covers, stated in every privacy.json.
const SCOPE: &str = "epsilon covers the trained parameters (model/, the adapter, the checkpoints' parameters) and anything computed from them and public or held-out data alone (predictions.txt, the evaluation metrics in summary.json, dpft generate/score output). It does not cover metrics.jsonl's per-step lines (training loss, realised batch size, gradient-norm statistics, step time: marked covered_by_epsilon false), which are computed from the private batches without noise, nor the wall time and memory in summary.json; secrets.json is secret. Release only what epsilon covers";

/// The facts both files state.
#[derive(Serialize)]
pub(super) struct RunFacts {
    dataset_size: usize,
    delta: Option<f64>,
    noise_multiplier: Option<f64>,
    /// ε under every accountant that applies ([`epsilons`]), or null without DP.
    epsilon: Value,
    budget_accountant: Option<&'static str>,
    steps: u64,
    planned_steps: u64,
    /// Set when δ ≥ 1/n (the run was allowed by `privacy.allow_large_delta`): ε at such a δ says little.
    #[serde(skip_serializing_if = "Option::is_none")]
    delta_warning: Option<String>,
}

impl RunFacts {
    /// The facts after `done` steps.
    pub fn new(state: &RunState, done: u64) -> Self {
        let dp = state.dp.as_ref();
        Self {
            dataset_size: state.n,
            delta: dp.map(|d| d.delta),
            noise_multiplier: dp.map(|d| d.sigma),
            epsilon: dp.map_or(Value::Null, |d| epsilons(&state.history, d.delta)),
            budget_accountant: dp.map(|d| d.accountant.name()),
            steps: done,
            planned_steps: state.steps,
            delta_warning: dp.and_then(|d| d.large_delta.clone()),
        }
    }
}

/// `privacy.sampler`.
#[derive(Serialize)]
struct SamplerFacts {
    kind: &'static str,
    sample_rate: f64,
    expected_batch_size: f64,
    relation: &'static str,
}

/// `privacy.clipping`.
#[derive(Serialize)]
struct ClippingFacts {
    mode: String,
    style: String,
}

/// `privacy.json`.
#[derive(Serialize)]
pub(super) struct PrivacyReport {
    #[serde(flatten)]
    facts: RunFacts,
    private: bool,
    sampler: SamplerFacts,
    max_grad_norm: Option<f64>,
    clipping: Option<ClippingFacts>,
    target_epsilon: Option<f64>,
    randomness: Option<String>,
    scope: &'static str,
    /// The accountant's event history, or null.
    history: Value,
}

impl PrivacyReport {
    /// The report after `done` steps.
    pub fn new(config: &RunConfig, state: &RunState, done: u64) -> anyhow::Result<Self> {
        let dp = state.dp.as_ref();
        let sampling = state.sampler.sampling();
        let randomness = match &config.privacy {
            Privacy::Dp(p) if p.noise_seed == NoiseSeedMode::Fixed => Some(
                "fixed (research only): noise and batches are derived from optimization.seed and this run's config, so anyone who knows both can recompute them; the guarantee holds only while they are secret. Use noise_seed: secure for any model that leaves your hands"
                    .into(),
            ),
            Privacy::Dp(_) => Some(format!(
                "secure: noise from the operating system's randomness at every draw; the batch sampler's 256-bit key from the operating system, kept only in {} of the run folder (never share that file)",
                super::secrets::FILE
            )),
            Privacy::None => None,
        };
        let history = if state.history.steps() == 0 {
            Value::Null
        } else {
            serde_json::from_str::<Value>(&state.history.to_json())?
        };
        Ok(Self {
            facts: RunFacts::new(state, done),
            private: dp.is_some(),
            sampler: SamplerFacts {
                kind: sampler_name(sampling),
                sample_rate: sampling.sample_rate(),
                expected_batch_size: state.sampler.expected_batch_size(),
                relation: match sampling {
                    Sampling::Poisson { .. } => "add/remove one example",
                    Sampling::FixedSize { .. } => "replace one example",
                },
            },
            max_grad_norm: dp.map(|d| d.clipper.max_grad_norm),
            clipping: dp.map(|d| ClippingFacts {
                mode: format!("{:?}", d.clipper.mode),
                style: format!("{:?}", d.clipper.style),
            }),
            target_epsilon: dp.and_then(|d| d.budget.map(|b| b.epsilon)),
            randomness,
            scope: SCOPE,
            history,
        })
    }
}

/// `summary.json`.
#[derive(Serialize)]
pub(super) struct Summary {
    #[serde(flatten)]
    pub facts: RunFacts,
    /// `finished` or `stopped_at_budget`.
    pub status: &'static str,
    pub stop_reason: Option<String>,
    pub sample_rate: f64,
    pub sampler: &'static str,
    pub expected_batch_size: f64,
    pub trainable_parameters: i64,
    pub gradient_parameters: i64,
    /// Final evaluation metrics.
    pub metrics: serde_json::Map<String, Value>,
    /// Wall time over all segments (the start and each resume, each up to its last checkpoint, plus the
    /// last one to its end).
    pub wall_time_s: f64,
    /// The largest resident-set high-water mark of the segments.
    pub peak_memory_bytes: Option<u64>,
    pub peak_memory_kind: &'static str,
    /// The start and each resume.
    pub segments: u32,
    /// SHA-256 of the featurised training set.
    pub data_fingerprint: String,
}

impl Summary {
    /// The summary after `done` steps; `stopped` is the budget message when the run stopped early.
    pub fn new(state: &RunState, done: u64, stopped: Option<String>, metrics: serde_json::Map<String, Value>) -> Self {
        Self {
            facts: RunFacts::new(state, done),
            status: if stopped.is_some() { "stopped_at_budget" } else { "finished" },
            stop_reason: stopped,
            sample_rate: state.sampler.sampling().sample_rate(),
            sampler: sampler_name(state.sampler.sampling()),
            expected_batch_size: state.sampler.expected_batch_size(),
            trainable_parameters: state.trainable_count,
            gradient_parameters: state.gradient_count,
            metrics,
            wall_time_s: state.cost.wall_time_s(),
            peak_memory_bytes: state.cost.peak_memory_bytes(),
            peak_memory_kind: "process resident-set high-water mark (VmHWM), the largest of the segments",
            segments: state.cost.segments(),
            data_fingerprint: state.data_fingerprint.clone(),
        }
    }
}

fn sampler_name(sampling: Sampling) -> &'static str {
    match sampling {
        Sampling::Poisson { .. } => "poisson",
        Sampling::FixedSize { .. } => "fixed_size",
    }
}

/// ε of `history` under every accountant that applies (GDP flagged as an approximation).
pub(super) fn epsilons(history: &History, delta: f64) -> Value {
    if history.steps() == 0 {
        return json!({});
    }
    let acc = Accountants::default();
    let mut out = serde_json::Map::new();
    for kind in [AccountantKind::Rdp, AccountantKind::Prv, AccountantKind::Gdp] {
        let value = match kind {
            AccountantKind::Prv => acc
                .prv
                .epsilon(history, delta)
                .map(|r| json!({"upper": r.upper, "lower": r.lower, "estimate": r.estimate})),
            _ => acc.epsilon(kind, history, delta).map(|e| json!(e)),
        };
        // GDP is a central-limit approximation that can under-estimate ε: its key says so.
        let key = if kind == AccountantKind::Gdp { "gdp_approximation".to_string() } else { kind.name().to_string() };
        out.insert(key, value.unwrap_or_else(|e| json!({"unavailable": e.to_string()})));
    }
    Value::Object(out)
}
