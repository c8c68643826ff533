//! Corpus NIST (N = 5) as e2e-metrics computes it with `mteval-v13a-sig.pl` (Doddington 2002).
//!
//! Definition (mteval-v13a subs `compute_ngram_info`, `score_segment`, `nist_score`, `nist_length_penalty`):
//! - texts are 13a-tokenised ([`tokenize_13a`]) and lower-cased ASCII-only (Perl `tr/[A-Z]/[a-z]/`);
//! - information weights from the n-gram counts `C(·)` over *all* references of the corpus:
//!   `info(w₁…wₙ) = log₂( C(w₁…wₙ₋₁) / C(w₁…wₙ) )`, with `C(empty prefix)` = the total number of reference
//!   words; as in Perl, a prefix that is the single token `"0"` is false and also uses the total word count;
//! - per segment, each hypothesis n-gram `g` found in some reference adds `info(g) · min(c_hyp(g), max_r c_r(g))`
//!   to `I_n`; `L_n = Σ max(0, |hyp| − n + 1)`;
//! - `NIST = LP · Σ_{n=1..5} I_n / max(L_n, 1)`, `LP = exp(−β ln²(L_1 / L̄_ref))` for a ratio in (0, 1)
//!   (1 at ≥ 1, 0 at ≤ 0), `β = −ln 0.5 / ln² 1.5`;
//! - `L̄_ref`, the "average reference length", is mteval's `ref_words / nsys`: e2e-metrics writes one reference
//!   "system" per reference index, padding segments that have fewer references with empty ones, so
//!   `nsys` = the largest number of references of any segment.
//!
//! This is the Perl script's NIST ([`crate::NistVariant::Mteval13a`]). The paper's numbers come from e2e-metrics'
//! Python re-implementation instead ([`crate::pymteval`], the default), which differs in tokenisation and in the
//! average reference length whenever segments have different numbers of references.
//!
//! Oracle: `python/oracles/nist_reference.py`, written from the Perl source; agreement 1e-9 (relative).

use serde::Serialize;

use crate::text::{
    ngram_counts, ngram_first, ngram_order, ngram_prefix, tokenize_13a, FxMap, NGram, Vocab, Whitespace,
};

/// Maximum n-gram order of NIST.
pub const MAX_ORDER: usize = 5;

/// Statistics and score of corpus NIST.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NistScore {
    /// NIST score (sum over n = 1..5 of the information gain per hypothesis n-gram, times the length penalty).
    pub score: f64,
    /// Matched information `I_n`, orders 1..=5.
    pub info: [f64; MAX_ORDER],
    /// Hypothesis n-gram counts `L_n`, orders 1..=5.
    pub sys_ngrams: [u64; MAX_ORDER],
    /// System length / average reference length.
    pub length_ratio: f64,
    /// Length penalty.
    pub length_penalty: f64,
}

/// mteval-v13a tokenisation with its ASCII-only lower-casing.
pub fn nist_tokenize(text: &str) -> Vec<String> {
    tokenize_13a(&text.to_ascii_lowercase(), Whitespace::Perl)
}

/// β of the NIST length penalty: the penalty is 0.5 when the system is 2/3 of the reference length.
pub fn beta() -> f64 {
    -(0.5f64.ln()) / 1.5f64.ln() / 1.5f64.ln()
}

/// NIST length penalty `exp(−β ln² ratio)` for a ratio in (0, 1) (mteval `nist_length_penalty`).
pub fn length_penalty(ratio: f64) -> f64 {
    if ratio >= 1.0 {
        1.0
    } else if ratio <= 0.0 {
        0.0
    } else {
        (-beta() * ratio.ln() * ratio.ln()).exp()
    }
}

/// Corpus NIST-5 of `predictions` against `references`. Panics if the lengths differ.
pub fn corpus_nist(predictions: &[String], references: &[Vec<String>]) -> NistScore {
    assert_eq!(predictions.len(), references.len(), "one reference list per prediction");
    NistRefs::new(references).score(predictions)
}

/// The reference side of NIST (corpus n-gram counts for the information weights, per-segment maximum counts,
/// reference lengths), reusable for several systems.
#[derive(Debug)]
pub struct NistRefs {
    vocab: Vocab,
    corpus_counts: FxMap<NGram, u64>,
    ref_words: u64,
    segments: Vec<FxMap<NGram, u32>>,
    /// Largest reference count of a segment (mteval's `nsys` on e2e-metrics' padded files).
    nsys: usize,
}

impl NistRefs {
    /// Tokenise and count `references` (one list per segment).
    pub fn new(references: &[Vec<String>]) -> Self {
        let mut vocab = Vocab::default();
        let refs: Vec<Vec<Vec<u32>>> =
            references.iter().map(|rs| rs.iter().map(|r| vocab.ids(&nist_tokenize(r))).collect()).collect();
        // Corpus-wide reference n-gram counts (mteval counts up to 9-grams; only orders ≤ 5 are ever used).
        let mut corpus_counts: FxMap<NGram, u64> = FxMap::default();
        let mut ref_words = 0u64;
        let mut segments = Vec::with_capacity(refs.len());
        for rs in &refs {
            let mut ref_max: FxMap<NGram, u32> = FxMap::default();
            for r in rs {
                ref_words += r.len() as u64;
                for (g, c) in ngram_counts(r, MAX_ORDER) {
                    *corpus_counts.entry(g).or_insert(0) += u64::from(c);
                    let e = ref_max.entry(g).or_insert(0);
                    *e = (*e).max(c);
                }
            }
            segments.push(ref_max);
        }
        let nsys = references.iter().map(Vec::len).max().unwrap_or(0);
        NistRefs { vocab, corpus_counts, ref_words, segments, nsys }
    }

    /// mteval's information weight of an n-gram found in the references.
    fn info(&self, g: NGram, zero_id: Option<u32>) -> f64 {
        let count = self.corpus_counts[&g] as f64;
        let prefix = ngram_prefix(g);
        let n_prefix = ngram_order(prefix);
        // Perl: `$mgram ? count/C(mgram) : count/tot_wrds`; the string "0" is false in Perl.
        let denom = if n_prefix == 0 || (n_prefix == 1 && Some(ngram_first(prefix)) == zero_id) {
            self.ref_words as f64
        } else {
            self.corpus_counts[&prefix] as f64
        };
        -(count / denom).ln() / 2f64.ln()
    }

    /// Corpus NIST-5 of `predictions` (one per segment). Panics if the count differs.
    pub fn score(&mut self, predictions: &[String]) -> NistScore {
        assert_eq!(predictions.len(), self.segments.len(), "one prediction per reference segment");
        let hyps: Vec<Vec<u32>> = predictions.iter().map(|h| self.vocab.ids(&nist_tokenize(h))).collect();
        let zero_id = self.vocab.get("0");
        let mut info = [0.0f64; MAX_ORDER];
        let mut sys_ngrams = [0u64; MAX_ORDER];
        for (hyp, ref_max) in hyps.iter().zip(&self.segments) {
            for (n, l) in sys_ngrams.iter_mut().enumerate() {
                *l += hyp.len().saturating_sub(n) as u64;
            }
            for (g, c) in ngram_counts(hyp, MAX_ORDER) {
                if let Some(&m) = ref_max.get(&g) {
                    info[ngram_order(g) - 1] += self.info(g, zero_id) * f64::from(c.min(m));
                }
            }
        }
        let avg_ref_len = self.ref_words as f64 / self.nsys as f64;
        let length_ratio = sys_ngrams[0] as f64 / avg_ref_len;
        let length_penalty = length_penalty(length_ratio);
        let sum: f64 = info.iter().zip(&sys_ngrams).map(|(&i, &l)| i / l.max(1) as f64).sum();
        NistScore { score: sum * length_penalty, info, sys_ngrams, length_ratio, length_penalty }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(v: &[&[&str]]) -> Vec<Vec<String>> {
        v.iter().map(|seg| seg.iter().map(|r| r.to_string()).collect()).collect()
    }

    #[test]
    fn beta_halves_at_two_thirds() {
        assert!((length_penalty(2.0 / 3.0) - 0.5).abs() < 1e-15);
        assert_eq!(length_penalty(1.2), 1.0);
        assert_eq!(length_penalty(0.0), 0.0);
    }

    #[test]
    fn hand_computed() {
        // Refs (whole corpus): "a b" and "a c" (one segment), total words 4; C(a)=2, C(b)=1, C(c)=1,
        // C(a b)=1, C(a c)=1. Hyp "a b": info(a) = log2(4/2) = 1, info(b) = log2(4/1) = 2,
        // info(a b) = log2(C(a)/C(a b)) = 1. I_1 = 3 over L_1 = 2, I_2 = 1 over L_2 = 1 -> 2.5.
        // Length: 2 / (4 words / 2 refs) = 1 -> LP 1.
        let s = corpus_nist(&["A b".into()], &refs(&[&["a b", "a c"]]));
        assert!((s.score - 2.5).abs() < 1e-12, "{s:?}");
        assert_eq!(s.sys_ngrams, [2, 1, 0, 0, 0]);
    }

    #[test]
    fn padded_reference_count_sets_the_average_length() {
        // Segment 1 has 2 refs of length 3, segment 2 one ref of length 3: ref words 9, nsys 2 -> 4.5;
        // hyps total 2 words -> ratio 2/4.5 (pymteval's per-segment means would give 3 + 3 = 6).
        let r = refs(&[&["x y z", "x y w"], &["u v t"]]);
        let p = vec!["x".to_string(), "u".to_string()];
        let a = corpus_nist(&p, &r);
        assert!((a.length_ratio - 2.0 / 4.5).abs() < 1e-15);
        assert!((a.length_penalty - length_penalty(2.0 / 4.5)).abs() < 1e-15);
    }

    #[test]
    fn perl_false_zero_prefix() {
        // Bigram "0 x": prefix "0" is false in Perl, so the denominator is the total word count (3), not C(0).
        let s = corpus_nist(&["0 x".into()], &refs(&[&["0 x y"]]));
        // info(0) = log2(3/1), info(x) = log2(3/1), info(0 x) = log2(3/1) (quirk; else log2(1/1) = 0).
        let l3 = 3f64.log2();
        let expected = (2.0 * l3) / 2.0 + l3 / 1.0;
        let lp = length_penalty(2.0 / 3.0);
        assert!((s.score - expected * lp).abs() < 1e-12, "{} vs {}", s.score, expected * lp);
    }
}
