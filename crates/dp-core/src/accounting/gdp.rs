//! Gaussian-DP accountant by the central limit theorem (Bu, Dong, Long & Su, "Deep Learning with Gaussian
//! Differential Privacy", 2020, Theorem 5 / Corollary 5.4).
//!
//! T Poisson-subsampled Gaussian steps are asymptotically μ-GDP with μ = q·sqrt(T·(e^{1/σ²} − 1)); a
//! history composes as μ² = Σ_i q_i² T_i (e^{1/σ_i²} − 1). μ-GDP gives, for every ε ≥ 0,
//! δ(ε) = Φ(−ε/μ + μ/2) − e^ε Φ(−ε/μ − μ/2) (Dong, Roth & Su 2019, Corollary 2.13), inverted here by
//! bisection. **This is an approximation**: for small T or large q it can report a smaller ε than the
//! run spent. dpft prints it only next to a sound accountant and always with that warning.

use super::event::{History, Sampling};
use super::special::{log_norm_cdf, norm_cdf};
use super::{check_delta, AccountingError};

/// The warning printed with every GDP figure.
pub const GDP_WARNING: &str =
    "GDP (central limit theorem) is an approximation that can under-estimate epsilon; do not report it as a guarantee";

/// The CLT Gaussian-DP accountant (Poisson sampling only).
#[derive(Clone, Copy, Debug, Default)]
pub struct GdpAccountant;

impl GdpAccountant {
    /// μ of the history.
    pub fn mu(&self, history: &History) -> Result<f64, AccountingError> {
        let mut mu2 = 0.0;
        for e in history.events() {
            let Sampling::Poisson { sample_rate: q } = e.sampling else {
                return Err(AccountingError::UnsupportedSampling { accountant: "gdp" });
            };
            let s2 = e.noise_multiplier * e.noise_multiplier;
            mu2 += q * q * e.steps as f64 * (1.0 / s2).exp_m1();
        }
        Ok(mu2.sqrt())
    }

    /// ε at δ (approximate; see the module documentation).
    pub fn epsilon(&self, history: &History, delta: f64) -> Result<f64, AccountingError> {
        check_delta(delta)?;
        Ok(epsilon_for_mu(self.mu(history)?, delta))
    }
}

/// δ(ε) of μ-GDP.
pub fn delta_for_mu(mu: f64, epsilon: f64) -> f64 {
    if mu == 0.0 {
        return 0.0;
    }
    if mu.is_infinite() {
        return 1.0;
    }
    let a = norm_cdf(-epsilon / mu + mu / 2.0);
    let b = (epsilon + log_norm_cdf(-epsilon / mu - mu / 2.0)).exp();
    (a - b).max(0.0)
}

/// ε at δ for μ-GDP: the root of δ(ε) = δ (δ(ε) decreases in ε), found by bisection to 1e-12 relative.
pub fn epsilon_for_mu(mu: f64, delta: f64) -> f64 {
    if delta_for_mu(mu, 0.0) <= delta {
        return 0.0;
    }
    if mu.is_infinite() {
        return f64::INFINITY;
    }
    let mut hi = 1.0;
    while delta_for_mu(mu, hi) > delta {
        hi *= 2.0;
        if hi > 1e6 {
            return f64::INFINITY;
        }
    }
    let mut lo = 0.0;
    while hi - lo > 1e-12 * hi {
        let mid = 0.5 * (lo + hi);
        if delta_for_mu(mu, mid) > delta {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounting::Event;

    #[test]
    fn oracle_table_of_shared_docs() {
        // ../shared/docs/oracles.md, "GDP (CLT)" column, printed to 5 decimals.
        let rows = [
            (1.1, 256.0 / 60000.0, 14063, 1e-5, 2.32436),
            (1.1, 240.0 / 60000.0, 15000, 1e-5, 2.24166),
            (1.5, 0.04, 2250, 1e-5, 6.60157),
            (1.3, 150.0 / 60000.0, 6000, 1e-5, 0.62300),
            (0.8, 0.005, 1000, 1e-6, 1.32453),
            (1.0, 0.01, 1000, 1e-5, 1.61771),
        ];
        for (sigma, q, t, delta, want) in rows {
            let h = History::single(Event::poisson(sigma, q, t).unwrap());
            let got = GdpAccountant.epsilon(&h, delta).unwrap();
            assert!((got - want).abs() <= 5e-6, "{sigma} {q} {t}: {got} vs {want}");
        }
    }

    #[test]
    fn delta_curve_is_inverted() {
        for mu in [0.1, 0.5, 1.0, 3.0] {
            let e = epsilon_for_mu(mu, 1e-5);
            assert!((delta_for_mu(mu, e) - 1e-5).abs() < 1e-12, "{mu}");
        }
        assert_eq!(epsilon_for_mu(0.0, 1e-5), 0.0);
    }

    #[test]
    fn refuses_fixed_size_sampling() {
        let fixed = Sampling::FixedSize { dataset_size: 100, batch_size: 10 };
        let h = History::single(Event::new(1.0, fixed, 10).unwrap());
        assert_eq!(GdpAccountant.epsilon(&h, 1e-5), Err(AccountingError::UnsupportedSampling { accountant: "gdp" }));
    }
}
