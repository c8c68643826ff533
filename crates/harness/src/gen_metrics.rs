//! The one place the harness calls the `metrics` crate: scores of predictions against references as
//! JSON with e2e-metrics' keys (E2E) or GEM's (DART).

use anyhow::Result;
use metrics::{EvalOptions, MeteorMode};
use serde_json::Value;

/// How METEOR is obtained.
#[derive(Clone, Debug)]
pub enum Meteor {
    /// The jar of `DPFT_METEOR_JAR` or pycocoevalcap's in the Python environment, when Java is there.
    Auto,
    /// This jar.
    Jar(std::path::PathBuf),
    /// Not computed (null).
    Off,
}

/// BLEU, NIST, METEOR (or null), ROUGE-L and CIDEr under the e2e-metrics definitions.
pub fn evaluate(predictions: &[String], references: &[Vec<String>], meteor: Meteor) -> Result<Value> {
    let options = EvalOptions {
        meteor: match meteor {
            Meteor::Auto => MeteorMode::Auto,
            Meteor::Jar(p) => MeteorMode::Jar(p),
            Meteor::Off => MeteorMode::Disabled,
        },
        ..Default::default()
    };
    Ok(serde_json::to_value(metrics::evaluate(predictions, references, &options)?)?)
}

/// DART the GEM way: BLEU over all references and rouge-score ROUGE-L with multi-reference jackknifing.
pub fn evaluate_dart(predictions: &[String], references: &[Vec<String>]) -> Result<Value> {
    Ok(serde_json::to_value(metrics::evaluate_dart(predictions, references)?)?)
}
