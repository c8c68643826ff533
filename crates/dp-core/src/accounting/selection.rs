//! The privacy cost of hyperparameter search (Papernot & Steinke, ICLR 2022, "Hyperparameter Tuning with
//! Renyi Differential Privacy"): run a private training K times, K drawn at random, and release only the
//! best run. With K fixed the cost grows with K; with K random from one of these distributions it is the
//! single run's RDP plus a small term:
//! - truncated negative binomial (shape η ≥ 0, halting probability γ; η = 1 is the geometric, η = 0 the
//!   logarithmic distribution), their Theorem 2: ε'(λ) = ε(λ) + (1+η)·min_λ̂ [(1−1/λ̂) ε(λ̂) − ln(γ)/λ̂]
//!   + ln E[K]/(λ−1), then monotone in λ;
//! - Poisson with mean μ, their Theorem 6: ε'(λ) = ε(λ) + μ·δ(ε̂) + ln μ/(λ−1) with ε̂ = ln(1 + 1/(λ−1))
//!   and δ(ε̂) the single run's δ at ε̂ from its RDP curve.
//!
//! Checked against dp-accounting's `RepeatAndSelectDpEvent` in its RDP accountant
//! (`python/tests/test_accounting.py`).

use super::rdp::delta_from_rdp;
use super::AccountingError;

/// The distribution of the number of runs K.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RunCount {
    /// Poisson with this mean (conditioned on nothing: K = 0 releases nothing).
    Poisson {
        /// E[K].
        mean: f64,
    },
    /// Truncated negative binomial with shape η (1: geometric, 0: logarithmic) and this mean.
    TruncatedNegativeBinomial {
        /// η ≥ 0.
        shape: f64,
        /// E[K] ≥ 1.
        mean: f64,
    },
}

impl RunCount {
    /// E[K].
    pub fn mean(self) -> f64 {
        match self {
            Self::Poisson { mean } | Self::TruncatedNegativeBinomial { mean, .. } => mean,
        }
    }
}

/// (e^x − 1)/x, 1 at 0.
fn expm1_over_x(x: f64) -> f64 {
    if x.abs() < 1e-12 {
        1.0 + x / 2.0
    } else {
        x.exp_m1() / x
    }
}

/// ln(x)/(x − 1), 1 at 1.
fn ln_over_xm1(x: f64) -> f64 {
    let y = x - 1.0;
    if y.abs() < 1e-12 {
        1.0 - y / 2.0
    } else {
        y.ln_1p() / y
    }
}

/// E[K] of the truncated negative binomial with halting probability `gamma` ∈ (0, 1] and `shape` ≥ 0
/// (their Definition 1).
pub fn tnb_mean(gamma: f64, shape: f64) -> f64 {
    if shape == 1.0 {
        1.0 / gamma
    } else if shape == 0.0 {
        1.0 / (gamma * ln_over_xm1(gamma))
    } else {
        1.0 / (gamma * expm1_over_x(shape * gamma.ln()) * ln_over_xm1(gamma))
    }
}

/// The halting probability γ whose distribution has mean `mean` (bisection to 1e-9 relative, the
/// conservative — smaller — end).
pub fn tnb_gamma(shape: f64, mean: f64) -> f64 {
    if shape == 1.0 {
        return 1.0 / mean;
    }
    let (mut lo, mut hi) = (0.0f64, (2.0 * (shape + 1.0) / mean).min(1.0));
    while hi > lo * (1.0 + 1e-9) {
        let mid = 0.5 * (lo + hi);
        if tnb_mean(mid, shape) < mean {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    lo
}

/// RDP at `orders` of running the mechanism with RDP `rdp` K times and releasing only the best run.
pub fn repeat_and_select_rdp(orders: &[f64], rdp: &[f64], count: RunCount) -> Result<Vec<f64>, AccountingError> {
    if orders.len() != rdp.len() || orders.is_empty() {
        return Err(AccountingError::Invalid {
            name: "orders",
            value: orders.len() as f64,
            range: format!("one RDP value per order ({} given)", rdp.len()),
        });
    }
    let mean = count.mean();
    if !(mean.is_finite() && mean >= 1.0) {
        return Err(AccountingError::Invalid { name: "mean", value: mean, range: "a finite value ≥ 1".into() });
    }
    match count {
        RunCount::Poisson { mean } => Ok(orders
            .iter()
            .zip(rdp)
            .map(|(&a, &r)| {
                let eps_hat = (1.0 / (a - 1.0)).ln_1p();
                r + mean * delta_from_rdp(orders, rdp, eps_hat) + mean.ln() / (a - 1.0)
            })
            .collect()),
        RunCount::TruncatedNegativeBinomial { shape, mean } => {
            if !(shape.is_finite() && shape >= 0.0) {
                return Err(AccountingError::Invalid {
                    name: "shape",
                    value: shape,
                    range: "a finite value ≥ 0".into(),
                });
            }
            let gamma = tnb_gamma(shape, mean);
            let c = (1.0 + shape)
                * orders
                    .iter()
                    .zip(rdp)
                    .map(|(&a, &r)| (1.0 - 1.0 / a) * r - gamma.ln() / a)
                    .fold(f64::INFINITY, f64::min);
            let raw: Vec<f64> = orders.iter().zip(rdp).map(|(&a, &r)| r + mean.ln() / (a - 1.0) + c).collect();
            // RDP is monotone in the order: a lower order inherits any higher order's smaller bound.
            Ok(orders
                .iter()
                .map(|&a| {
                    orders.iter().zip(&raw).filter(|(&b, _)| b >= a).map(|(_, &v)| v).fold(f64::INFINITY, f64::min)
                })
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_geometric_mean_inverts_and_the_tnb_mean_matches_its_series() {
        assert!((tnb_gamma(1.0, 10.0) - 0.1).abs() < 1e-15);
        for (shape, mean) in [(0.0, 5.0), (0.5, 10.0), (2.0, 3.0)] {
            let g = tnb_gamma(shape, mean);
            assert!((tnb_mean(g, shape) / mean - 1.0).abs() < 1e-8, "{shape} {mean}");
        }
        // η = 2, γ = ½: P[K = k] ∝ C(k+1, k) (½)^k (1−γ)^k … the series Σ k P(k) by direct summation.
        let (shape, gamma) = (2.0f64, 0.5f64);
        let weight = |k: i32| (k as f64 + 1.0) * (1.0 - gamma).powi(k); // C(k+η−1, k) (1−γ)^k for η = 2
        let z: f64 = (1..200).map(weight).sum();
        let series: f64 = (1..200).map(|k| k as f64 * weight(k)).sum::<f64>() / z;
        assert!((tnb_mean(gamma, shape) - series).abs() < 1e-10, "{} vs {series}", tnb_mean(gamma, shape));
    }

    #[test]
    fn selection_costs_more_than_one_run_and_refuses_bad_settings() {
        let orders = [2.0, 4.0, 8.0, 16.0];
        let rdp = [0.1, 0.2, 0.4, 0.8];
        for count in [RunCount::Poisson { mean: 10.0 }, RunCount::TruncatedNegativeBinomial { shape: 1.0, mean: 10.0 }]
        {
            let out = repeat_and_select_rdp(&orders, &rdp, count).unwrap();
            assert!(out.iter().zip(&rdp).all(|(o, r)| o > r), "{count:?}: {out:?}");
        }
        assert!(repeat_and_select_rdp(&orders, &rdp, RunCount::Poisson { mean: 0.5 }).is_err());
        assert!(repeat_and_select_rdp(&orders, &rdp[..2], RunCount::Poisson { mean: 2.0 }).is_err());
    }
}
