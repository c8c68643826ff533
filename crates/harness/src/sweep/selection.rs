//! Random search with a private selection (Papernot & Steinke, ICLR 2022): a sweep file's `selection:`
//! block (`distribution: poisson | geometric | tnb`, `mean`, `shape` for tnb) makes `dpft sweep` run K
//! candidates, K drawn from that distribution and each candidate a grid point drawn uniformly at random
//! (with replacement; repetition j runs with `optimization.seed: j`, so no two share noise or batches).
//! Releasing only the best of them then costs the ε of [`dp_core::accounting::selection`], which
//! `dpft report` states. The draw is kept in OUT/selection.json (so that `--resume` runs the same
//! candidates); K and the other candidates' results are not covered by that ε: release the best run only.
//!
//! The theorem needs every candidate to be the same private mechanism: the grid may vary only settings
//! that do not enter the accounting (learning rate, schedule, method keys, …), which is checked.

use std::path::Path;

use anyhow::{Context, Result};
use dp_core::accounting::selection::RunCount;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_norway::Value;

use super::spec::{run_id, RunSpec};
use crate::exit::BadInput;

/// Distribution of the number of candidates K.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Distribution {
    /// Poisson (K may be 0: nothing is released).
    Poisson,
    /// Geometric on 1, 2, … (the truncated negative binomial with shape 1).
    Geometric,
    /// Truncated negative binomial with `shape` (0: logarithmic).
    Tnb,
}

/// The `selection:` block.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectionSpec {
    /// Distribution of K.
    pub distribution: Distribution,
    /// E[K] (≥ 1).
    pub mean: f64,
    /// η for `tnb` (≥ 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<f64>,
}

impl SelectionSpec {
    /// Reads and checks the block.
    pub fn from_value(v: &Value, path: &Path) -> Result<Self, BadInput> {
        let spec: Self =
            serde_norway::from_value(v.clone()).map_err(|e| BadInput(format!("{}: selection: {e}", path.display())))?;
        spec.count().map_err(|e| BadInput(format!("{}: selection: {e}", path.display())))?;
        Ok(spec)
    }

    /// The accounting's distribution.
    pub fn count(&self) -> Result<RunCount, String> {
        if !(self.mean.is_finite() && self.mean >= 1.0) {
            return Err(format!("mean = {} must be ≥ 1", self.mean));
        }
        match (self.distribution, self.shape) {
            (Distribution::Poisson, None) => Ok(RunCount::Poisson { mean: self.mean }),
            (Distribution::Geometric, None) => Ok(RunCount::TruncatedNegativeBinomial { shape: 1.0, mean: self.mean }),
            (Distribution::Tnb, Some(s)) if s.is_finite() && s >= 0.0 => {
                Ok(RunCount::TruncatedNegativeBinomial { shape: s, mean: self.mean })
            }
            (Distribution::Tnb, _) => Err("tnb needs shape ≥ 0 (0: logarithmic, 1: geometric)".into()),
            (_, Some(_)) => Err("shape applies to distribution tnb only".into()),
        }
    }
}

/// Grid keys that change what the accountant sees (so the candidates would be different mechanisms).
pub fn accounting_key(key: &str) -> bool {
    key == "privacy"
        || key.starts_with("privacy.")
        || key.starts_with("task.")
        || key.starts_with("model.")
        || matches!(key, "optimization.batch_size" | "optimization.steps" | "optimization.epochs")
}

/// A draw of K from `count` (OS randomness).
pub fn draw_k(count: RunCount, rng: &mut impl Rng) -> usize {
    match count {
        RunCount::Poisson { mean } => {
            let d = rand_distr::Poisson::new(mean).expect("mean ≥ 1");
            rng.sample(d) as usize
        }
        RunCount::TruncatedNegativeBinomial { shape, mean } => {
            // Inverse CDF over k = 1, 2, …: p(1) and p(k+1)/p(k) = (1−γ)(k+η)/(k+1) (Definition 1).
            let gamma = dp_core::accounting::selection::tnb_gamma(shape, mean);
            let mut p = if shape == 0.0 {
                (1.0 - gamma) / (1.0 / gamma).ln()
            } else {
                (1.0 - gamma) * shape / (gamma.powf(-shape) - 1.0)
            };
            let u: f64 = rng.gen();
            let (mut k, mut cdf) = (1usize, p);
            while cdf < u && k < 1_000_000 {
                p *= (1.0 - gamma) * (k as f64 + shape) / (k as f64 + 1.0);
                k += 1;
                cdf += p;
            }
            k
        }
    }
}

/// What `OUT/selection.json` keeps.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Draw {
    /// Not covered by the selection's ε: keep this file with the run store, do not publish it.
    pub note: String,
    /// The block the draw was made for.
    pub selection: SelectionSpec,
    /// Grid points (in expansion order) of the candidates, K of them.
    pub candidates: Vec<usize>,
    /// The grid's size when drawn.
    pub grid_size: usize,
}

/// The draw of an earlier invocation in `out` (when resuming), or a fresh one (written unless `dry`).
pub fn load_or_draw(out: &Path, spec: SelectionSpec, grid: usize, resume: bool, dry: bool) -> Result<Draw> {
    let path = out.join("selection.json");
    if resume && path.is_file() {
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let draw: Draw = serde_json::from_str(&text).map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
        if draw.selection != spec || draw.grid_size != grid {
            return Err(BadInput(format!(
                "{}: drawn for another selection block or grid; move the folder away or use another --out",
                path.display()
            ))
            .into());
        }
        return Ok(draw);
    }
    let mut rng = rand::rngs::OsRng;
    let k = draw_k(spec.count().map_err(BadInput)?, &mut rng);
    let candidates = (0..k).map(|_| rng.gen_range(0..grid)).collect();
    let draw = Draw {
        note: "random-search draw (Papernot & Steinke 2022): K and the candidates' results are not covered by the selection's epsilon; release only the best run".into(),
        selection: spec,
        candidates,
        grid_size: grid,
    };
    if !dry {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        crate::train::write_json(&path, &serde_json::to_value(&draw)?)?;
    }
    Ok(draw)
}

/// The candidates' runs: repetition j of grid point g runs g's config with `optimization.seed: j`.
pub fn candidate_runs(draw: &Draw, grid: &[RunSpec]) -> Vec<RunSpec> {
    draw.candidates
        .iter()
        .enumerate()
        .map(|(j, &g)| {
            let mut run = grid[g].clone();
            run.overrides.push(("optimization.seed".into(), Value::Number((j as u64).into())));
            run.config.optimization.seed = j as u64;
            run.id = run_id(&run.overrides);
            run
        })
        .collect()
}
