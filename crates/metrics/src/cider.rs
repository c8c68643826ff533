//! CIDEr-D as pycocoevalcap computes it (`cider/cider_scorer.py`; Vedantam, Zitnick & Parikh 2015), which
//! e2e-metrics reports as CIDEr.
//!
//! On PTB-tokenised text ([`crate::ptb::coco_tokenize`]) split on whitespace, with `N` segments:
//! - n-gram counts for n = 1..4; document frequency `df(g)` = number of segments whose references contain `g`;
//! - tf-idf vectors `v_n(g) = c(g) · (ln N − ln max(1, df(g)))` for the hypothesis and each reference;
//! - per reference, `s_n = Σ_{g ∈ hyp} min(v_hyp(g), v_ref(g)) · v_ref(g) / (‖v_hyp‖ ‖v_ref‖)` (clipping; the
//!   division is skipped when a norm is 0), times the Gaussian length penalty `e^{−δ²/(2σ²)}`, σ = 6, where δ is
//!   the difference of the *bigram* counts of hypothesis and reference (the reference code's `length` adds the
//!   term frequencies of n-grams with index `n == 1`, i.e. bigrams, not the sentence lengths);
//! - segment score `10 · mean_n(Σ_refs s_n) / #refs`; corpus score = mean over segments.
//!
//! Floating-point operations follow the reference code's order (n-grams in first-occurrence order, numpy's
//! pairwise mean): on the E2E dev/test sets the scores are bit-identical; the asserted tolerance is 1e-9.

use crate::num::np_mean;
use crate::text::{ngram_counts, ngram_order, py_split, FxMap, FxSet, NGram, Vocab};

/// n-gram orders of CIDEr.
pub const N: usize = 4;
/// σ of the Gaussian length penalty.
pub const SIGMA: f64 = 6.0;

/// A tf-idf vector (n-grams in pycocoevalcap's `precook` order: orders ascending, first occurrence first), its
/// norm per order, and the bigram "length".
struct TfIdf {
    entries: Vec<(NGram, f64)>,
    lookup: FxMap<NGram, f64>,
    norm: [f64; N],
    length: f64,
}

fn counts2vec(counts: &[(NGram, u32)], df: &FxMap<NGram, f64>, ref_len: f64) -> TfIdf {
    let mut entries = Vec::with_capacity(counts.len());
    let mut norm = [0.0f64; N];
    let mut length = 0.0f64;
    for &(g, tf) in counts {
        let d = df.get(&g).copied().unwrap_or(0.0).max(1.0).ln();
        let n = ngram_order(g) - 1;
        let v = f64::from(tf) * (ref_len - d);
        norm[n] += v.powi(2);
        if n == 1 {
            length += f64::from(tf);
        }
        entries.push((g, v));
    }
    for x in &mut norm {
        *x = x.sqrt();
    }
    let lookup = entries.iter().copied().collect();
    TfIdf { entries, lookup, norm, length }
}

fn sim(hyp: &TfIdf, r: &TfIdf) -> [f64; N] {
    let delta = hyp.length - r.length;
    let mut val = [0.0f64; N];
    for &(g, vh) in &hyp.entries {
        let vr = r.lookup.get(&g).copied().unwrap_or(0.0);
        val[ngram_order(g) - 1] += vh.min(vr) * vr;
    }
    let penalty = std::f64::consts::E.powf(-(delta.powi(2)) / (2.0 * SIGMA.powi(2)));
    for (n, v) in val.iter_mut().enumerate() {
        if hyp.norm[n] != 0.0 && r.norm[n] != 0.0 {
            *v /= hyp.norm[n] * r.norm[n];
        }
        *v *= penalty;
    }
    val
}

/// The reference side of CIDEr-D (document frequencies and reference tf-idf vectors), reusable for several
/// systems scored against the same PTB-tokenised references.
pub struct CiderRefs {
    vocab: Vocab,
    df: FxMap<NGram, f64>,
    ref_len: f64,
    refs: Vec<Vec<TfIdf>>,
}

impl std::fmt::Debug for CiderRefs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CiderRefs").field("segments", &self.refs.len()).finish_non_exhaustive()
    }
}

impl CiderRefs {
    /// Document frequencies and tf-idf vectors of `references` (PTB-tokenised, one list per segment).
    pub fn new(references: &[Vec<String>]) -> Self {
        let mut vocab = Vocab::default();
        let counts: Vec<Vec<Vec<(NGram, u32)>>> = references
            .iter()
            .map(|rs| rs.iter().map(|r| ngram_counts(&vocab.ids(&py_split(r).collect::<Vec<_>>()), N)).collect())
            .collect();
        let mut df: FxMap<NGram, f64> = FxMap::default();
        for seg in &counts {
            let mut seen: FxSet<NGram> = FxSet::default();
            for r in seg {
                for &(g, _) in r {
                    if seen.insert(g) {
                        *df.entry(g).or_insert(0.0) += 1.0;
                    }
                }
            }
        }
        let ref_len = (counts.len() as f64).ln();
        let refs = counts.iter().map(|seg| seg.iter().map(|c| counts2vec(c, &df, ref_len)).collect()).collect();
        CiderRefs { vocab, df, ref_len, refs }
    }

    /// Corpus CIDEr-D of PTB-tokenised `candidates` (one per segment) and the per-segment scores.
    pub fn score(&mut self, candidates: &[String]) -> (f64, Vec<f64>) {
        assert_eq!(candidates.len(), self.refs.len(), "one candidate per reference segment");
        let scores: Vec<f64> = candidates
            .iter()
            .zip(&self.refs)
            .map(|(c, refs)| {
                let ids = self.vocab.ids(&py_split(c).collect::<Vec<_>>());
                let hyp = counts2vec(&ngram_counts(&ids, N), &self.df, self.ref_len);
                let mut score = [0.0f64; N];
                for r in refs {
                    let v = sim(&hyp, r);
                    for n in 0..N {
                        score[n] += v[n];
                    }
                }
                let mut avg = np_mean(&score);
                avg /= refs.len() as f64;
                avg * 10.0
            })
            .collect();
        (np_mean(&scores), scores)
    }
}

/// Corpus CIDEr-D of PTB-tokenised `candidates` against `references` (one list per candidate). Returns the mean
/// and the per-segment scores.
pub fn cider_d(candidates: &[String], references: &[Vec<String>]) -> (f64, Vec<f64>) {
    assert_eq!(candidates.len(), references.len(), "one reference list per candidate");
    CiderRefs::new(references).score(candidates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_two_segments() {
        // Segment 1: hyp "a b", ref "a b"; segment 2: hyp "c", ref "d". N = 2, ln N = ln 2.
        // df(a) = df(b) = df(a b) = 1, df(d) = 1, df(c) = 0 -> idf ln2 - ln1 = ln2 everywhere.
        // Seg 1: unigram vectors equal -> cosine 1; bigram "a b": cosine 1; orders 3,4 empty -> 0.
        // Length penalty: bigram counts equal -> 1. Score = 10 * (1 + 1 + 0 + 0) / 4 = 5.
        // Seg 2: no overlap -> 0. Corpus = 2.5.
        let (mean, per) = cider_d(&["a b".into(), "c".into()], &[vec!["a b".into()], vec!["d".into()]]);
        assert!((per[0] - 5.0).abs() < 1e-12, "{per:?}");
        assert_eq!(per[1], 0.0);
        assert!((mean - 2.5).abs() < 1e-12);
    }

    #[test]
    fn length_counts_bigrams() {
        // hyp "a b c" (2 bigrams) vs ref "a b c d" (3 bigrams): δ = −1 -> penalty e^{−1/72} on every order.
        let (_, per) = cider_d(&["a b c".into(), "x".into()], &[vec!["a b c d".into()], vec!["y".into()]]);
        // All weights are tf · ln 2 (df ≤ 1), so cosines are those of the raw counts.
        // Unigrams: hyp a,b,c (ln2 each), ref a,b,c,d: dot = 3 ln2², norms √3 ln2 and 2 ln2 -> 3/(2√3).
        // Bigrams: 2 shared of hyp 2 / ref 3 -> 2/(√2 √3). Trigrams: 1 shared, hyp 1 / ref 2 -> 1/√2. 4-grams: 0.
        let pen = (-1.0f64 / 72.0).exp();
        let expected =
            10.0 * pen * (3.0 / (2.0 * 3f64.sqrt()) + 2.0 / (2f64.sqrt() * 3f64.sqrt()) + 1.0 / 2f64.sqrt()) / 4.0;
        assert!((per[0] - expected).abs() < 1e-12, "{} vs {expected}", per[0]);
    }
}
