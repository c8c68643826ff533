//! Corpus BLEU-4 as e2e-metrics reports it (Papineni et al. 2002; mteval-v13a, case-insensitive).
//!
//! Definition (mteval-v13a / sacrebleu `BLEU.compute_bleu` with `smooth_method="exp"`):
//! - every text is lower-cased (Python `str.lower`) and tokenised with [`tokenize_13a`];
//! - per segment, `correct_n += Σ_g min(c_hyp(g), max_r c_r(g))` over the hypothesis n-grams `g` of order `n`,
//!   `total_n += max(0, |hyp| − n + 1)`, `c = Σ |hyp|`, `r = Σ` the reference length closest to `|hyp|`
//!   (the shorter one on ties);
//! - `p_n = correct_n / total_n`, or `1 / (2^k · total_n)` for the k-th order with no match (mteval smoothing);
//! - `BLEU = BP · exp(¼ Σ_{n≤4} ln p_n)`, `BP = exp(1 − r/c)` if `c < r`, else 1.
//!
//! Scale [0, 1] (e2e-metrics prints mteval's fraction). The oracle is
//! `sacrebleu.corpus_bleu(hyps, refs_padded_with_None, lowercase=True, tokenize="13a").score / 100`; this module
//! does the same floating-point operations in the same order (agreement to 1e-9 is asserted in
//! `python/tests/test_metrics.py`).

use serde::Serialize;

use crate::text::{ngram_counts, ngram_order, tokenize_13a, FxMap, NGram, Vocab, Whitespace};

/// Maximum n-gram order of BLEU-4.
pub const MAX_ORDER: usize = 4;

/// Sufficient statistics and score of corpus BLEU.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BleuScore {
    /// BLEU on the [0, 1] scale.
    pub score: f64,
    /// Clipped n-gram matches, orders 1..=4.
    pub correct: [u64; MAX_ORDER],
    /// Hypothesis n-grams, orders 1..=4.
    pub total: [u64; MAX_ORDER],
    /// Total hypothesis length `c` (tokens).
    pub sys_len: u64,
    /// Total closest-reference length `r` (tokens).
    pub ref_len: u64,
    /// Brevity penalty.
    pub bp: f64,
}

/// Lower-case (Python `str.lower`, here `str::to_lowercase`) and 13a-tokenise, as sacrebleu with
/// `lowercase=True, tokenize="13a"` does (it also right-strips first, which the tokeniser makes moot).
pub fn bleu_tokenize(text: &str) -> Vec<String> {
    tokenize_13a(&text.to_lowercase(), Whitespace::Python)
}

/// Corpus BLEU-4 of `predictions` against `references` (one list of references per prediction; lists may
/// differ in length). Panics if the lengths differ; [`crate::evaluate`] checks them first.
pub fn corpus_bleu(predictions: &[String], references: &[Vec<String>]) -> BleuScore {
    assert_eq!(predictions.len(), references.len(), "one reference list per prediction");
    BleuRefs::new(references).score(predictions)
}

/// The reference side of BLEU (per segment: the maximum count of each n-gram over the references and the
/// reference lengths), reusable for several systems.
#[derive(Debug)]
pub struct BleuRefs {
    vocab: Vocab,
    segments: Vec<(FxMap<NGram, u32>, Vec<usize>)>,
}

impl BleuRefs {
    /// Tokenise and count `references` (one list per segment).
    pub fn new(references: &[Vec<String>]) -> Self {
        let mut vocab = Vocab::default();
        let segments = references
            .iter()
            .map(|rs| {
                let mut ref_max: FxMap<NGram, u32> = FxMap::default();
                let mut lens = Vec::with_capacity(rs.len());
                for r in rs {
                    let r = vocab.ids(&bleu_tokenize(r));
                    lens.push(r.len());
                    for (g, c) in ngram_counts(&r, MAX_ORDER) {
                        let e = ref_max.entry(g).or_insert(0);
                        *e = (*e).max(c);
                    }
                }
                (ref_max, lens)
            })
            .collect();
        BleuRefs { vocab, segments }
    }

    /// Corpus BLEU of `predictions` (one per segment). Panics if the count differs.
    pub fn score(&mut self, predictions: &[String]) -> BleuScore {
        assert_eq!(predictions.len(), self.segments.len(), "one prediction per reference segment");
        let mut correct = [0u64; MAX_ORDER];
        let mut total = [0u64; MAX_ORDER];
        let (mut sys_len, mut ref_len) = (0u64, 0u64);
        for (hyp, (ref_max, lens)) in predictions.iter().zip(&self.segments) {
            let hyp = self.vocab.ids(&bleu_tokenize(hyp));
            for (g, c) in ngram_counts(&hyp, MAX_ORDER) {
                let n = ngram_order(g) - 1;
                total[n] += u64::from(c);
                if let Some(&m) = ref_max.get(&g) {
                    correct[n] += u64::from(c.min(m));
                }
            }
            sys_len += hyp.len() as u64;
            ref_len += closest_ref_len(hyp.len(), lens.iter().copied()) as u64;
        }
        compute_bleu(correct, total, sys_len, ref_len)
    }
}

/// The reference length closest to `hyp_len`, the shorter one on ties (sacrebleu `_get_closest_ref_len`,
/// mteval `brevity_penalty_closest`).
pub fn closest_ref_len(hyp_len: usize, ref_lens: impl IntoIterator<Item = usize>) -> usize {
    let mut best: Option<(usize, usize)> = None; // (diff, len)
    for len in ref_lens {
        let diff = hyp_len.abs_diff(len);
        best = match best {
            None => Some((diff, len)),
            Some((d, l)) if diff < d || (diff == d && len < l) => Some((diff, len)),
            keep => keep,
        };
    }
    best.map_or(0, |(_, len)| len)
}

/// BLEU from its sufficient statistics with mteval's "exp" smoothing (sacrebleu `BLEU.compute_bleu`,
/// `smooth_method="exp"`, `effective_order=False`), divided by 100.
pub fn compute_bleu(correct: [u64; MAX_ORDER], total: [u64; MAX_ORDER], sys_len: u64, ref_len: u64) -> BleuScore {
    let bp = if sys_len < ref_len {
        if sys_len > 0 {
            (1.0 - ref_len as f64 / sys_len as f64).exp()
        } else {
            0.0
        }
    } else {
        1.0
    };
    let mut out = BleuScore { score: 0.0, correct, total, sys_len, ref_len, bp };
    if correct.iter().all(|&c| c == 0) {
        return out;
    }
    let mut precisions = [0.0f64; MAX_ORDER];
    let mut smooth = 1.0f64;
    for n in 0..MAX_ORDER {
        if total[n] == 0 {
            break;
        }
        precisions[n] = if correct[n] == 0 {
            smooth *= 2.0;
            100.0 / (smooth * total[n] as f64)
        } else {
            100.0 * correct[n] as f64 / total[n] as f64
        };
    }
    // sacrebleu's my_log floors log(0) at -9999999999.
    let log_sum: f64 = precisions.iter().map(|&p| if p == 0.0 { -9_999_999_999.0 } else { p.ln() }).sum();
    out.score = bp * (log_sum / MAX_ORDER as f64).exp() / 100.0;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(v: &[&[&str]]) -> Vec<Vec<String>> {
        v.iter().map(|seg| seg.iter().map(|r| r.to_string()).collect()).collect()
    }

    #[test]
    fn identical_is_one() {
        let p = vec!["The cat sat on the mat.".to_string()];
        let b = corpus_bleu(&p, &refs(&[&["the cat sat on the mat ."]]));
        assert!((b.score - 1.0).abs() < 1e-15, "{b:?}");
    }

    #[test]
    fn hand_computed_with_clipping_and_brevity() {
        // hyp "the the cat" vs refs "the cat sat" / "a cat": unigrams: the×2 clipped to 1, cat 1 -> 2/3;
        // bigrams: "the the" 0, "the cat" 1 -> 1/2; trigrams: 0/1 -> smoothed 1/(2·1); 4-grams: total 0 -> log
        // floor, so BLEU = 0 up to exp(-9999999999/4).
        let b = corpus_bleu(&["the the cat".into()], &refs(&[&["the cat sat", "a cat"]]));
        assert_eq!(b.correct, [2, 1, 0, 0]);
        assert_eq!(b.total, [3, 2, 1, 0]);
        assert_eq!((b.sys_len, b.ref_len), (3, 3));
        assert_eq!(b.score, 0.0);
        // Two segments so that all orders have totals: hyp1 "a b c d" == ref, hyp2 "a b" vs ref "a b c d e".
        let b = corpus_bleu(&["a b c d".into(), "a b".into()], &refs(&[&["a b c d"], &["a b c d e"]]));
        assert_eq!(b.correct, [6, 4, 2, 1]);
        assert_eq!(b.total, [6, 4, 2, 1]);
        assert_eq!((b.sys_len, b.ref_len), (6, 9));
        let expected = (1.0f64 - 9.0 / 6.0).exp();
        assert!((b.score - expected).abs() < 1e-15, "{} vs {expected}", b.score);
    }

    #[test]
    fn closest_length_prefers_shorter_on_ties() {
        assert_eq!(closest_ref_len(7, [11, 8, 6, 7]), 7);
        assert_eq!(closest_ref_len(7, [11, 8, 6]), 6);
        assert_eq!(closest_ref_len(7, [8, 6]), 6);
    }

    #[test]
    fn smoothing_of_zero_matches() {
        // correct [1, 0, 0, 0] of totals [2, 1, 1, 1]: p = 50, 100/2, 100/4, 100/8 (percent).
        let b = compute_bleu([1, 0, 0, 0], [2, 1, 1, 1], 2, 2);
        let expected = ((50.0f64).ln() + 50.0f64.ln() + 25.0f64.ln() + 12.5f64.ln()) / 4.0;
        assert!((b.score - expected.exp() / 100.0).abs() < 1e-15);
    }
}
