//! Corpus NIST-5 as the paper's evaluation computed it: e2e-metrics' Python re-implementation of mteval
//! (`metrics/pymteval.py`, `measure_scores.py --python`; tuetschek/e2e-metrics @1b9c4d8), which is also
//! GEM-metrics' NIST (the paper's DART numbers).
//!
//! It differs from the Perl script ([`crate::nist`]) in four ways, all kept here on purpose:
//! - its own tokeniser ([`tokenize`]: the Moses/mteval regexes as ported to Python), and Python's Unicode
//!   `str.lower()` on every token instead of Perl's ASCII-only `tr/A-Z/a-z/`;
//! - the average reference length of the length penalty is Σ over segments of that segment's *mean*
//!   reference length, not total reference words / the largest reference count (they differ as soon as
//!   segments have different numbers of references, as E2E's do);
//! - the number of hypothesis n-grams of a segment is `|hyp| − n + 1` without a floor at 0, so a hypothesis
//!   shorter than n subtracts; and an empty text is one empty token (`"".split(" ") == [""]`);
//! - no special case for a prefix that is the string `"0"` (a Perl truthiness quirk).
//!
//! Definition (Doddington 2002, as pymteval's `NISTScore` accumulates it), with counts `C(·)` over all
//! references of the corpus and `C(())` = the total number of reference tokens:
//! `info(w₁…wₙ) = log₂(C(w₁…wₙ₋₁) / C(w₁…wₙ))`; per segment each hypothesis n-gram `g` adds
//! `info(g) · min(c_hyp(g), max_r c_r(g))` to `I_n`; `NIST = LP · Σ_{n=1..5} I_n / L_n` (0 when some
//! `L_n` is 0), `LP = exp(−β ln²(L_1 / L̄_ref))` for a ratio in (0, 1).
//!
//! Oracle: `python/tests/test_metrics.py` runs pymteval itself (the copy in PyPI's `gem-metrics-fork`,
//! loaded by path) on the real E2E dev and test sets; agreement 1e-9 relative.

use std::sync::LazyLock;

use regex::Regex;

use crate::nist::{length_penalty, NistScore, MAX_ORDER};
use crate::text::{ngram_counts, ngram_order, ngram_prefix, FxMap, NGram, Vocab};

/// One regex rewrite of pymteval's `tokenize`, applied with Python `re.sub` semantics (leftmost, non-overlapping).
struct Rewrite {
    pattern: Regex,
    replacement: &'static str,
}

/// pymteval's `tokenize` steps, in order (the language-independent SGML clean-up, then the Western-language
/// punctuation rules). Python's `\1` becomes `${1}`.
static REWRITES: LazyLock<Vec<Rewrite>> = LazyLock::new(|| {
    [
        (r"<skipped>", ""),
        (r"-\n", ""),
        (r"\n", " "),
        (r"&quot;", "\""),
        (r"&amp;", "&"),
        (r"&lt;", "<"),
        (r"&gt;", ">"),
        // Punctuation and symbols: { | } ~  [ \ ] ^ _ `  space ! " # $ % &  ( ) * +  : ; < = > ? @  /
        (r"([\{-~\[-` -\&\(-\+:-@/])", " ${1} "),
        // Period and comma, unless preceded by a digit ...
        (r"([^0-9])([\.,])", "${1} ${2} "),
        // ... unless followed by a digit.
        (r"([\.,])([^0-9])", " ${1} ${2}"),
        // A dash after a digit.
        (r"([0-9])(-)", "${1} ${2} "),
        (r"\s+", " "),
    ]
    .into_iter()
    .map(|(p, replacement)| Rewrite { pattern: Regex::new(p).expect("pymteval regexes compile"), replacement })
    .collect()
});

/// pymteval's `NGramScore.tokenize`, then Python's `str.lower()` per token (the default case-insensitive
/// matching). An empty or blank text gives one empty token, as `"".split(" ")` does in Python.
pub fn tokenize(text: &str) -> Vec<String> {
    let mut s = format!(" {text} ");
    // The SGML steps come before the padding in pymteval; none of them involves the padding spaces.
    for r in REWRITES.iter() {
        s = r.pattern.replace_all(&s, r.replacement).into_owned();
    }
    s.trim().split(' ').map(str::to_lowercase).collect()
}

/// The reference side of pymteval's NIST, reusable for several systems.
#[derive(Debug)]
pub struct PymtevalNistRefs {
    vocab: Vocab,
    /// `C(g)` for every reference n-gram, orders 1..=5.
    corpus_counts: FxMap<NGram, u64>,
    /// `C(())`: all reference tokens.
    ref_tokens: u64,
    /// Per segment, the largest count of each n-gram in any one reference.
    segments: Vec<FxMap<NGram, u32>>,
    /// Σ over segments of the mean reference length.
    avg_ref_len: f64,
}

impl PymtevalNistRefs {
    /// Tokenise and count `references` (one non-empty list per segment).
    pub fn new(references: &[Vec<String>]) -> Self {
        let mut vocab = Vocab::default();
        let mut corpus_counts: FxMap<NGram, u64> = FxMap::default();
        let mut ref_tokens = 0u64;
        let mut avg_ref_len = 0.0f64;
        let mut segments = Vec::with_capacity(references.len());
        for rs in references {
            let mut ref_max: FxMap<NGram, u32> = FxMap::default();
            let mut segment_tokens = 0u64;
            for r in rs {
                let ids = vocab.ids(&tokenize(r));
                segment_tokens += ids.len() as u64;
                for (g, c) in ngram_counts(&ids, MAX_ORDER) {
                    *corpus_counts.entry(g).or_insert(0) += u64::from(c);
                    let e = ref_max.entry(g).or_insert(0);
                    *e = (*e).max(c);
                }
            }
            ref_tokens += segment_tokens;
            if !rs.is_empty() {
                avg_ref_len += segment_tokens as f64 / rs.len() as f64;
            }
            segments.push(ref_max);
        }
        PymtevalNistRefs { vocab, corpus_counts, ref_tokens, segments, avg_ref_len }
    }

    /// `info(g) = log₂(C(prefix) / C(g))` of an n-gram found in the references.
    fn info(&self, g: NGram) -> f64 {
        let count = self.corpus_counts[&g] as f64;
        let prefix = ngram_prefix(g);
        let denom = if ngram_order(prefix) == 0 { self.ref_tokens as f64 } else { self.corpus_counts[&prefix] as f64 };
        (denom / count).log2()
    }

    /// Corpus NIST-5 of `predictions` (one per segment). Panics if the count differs.
    pub fn score(&mut self, predictions: &[String]) -> NistScore {
        assert_eq!(predictions.len(), self.segments.len(), "one prediction per reference segment");
        let hyps: Vec<Vec<u32>> = predictions.iter().map(|h| self.vocab.ids(&tokenize(h))).collect();
        let mut info = [0.0f64; MAX_ORDER];
        // Signed: pymteval counts len(hyp) - n without a floor.
        let mut lens = [0i64; MAX_ORDER];
        for (hyp, ref_max) in hyps.iter().zip(&self.segments) {
            for (n, l) in lens.iter_mut().enumerate() {
                *l += hyp.len() as i64 - n as i64;
            }
            for (g, c) in ngram_counts(hyp, MAX_ORDER) {
                if let Some(&m) = ref_max.get(&g) {
                    info[ngram_order(g) - 1] += self.info(g) * f64::from(c.min(m));
                }
            }
        }
        let length_ratio = lens[0] as f64 / self.avg_ref_len;
        let length_penalty = length_penalty(length_ratio);
        let score = if lens.contains(&0) {
            0.0
        } else {
            length_penalty * info.iter().zip(&lens).map(|(&i, &l)| i / l as f64).sum::<f64>()
        };
        let sys_ngrams = lens.map(|l| l.max(0) as u64);
        NistScore { score, info, sys_ngrams, length_ratio, length_penalty }
    }
}

/// Corpus NIST-5 of `predictions` against `references` as pymteval computes it. Panics if the lengths differ.
pub fn corpus_nist(predictions: &[String], references: &[Vec<String>]) -> NistScore {
    PymtevalNistRefs::new(references).score(predictions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(v: &[&[&str]]) -> Vec<Vec<String>> {
        v.iter().map(|seg| seg.iter().map(|r| r.to_string()).collect()).collect()
    }

    #[test]
    fn tokenizer_follows_the_python_regexes() {
        // Values worked by hand through the regexes: a dash after a digit is split off; a period or comma
        // stays inside a number (digits on both sides) and is split off otherwise.
        assert_eq!(tokenize("The Eagle, a pub."), ["the", "eagle", ",", "a", "pub", "."]);
        assert_eq!(tokenize("costs £20-25 (cheap)"), ["costs", "£20", "-", "25", "(", "cheap", ")"]);
        assert_eq!(tokenize("rated 5."), ["rated", "5", "."]);
        assert_eq!(tokenize("3.5, x&amp;y"), ["3.5", ",", "x", "&", "y"]);
        assert_eq!(tokenize("   "), [""]);
        assert_eq!(tokenize("CAFÉ"), ["café"]);
    }

    #[test]
    fn hand_computed() {
        // Refs "a b", "a c" (one segment): C(())=4, C(a)=2, C(b)=1, C(a b)=1. Hyp "a b": I_1 = 1 + 2,
        // L_1 = 2; I_2 = log2(2/1) = 1, L_2 = 1; L_3..5 = 0, -1, -2: L_3 = 0 -> pymteval returns 0.
        let r = refs(&[&["a b", "a c"]]);
        assert_eq!(corpus_nist(&["A b".into()], &r).score, 0.0);
        // Two segments, hypotheses of 5 tokens each, so every L_n > 0: refs "a b c d e" (seg 1) and
        // "f g h i j" (seg 2), hyps equal to the refs. Each n-gram occurs once: info(unigram) = log2(10),
        // info(n >= 2) = log2(1/1) = 0. I_1 = 10 log2(10) over L_1 = 10; LP = 1.
        let r = refs(&[&["a b c d e"], &["f g h i j"]]);
        let p: Vec<String> = vec!["a b c d e".into(), "f g h i j".into()];
        let s = corpus_nist(&p, &r);
        assert!((s.score - 10f64.log2()).abs() < 1e-12, "{s:?}");
        assert_eq!(s.sys_ngrams, [10, 8, 6, 4, 2]);
    }

    #[test]
    fn average_reference_length_is_the_sum_of_segment_means() {
        // Segment 1: refs of 3 and 5 tokens (mean 4); segment 2: one ref of 6 tokens. L̄ = 10 (mteval: 14 / 2 = 7).
        let r = refs(&[&["a b c", "a b c d e"], &["u v w x y z"]]);
        let p: Vec<String> = vec!["a b c d e".into(), "u v w x y".into()];
        let s = corpus_nist(&p, &r);
        assert!((s.length_ratio - 1.0).abs() < 1e-15, "{s:?}");
        assert_eq!(s.length_penalty, 1.0);
        let shorter = corpus_nist(&["a b c d e".into(), "u v".into()], &r);
        assert!((shorter.length_ratio - 0.7).abs() < 1e-15);
        assert!((shorter.length_penalty - length_penalty(0.7)).abs() < 1e-15);
    }

    #[test]
    fn short_hypotheses_subtract_from_the_ngram_counts() {
        // Hyp lengths 6 and 1: L_2 = 5 + 0, L_3 = 4 + (-1), L_5 = 2 + (-3) = -1 (pymteval has no floor;
        // `sys_ngrams` reports it floored at 0).
        let r = refs(&[&["a b c d e f"], &["g"]]);
        let s = corpus_nist(&["a b c d e f".into(), "g".into()], &r);
        // Every unigram occurs once among 7 reference tokens: I_1 = 7 log2 7 over L_1 = 7; higher orders
        // have info 0 (each n-gram and its prefix occur once).
        let expected = 7f64.log2();
        assert!((s.score - expected).abs() < 1e-12, "{} vs {expected}", s.score);
        assert_eq!(s.sys_ngrams, [7, 5, 3, 1, 0]);
    }
}
