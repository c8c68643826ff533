//! ROUGE-L (Lin 2004): longest common subsequence recall and precision.
//!
//! Two definitions are in use for table-to-text:
//! - [`rouge_l_coco`]: pycocoevalcap `rouge/rouge.py`, which e2e-metrics reports as ROUGE_L. On PTB-tokenised text
//!   ([`crate::ptb::coco_tokenize`]), split on single spaces; per segment `P = max_r LCS/|hyp|`,
//!   `R = max_r LCS/|ref_r|` (maximised separately), `F = (1+β²)PR / (R + β²P)` with β = 1.2 (0 if P or R is 0);
//!   the corpus score is the mean over segments (numpy order).
//! - [`rouge_l_gem`]: rouge-score `RougeScorer(["rougeL"], use_stemmer=True)` (tokens `[a-z0-9]+` of the
//!   lower-cased text, Porter-stemmed when longer than 3 characters; `F = 2PR/(P+R)`), with GEM-metrics'
//!   multi-reference jackknifing: for k > 1 references, the best-F reference score of each leave-one-out subset,
//!   averaged over the k subsets; the corpus score is the mean F over segments.
//!   GEM-metrics first re-tokenises texts with NLTK `word_tokenize` (Punkt models), which splits contractions
//!   (`don't` → `do n't`, `cannot` → `can not`); this is not reproduced (raw text goes to rouge-score), so scores
//!   can differ from GEM-metrics on texts with such contractions.

use crate::num::np_mean;
use crate::porter;

/// Length of the longest common subsequence of two token sequences (O(|a|·|b|) time, O(min) memory).
pub fn lcs_len<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let (long, short) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    let mut prev = vec![0usize; short.len() + 1];
    let mut cur = vec![0usize; short.len() + 1];
    for x in long {
        for (j, y) in short.iter().enumerate() {
            cur[j + 1] = if x == y { prev[j] + 1 } else { prev[j + 1].max(cur[j]) };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[short.len()]
}

/// pycocoevalcap `Rouge.calc_score` for one segment on already tokenised strings (tokens split on `' '`, so an
/// empty string is one empty token, as in Python).
pub fn rouge_l_coco_segment(candidate: &str, references: &[String]) -> f64 {
    const BETA: f64 = 1.2;
    let c: Vec<&str> = candidate.split(' ').collect();
    let (mut p_max, mut r_max) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    for r in references {
        let r: Vec<&str> = r.split(' ').collect();
        let lcs = lcs_len(&r, &c) as f64;
        p_max = p_max.max(lcs / c.len() as f64);
        r_max = r_max.max(lcs / r.len() as f64);
    }
    if p_max != 0.0 && r_max != 0.0 {
        ((1.0 + BETA.powi(2)) * p_max * r_max) / (r_max + BETA.powi(2) * p_max)
    } else {
        0.0
    }
}

/// Corpus ROUGE-L of pycocoevalcap (mean of [`rouge_l_coco_segment`]) on PTB-tokenised candidates and
/// references. Returns the mean and the per-segment scores.
pub fn rouge_l_coco(candidates: &[String], references: &[Vec<String>]) -> (f64, Vec<f64>) {
    let per: Vec<f64> = candidates.iter().zip(references).map(|(c, r)| rouge_l_coco_segment(c, r)).collect();
    (np_mean(&per), per)
}

/// rouge-score's tokeniser with stemming: lower-case, every run of characters other than `[a-z0-9]` becomes a
/// separator, tokens longer than 3 characters are Porter-stemmed.
pub fn rouge_score_tokenize(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    lower
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .filter(|t| !t.is_empty())
        .map(|t| if t.len() > 3 { porter::stem(t) } else { t.to_string() })
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
        .collect()
}

/// Precision, recall and F of rouge-score's `_score_lcs` for token lists (all 0 if either is empty).
pub fn rouge_score_lcs(target: &[String], prediction: &[String]) -> (f64, f64, f64) {
    if target.is_empty() || prediction.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let lcs = lcs_len(target, prediction) as f64;
    let p = lcs / prediction.len() as f64;
    let r = lcs / target.len() as f64;
    let f = if p + r > 0.0 { 2.0 * p * r / (p + r) } else { 0.0 };
    (p, r, f)
}

/// GEM-metrics ROUGE-L for one segment: (precision, recall, F) after multi-reference jackknifing.
pub fn rouge_l_gem_segment(prediction: &str, references: &[String]) -> (f64, f64, f64) {
    let pred = rouge_score_tokenize(prediction);
    let scores: Vec<(f64, f64, f64)> =
        references.iter().map(|r| rouge_score_lcs(&rouge_score_tokenize(r), &pred)).collect();
    if scores.len() <= 1 {
        return scores.first().copied().unwrap_or((0.0, 0.0, 0.0));
    }
    let mut best: Vec<(f64, f64, f64)> = Vec::with_capacity(scores.len());
    for leave in 0..scores.len() {
        // Python max(key=F): the first maximal element.
        let mut b: Option<(f64, f64, f64)> = None;
        for (i, s) in scores.iter().enumerate() {
            if i != leave && b.is_none_or(|b| s.2 > b.2) {
                b = Some(*s);
            }
        }
        best.extend(b);
    }
    let p: Vec<f64> = best.iter().map(|s| s.0).collect();
    let r: Vec<f64> = best.iter().map(|s| s.1).collect();
    let f: Vec<f64> = best.iter().map(|s| s.2).collect();
    (np_mean(&p), np_mean(&r), np_mean(&f))
}

/// Corpus GEM-metrics ROUGE-L F (mean over segments, [0, 1] scale; GEM prints ×100) and per-segment F.
pub fn rouge_l_gem(predictions: &[String], references: &[Vec<String>]) -> (f64, Vec<f64>) {
    let per: Vec<f64> = predictions.iter().zip(references).map(|(p, r)| rouge_l_gem_segment(p, r).2).collect();
    (np_mean(&per), per)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lcs_small() {
        let a = ["a", "b", "c", "d"];
        let b = ["b", "x", "d", "a"];
        assert_eq!(lcs_len(&a, &b), 2);
        assert_eq!(lcs_len::<&str>(&[], &b), 0);
    }

    #[test]
    fn coco_rouge_hand_computed() {
        // hyp "a b c" (3); ref1 "a b" (LCS 2: P 2/3, R 1), ref2 "a x c d" (LCS 2: P 2/3, R 1/2).
        // P = 2/3, R = 1 -> F = 2.44 * (2/3) / (1 + 1.44 * 2/3).
        let f = rouge_l_coco_segment("a b c", &["a b".into(), "a x c d".into()]);
        let expected = (1.0 + 1.44) * (2.0 / 3.0) / (1.0 + 1.44 * (2.0 / 3.0));
        assert!((f - expected).abs() < 1e-15, "{f} vs {expected}");
        // Max precision and max recall may come from different references.
        let f = rouge_l_coco_segment("a b", &["a b c d".into(), "a".into()]);
        // ref1: LCS 2 -> P 1, R 1/2; ref2: LCS 1 -> P 1/2, R 1. P = 1, R = 1.
        assert!((f - 1.0).abs() < 1e-15);
        assert_eq!(rouge_l_coco_segment("", &["a".into()]), 0.0);
    }

    #[test]
    fn gem_jackknife() {
        // Three references with F = 1, 0.5 (hyp "a b" vs "a b c d": P 1, R 1/2 -> F 2/3) and 0.
        let refs: Vec<String> = vec!["a b".into(), "a b c d".into(), "x".into()];
        let (_, _, f) = rouge_l_gem_segment("a b", &refs);
        // Leave-one-out bests: {2/3, 0} -> 2/3; {1, 0} -> 1; {1, 2/3} -> 1. Mean = (2/3 + 2) / 3.
        assert!((f - (2.0 / 3.0 + 2.0) / 3.0).abs() < 1e-15, "{f}");
        assert_eq!(
            rouge_score_tokenize("The Eagle's restaurants, 5-star!"),
            ["the", "eagl", "s", "restaur", "5", "star"]
        );
    }
}
