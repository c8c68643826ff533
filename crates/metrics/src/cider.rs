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
//! pairwise mean), so scores agree to ~1e-15; the asserted tolerance is 1e-9.

use crate::num::np_mean;
use crate::text::{py_split, FxMap, FxSet, Vocab};

/// n-gram orders of CIDEr.
pub const N: usize = 4;
/// σ of the Gaussian length penalty.
pub const SIGMA: f64 = 6.0;

/// N-gram counts in first-occurrence order (order 1 first), as pycocoevalcap's `precook` builds its dict.
fn precook(tokens: &[u32]) -> Vec<(Vec<u32>, u32)> {
    let mut index: FxMap<&[u32], usize> = FxMap::default();
    let mut out: Vec<(Vec<u32>, u32)> = Vec::new();
    for k in 1..=N {
        for w in tokens.windows(k) {
            match index.get(w) {
                Some(&i) => out[i].1 += 1,
                None => {
                    index.insert(w, out.len());
                    out.push((w.to_vec(), 1));
                }
            }
        }
    }
    out
}

/// A tf-idf vector per order, its norms, and the bigram "length".
struct TfIdf {
    vec: [FxMap<Vec<u32>, f64>; N],
    order: Vec<(usize, Vec<u32>)>,
    norm: [f64; N],
    length: f64,
}

fn counts2vec(counts: &[(Vec<u32>, u32)], df: &FxMap<Vec<u32>, f64>, ref_len: f64) -> TfIdf {
    let mut vec: [FxMap<Vec<u32>, f64>; N] = Default::default();
    let mut order = Vec::with_capacity(counts.len());
    let mut norm = [0.0f64; N];
    let mut length = 0.0f64;
    for (g, tf) in counts {
        let d = df.get(g).copied().unwrap_or(0.0).max(1.0).ln();
        let n = g.len() - 1;
        let v = f64::from(*tf) * (ref_len - d);
        norm[n] += v.powi(2);
        if n == 1 {
            length += f64::from(*tf);
        }
        vec[n].insert(g.clone(), v);
        order.push((n, g.clone()));
    }
    for x in &mut norm {
        *x = x.sqrt();
    }
    TfIdf { vec, order, norm, length }
}

fn sim(hyp: &TfIdf, r: &TfIdf) -> [f64; N] {
    let delta = hyp.length - r.length;
    let mut val = [0.0f64; N];
    for (n, g) in &hyp.order {
        let vh = hyp.vec[*n][g];
        let vr = r.vec[*n].get(g).copied().unwrap_or(0.0);
        val[*n] += vh.min(vr) * vr;
    }
    for n in 0..N {
        if hyp.norm[n] != 0.0 && r.norm[n] != 0.0 {
            val[n] /= hyp.norm[n] * r.norm[n];
        }
        val[n] *= std::f64::consts::E.powf(-(delta.powi(2)) / (2.0 * SIGMA.powi(2)));
    }
    val
}

/// Corpus CIDEr-D of PTB-tokenised `candidates` against `references` (one list per candidate). Returns the mean
/// and the per-segment scores.
pub fn cider_d(candidates: &[String], references: &[Vec<String>]) -> (f64, Vec<f64>) {
    assert_eq!(candidates.len(), references.len(), "one reference list per candidate");
    let mut vocab = Vocab::default();
    let mut cook = |s: &str| {
        let toks: Vec<&str> = py_split(s).collect();
        precook(&vocab.ids(&toks))
    };
    let ctest: Vec<_> = candidates.iter().map(|c| cook(c)).collect();
    let crefs: Vec<Vec<_>> = references.iter().map(|rs| rs.iter().map(|r| cook(r)).collect()).collect();
    let mut df: FxMap<Vec<u32>, f64> = FxMap::default();
    for refs in &crefs {
        let mut seen: FxSet<&Vec<u32>> = FxSet::default();
        for r in refs {
            for (g, _) in r {
                if seen.insert(g) {
                    *df.entry(g.clone()).or_insert(0.0) += 1.0;
                }
            }
        }
    }
    let ref_len = (crefs.len() as f64).ln();
    let scores: Vec<f64> = ctest
        .iter()
        .zip(&crefs)
        .map(|(test, refs)| {
            let hyp = counts2vec(test, &df, ref_len);
            let mut score = [0.0f64; N];
            for r in refs {
                let v = sim(&hyp, &counts2vec(r, &df, ref_len));
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
