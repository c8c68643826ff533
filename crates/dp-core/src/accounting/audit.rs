//! One-run privacy auditing (Steinke, Nasr & Jagielski, NeurIPS 2023, "Privacy Auditing with One (1)
//! Training Run"): m canaries, each included in training independently with probability ½; after one
//! run every canary gets a score (higher: more likely included). An auditor that guesses "in" for the r
//! highest-scoring canaries and abstains on the rest has, under (ε, δ)-DP, a number of correct guesses
//! stochastically dominated by Binomial(r, e^ε/(1+e^ε)) up to a δ term (their Theorem 3.1 / Prop. 5.2).
//! The empirical lower bound is the largest ε that the observed count rejects at the confidence level.
//!
//! As jax-privacy's `CanaryScoreAuditor.epsilon_one_run` (the oracle, `python/tests/test_audit.py`):
//! one-sided guesses (k₋ = 0), every threshold on the Pareto frontier of (false negatives, true
//! negatives) tried, with a Bonferroni correction over them.

use super::AccountingError;

/// ln P[Binomial(n, q) = k].
fn ln_binom_pmf(n: u64, k: u64, q: f64) -> f64 {
    let (n, k) = (n as f64, k as f64);
    let ln_choose = libm::lgamma(n + 1.0) - libm::lgamma(k + 1.0) - libm::lgamma(n - k + 1.0);
    ln_choose + k * q.ln() + (n - k) * (-q).ln_1p()
}

/// P[Binomial(n, q) ≥ k] (1 for k ≤ 0), summed in log space from the top so that small tails keep
/// their relative precision.
pub fn binom_tail(n: u64, k: i64, q: f64) -> f64 {
    if k <= 0 {
        return 1.0;
    }
    let k = k as u64;
    if k > n {
        return 0.0;
    }
    if q >= 1.0 {
        return 1.0;
    }
    if q <= 0.0 {
        return 0.0;
    }
    let terms: Vec<f64> = (k..=n).map(|j| ln_binom_pmf(n, j, q)).collect();
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln()).min(0.0).exp()
}

/// The p-value of `n_correct` of `n_guess` guesses about `m` canaries under an (ε, δ)-DP null.
pub fn one_run_p_value(m: u64, n_guess: u64, n_correct: u64, epsilon: f64, delta: f64) -> f64 {
    let q = 1.0 / (1.0 + (-epsilon).exp());
    let beta = binom_tail(n_guess, n_correct as i64, q);
    if delta == 0.0 {
        return beta;
    }
    let alpha = (1..=n_correct)
        .map(|i| (binom_tail(n_guess, n_correct as i64 - i as i64, q) - beta) / i as f64)
        .fold(0.0, f64::max);
    (beta + alpha * delta * 2.0 * m as f64).min(1.0)
}

/// The largest ε ≥ `eps_lo` whose (ε, δ) claim the counts reject at `significance`, or `eps_lo` when
/// none does; to 1e-9 absolute (bisection).
pub fn epsilon_one_run(eps_lo: f64, m: u64, n_guess: u64, n_correct: u64, significance: f64, delta: f64) -> f64 {
    let rejects = |eps: f64| one_run_p_value(m, n_guess, n_correct, eps, delta) < significance;
    if !rejects(eps_lo) {
        return eps_lo;
    }
    let (mut lo, mut hi) = (eps_lo, (2.0 * eps_lo).max(1.0));
    while rejects(hi) {
        lo = hi;
        hi *= 2.0;
        if hi > 1e3 {
            return lo;
        }
    }
    while hi - lo > 1e-9 {
        let mid = 0.5 * (lo + hi);
        if rejects(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// The result of auditing canary scores.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct OneRunAudit {
    /// The empirical lower bound on ε.
    pub epsilon_lower_bound: f64,
    /// Guesses ("in") at the chosen threshold.
    pub guesses: u64,
    /// Correct ones among them.
    pub correct: u64,
    /// Thresholds tried (the Bonferroni factor).
    pub thresholds: usize,
}

/// Audits the scores of included (`in_scores`) and excluded (`out_scores`) canaries at `confidence`
/// for a claimed δ.
pub fn audit_one_run(
    in_scores: &[f64],
    out_scores: &[f64],
    confidence: f64,
    delta: f64,
) -> Result<OneRunAudit, AccountingError> {
    if in_scores.is_empty() || out_scores.is_empty() {
        return Err(AccountingError::Invalid {
            name: "canaries",
            value: (in_scores.len().min(out_scores.len())) as f64,
            range: "at least one included and one excluded canary".into(),
        });
    }
    if !(confidence > 0.0 && confidence < 1.0) {
        return Err(AccountingError::Invalid { name: "confidence", value: confidence, range: "(0, 1)".into() });
    }
    if !(delta > 0.0 && delta <= 1.0) {
        return Err(AccountingError::Invalid { name: "delta", value: delta, range: "(0, 1]".into() });
    }
    if in_scores.iter().chain(out_scores).any(|s| !s.is_finite()) {
        return Err(AccountingError::Invalid { name: "canary score", value: f64::NAN, range: "finite values".into() });
    }
    let frontier = frontier_counts(in_scores, out_scores);
    let (n_pos, n_neg) = (in_scores.len() as u64, out_scores.len() as u64);
    let m = n_pos + n_neg;
    let significance = (1.0 - confidence) / frontier.len() as f64;
    let mut best = OneRunAudit { epsilon_lower_bound: 0.0, guesses: 0, correct: 0, thresholds: frontier.len() };
    let mut best_q = 0.5;
    for &(fn_count, tn_count) in &frontier {
        let (tp, fp) = (n_pos - fn_count, n_neg - tn_count);
        let guesses = tp + fp;
        if guesses == 0 || (tp as f64) / (guesses as f64) <= best_q {
            continue;
        }
        let eps = epsilon_one_run(best.epsilon_lower_bound, m, guesses, tp, significance, delta);
        if eps > best.epsilon_lower_bound {
            best = OneRunAudit { epsilon_lower_bound: eps, guesses, correct: tp, thresholds: frontier.len() };
            best_q = 1.0 / (1.0 + (-eps).exp());
        }
    }
    Ok(best)
}

/// (false negatives, true negatives) when guessing "in" for scores ≥ t, at every distinct score and +∞,
/// reduced to the points not weakly dominated by a segment between two others (the thresholds a
/// rational auditor would use; their count is the Bonferroni factor).
fn frontier_counts(in_scores: &[f64], out_scores: &[f64]) -> Vec<(u64, u64)> {
    let mut ins = in_scores.to_vec();
    let mut outs = out_scores.to_vec();
    ins.sort_by(f64::total_cmp);
    outs.sort_by(f64::total_cmp);
    let mut thresholds: Vec<f64> = ins.iter().chain(&outs).copied().collect();
    thresholds.sort_by(f64::total_cmp);
    thresholds.dedup();
    thresholds.push(f64::INFINITY);
    let below = |sorted: &[f64], t: f64| sorted.partition_point(|&x| x < t) as u64;
    let points: Vec<(u64, u64)> = thresholds.iter().map(|&t| (below(&ins, t), below(&outs, t))).collect();
    // Drop points on or below the chord of their neighbours until none is (x = false negatives, sorted).
    let mut keep: Vec<usize> = (0..points.len()).collect();
    loop {
        if keep.len() <= 2 {
            break;
        }
        let mut next = vec![keep[0]];
        let mut dropped = false;
        for w in keep.windows(3) {
            let (a, b, c) = (points[w[0]], points[w[1]], points[w[2]]);
            let (d1x, d1y) = (b.0 as f64 - a.0 as f64, b.1 as f64 - a.1 as f64);
            let (d2x, d2y) = (c.0 as f64 - b.0 as f64, c.1 as f64 - b.1 as f64);
            if d1y * d2x - d2y * d1x <= 0.0 {
                dropped = true;
            } else {
                next.push(w[1]);
            }
        }
        next.push(*keep.last().expect("≥ 3 points"));
        keep = next;
        if !dropped {
            break;
        }
    }
    keep.into_iter().map(|i| points[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binomial_tails_by_hand() {
        // P[Bin(3, ½) ≥ 2] = 4/8; P[Bin(4, 0.3) ≥ 4] = 0.3⁴.
        assert!((binom_tail(3, 2, 0.5) - 0.5).abs() < 1e-15);
        assert!((binom_tail(4, 4, 0.3) - 0.0081).abs() < 1e-16);
        assert_eq!((binom_tail(5, 0, 0.2), binom_tail(5, 6, 0.2)), (1.0, 0.0));
    }

    #[test]
    fn perfect_separation_gives_a_large_bound_and_chance_gives_none() {
        let ins: Vec<f64> = (0..500).map(|i| 1000.0 + i as f64).collect();
        let outs: Vec<f64> = (0..500).map(|i| i as f64).collect();
        let a = audit_one_run(&ins, &outs, 0.95, 1e-5).unwrap();
        assert!(a.epsilon_lower_bound > 3.0, "{a:?}");
        assert_eq!(a.correct, a.guesses);
        // Interleaved scores: nothing to learn.
        let ins: Vec<f64> = (0..500).map(|i| (2 * i) as f64).collect();
        let outs: Vec<f64> = (0..500).map(|i| (2 * i + 1) as f64).collect();
        assert_eq!(audit_one_run(&ins, &outs, 0.95, 1e-5).unwrap().epsilon_lower_bound, 0.0);
        assert!(audit_one_run(&[], &outs, 0.95, 1e-5).is_err());
        assert!(audit_one_run(&ins, &outs, 1.0, 1e-5).is_err());
    }
}
