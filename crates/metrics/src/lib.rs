//! Generation metrics for table-to-text, with the definitions the paper's tables use.
//!
//! - E2E ([`evaluate`], [`Evaluator`]): the five metrics of tuetschek/e2e-metrics `measure_scores.py` — BLEU as
//!   its `mteval-v13a-sig.pl` computes it ([`bleu`]), NIST as its Python implementation computes it (`--python`,
//!   [`pymteval`]: what the paper's tables used; the Perl script's NIST, [`nist`], on request), METEOR, ROUGE-L and CIDEr as
//!   pycocoevalcap computes them on its PTB tokenisation ([`meteor`], [`rouge`], [`cider`], [`ptb`]). Scales are
//!   e2e-metrics': BLEU in [0, 1], NIST unbounded (~8 on E2E), METEOR and ROUGE-L in [0, 1], CIDEr in [0, 10].
//! - DART ([`evaluate_dart`]): GEM-metrics style — BLEU over all references as above, and ROUGE-L with
//!   rouge-score semantics and GEM's multi-reference jackknifing ([`rouge::rouge_l_gem`]).
//!
//! Every metric is checked against its reference implementation on the real E2E dev and test sets by
//! `python/tests/test_metrics.py` (BLEU: sacrebleu, 1e-9; NIST: pymteval itself, 1e-9, and the Perl flavour
//! against `python/oracles/nist_reference.py`, 1e-9;
//! ROUGE-L, CIDEr, METEOR: pycocoevalcap, 1e-9 / 1e-9 / 1e-6; PTB tokenisation: the jar, equal strings).
//!
//! ```
//! let refs = vec![vec!["The Eagle is a pub.".to_string(), "A pub, The Eagle.".to_string()]];
//! let preds = vec!["The Eagle is a pub.".to_string()];
//! let opts = metrics::EvalOptions { meteor: metrics::MeteorMode::Disabled, ..Default::default() };
//! let s = metrics::evaluate(&preds, &refs, &opts).unwrap();
//! assert!((s.bleu - 1.0).abs() < 1e-12 && s.meteor.is_none());
//! ```

pub mod bleu;
pub mod cider;
pub mod error;
pub mod io;
pub mod meteor;
pub mod nist;
pub mod num;
pub mod porter;
pub mod ptb;
pub mod pymteval;
pub mod rouge;
pub mod text;

use serde::{Deserialize, Serialize};

pub use error::MetricsError;
pub use io::{check_pairing, read_predictions, read_predictions_file, read_references, read_references_file};
pub use meteor::{MeteorMode, MeteorSetup};

/// The e2e-metrics scores of one system; serialises with e2e-metrics' keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Corpus BLEU-4, [0, 1].
    #[serde(rename = "BLEU")]
    pub bleu: f64,
    /// Corpus NIST-5.
    #[serde(rename = "NIST")]
    pub nist: f64,
    /// METEOR 1.5, [0, 1]; `None` (JSON null) when Java or the jar is unavailable.
    #[serde(rename = "METEOR")]
    pub meteor: Option<f64>,
    /// pycocoevalcap ROUGE-L, [0, 1].
    #[serde(rename = "ROUGE_L")]
    pub rouge_l: f64,
    /// pycocoevalcap CIDEr(-D), [0, 10].
    #[serde(rename = "CIDEr")]
    pub cider: f64,
}

/// GEM-style DART scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DartScores {
    /// Corpus BLEU-4 over all references, [0, 1] (GEM-metrics prints ×100).
    #[serde(rename = "BLEU")]
    pub bleu: f64,
    /// rouge-score ROUGE-L F with stemming and GEM's multi-reference jackknifing, [0, 1].
    #[serde(rename = "ROUGE_L")]
    pub rouge_l: f64,
}

/// Which NIST [`Evaluator`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NistVariant {
    /// e2e-metrics' Python implementation (`measure_scores.py --python`, GEM-metrics' NIST): the paper's.
    #[default]
    Pymteval,
    /// e2e-metrics' default, the `mteval-v13a-sig.pl` Perl script on its padded SGML files.
    Mteval13a,
}

/// Options of [`evaluate`].
#[derive(Debug, Clone, Default)]
pub struct EvalOptions {
    /// Where METEOR comes from (default: look for Java and pycocoevalcap's jar).
    pub meteor: MeteorMode,
    /// Which NIST (default: pymteval, the paper's).
    pub nist: NistVariant,
}

/// Scores several systems against one reference set: tokenises the references once and keeps one METEOR JVM.
#[derive(Debug)]
pub struct Evaluator {
    references: Vec<Vec<String>>,
    ptb_references: Vec<Vec<String>>,
    bleu_refs: bleu::BleuRefs,
    nist_refs: NistReferences,
    cider_refs: cider::CiderRefs,
    meteor: Option<meteor::Meteor>,
    meteor_setup: MeteorSetup,
}

/// The reference side of the chosen NIST.
#[derive(Debug)]
enum NistReferences {
    Pymteval(pymteval::PymtevalNistRefs),
    Mteval13a(nist::NistRefs),
}

impl NistReferences {
    fn new(references: &[Vec<String>], variant: NistVariant) -> Self {
        match variant {
            NistVariant::Pymteval => Self::Pymteval(pymteval::PymtevalNistRefs::new(references)),
            NistVariant::Mteval13a => Self::Mteval13a(nist::NistRefs::new(references)),
        }
    }

    fn score(&mut self, predictions: &[String]) -> f64 {
        match self {
            Self::Pymteval(r) => r.score(predictions).score,
            Self::Mteval13a(r) => r.score(predictions).score,
        }
    }
}

impl Evaluator {
    /// Prepare to score against `references` (one non-empty list per segment). Starts METEOR if available.
    pub fn new(references: Vec<Vec<String>>, options: &EvalOptions) -> Result<Self, MetricsError> {
        if references.is_empty() {
            return Err(MetricsError::Empty);
        }
        if let Some(segment) = references.iter().position(Vec::is_empty) {
            return Err(MetricsError::EmptySegment { segment });
        }
        // pycocoevalcap tokenises all references as one stream, in segment order.
        let flat: Vec<&str> = references.iter().flatten().map(String::as_str).collect();
        let mut tokenized = ptb::coco_tokenize(&flat).into_iter();
        let ptb_references: Vec<Vec<String>> =
            references.iter().map(|rs| tokenized.by_ref().take(rs.len()).collect()).collect();
        let bleu_refs = bleu::BleuRefs::new(&references);
        let nist_refs = NistReferences::new(&references, options.nist);
        let cider_refs = cider::CiderRefs::new(&ptb_references);
        let meteor_setup = meteor::locate(&options.meteor)?;
        let meteor = match &meteor_setup {
            MeteorSetup::Available { java, jar } => Some(meteor::Meteor::start(java, jar)?),
            MeteorSetup::Unavailable(_) => None,
        };
        Ok(Evaluator { references, ptb_references, bleu_refs, nist_refs, cider_refs, meteor, meteor_setup })
    }

    /// Whether METEOR is computed, and if not, why.
    pub fn meteor_setup(&self) -> &MeteorSetup {
        &self.meteor_setup
    }

    /// The references.
    pub fn references(&self) -> &[Vec<String>] {
        &self.references
    }

    /// The references as pycocoevalcap tokenises them (input of METEOR, ROUGE-L and CIDEr).
    pub fn ptb_references(&self) -> &[Vec<String>] {
        &self.ptb_references
    }

    /// All five scores of `predictions` (one per reference segment, same order).
    pub fn score(&mut self, predictions: &[String]) -> Result<Scores, MetricsError> {
        check_pairing(predictions, &self.references)?;
        let bleu = self.bleu_refs.score(predictions).score;
        let nist = self.nist_refs.score(predictions);
        let hyps = ptb::coco_tokenize(predictions);
        let (rouge_l, _) = rouge::rouge_l_coco(&hyps, &self.ptb_references);
        let (cider, _) = self.cider_refs.score(&hyps);
        let meteor = match self.meteor.as_mut() {
            Some(m) => Some(m.score(&hyps, &self.ptb_references)?.0),
            None => None,
        };
        Ok(Scores { bleu, nist, meteor, rouge_l, cider })
    }
}

/// The e2e-metrics scores of `predictions` against `references` (one list of references per prediction).
pub fn evaluate(
    predictions: &[String],
    references: &[Vec<String>],
    options: &EvalOptions,
) -> Result<Scores, MetricsError> {
    check_pairing(predictions, references)?;
    Evaluator::new(references.to_vec(), options)?.score(predictions)
}

/// GEM-style DART scores: BLEU over all references and rouge-score ROUGE-L with jackknifing.
pub fn evaluate_dart(predictions: &[String], references: &[Vec<String>]) -> Result<DartScores, MetricsError> {
    check_pairing(predictions, references)?;
    Ok(DartScores {
        bleu: bleu::corpus_bleu(predictions, references).score,
        rouge_l: rouge::rouge_l_gem(predictions, references).0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keys_are_e2e_metrics_names() {
        let s = Scores { bleu: 0.5, nist: 7.0, meteor: None, rouge_l: 0.6, cider: 2.0 };
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(j, r#"{"BLEU":0.5,"NIST":7.0,"METEOR":null,"ROUGE_L":0.6,"CIDEr":2.0}"#);
    }

    #[test]
    fn evaluate_checks_pairing_and_perfect_match() {
        let refs = vec![vec!["a pub near the river .".to_string()], vec!["a cheap cafe".to_string()]];
        let opts = EvalOptions { meteor: MeteorMode::Disabled, ..Default::default() };
        let err = evaluate(&["x".to_string()], &refs, &opts).unwrap_err();
        assert!(matches!(err, MetricsError::CountMismatch { predictions: 1, segments: 2 }));
        let preds: Vec<String> = refs.iter().map(|r| r[0].clone()).collect();
        let s = evaluate(&preds, &refs, &opts).unwrap();
        assert!((s.bleu - 1.0).abs() < 1e-12 && (s.rouge_l - 1.0).abs() < 1e-12, "{s:?}");
        assert_eq!(s.meteor, None);
    }

    #[test]
    fn explicit_missing_jar_is_an_error() {
        let opts = EvalOptions { meteor: MeteorMode::Jar("/nonexistent/meteor-1.5.jar".into()), ..Default::default() };
        let err = evaluate(&["a".to_string()], &[vec!["a".to_string()]], &opts).unwrap_err();
        assert!(matches!(err, MetricsError::Meteor { .. }), "{err}");
    }
}
