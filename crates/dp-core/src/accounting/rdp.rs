//! Rényi-DP accountant for subsampled Gaussian steps.
//!
//! Poisson sampling (add/remove-one): Mironov, Talwar & Zhang, "Rényi Differential Privacy of the Sampled
//! Gaussian Mechanism" (2019). With P = (1−q)·N(0, σ²) + q·N(1, σ²) and Q = N(0, σ²) (their Theorem 5:
//! this pair is the worst case), the RDP of order α is ε(α) = log A_α / (α − 1) with
//! - integer α (Sec. 3.2): A_α = Σ_{k=0}^{α} C(α,k) (1−q)^{α−k} q^k exp((k² − k)/(2σ²));
//! - fractional α (Sec. 3.3): A_α = A₀ + A₁, split at z₀ = σ² log(1/q − 1) + 1/2,
//!   A₀ = Σ_k C(α,k) q^k (1−q)^{α−k} e^{(k²−k)/(2σ²)} · ½ erfc((k − z₀)/(√2 σ)),
//!   A₁ = Σ_k C(α,k) q^{α−k} (1−q)^k e^{((α−k)²−(α−k))/(2σ²)} · ½ erfc((z₀ − (α−k))/(√2 σ)),
//!   summed in log space until both terms decrease and fall e^{−30} below the total. Binomial coefficients
//!   of fractional α alternate in sign past k = ⌈α⌉; the series is summed with those signs, which is the
//!   exact value (opacus does the same). dp-accounting sums absolute values instead, an upper bound (3%
//!   larger at order 1.5 for q = 0.01, σ = 2.5: python/oracles/rdp_exact.py); at integer orders the two
//!   agree exactly.
//!
//! Fixed-size batches without replacement (replace-one): Wang, Balle & Kasiviswanathan, "Subsampled
//! Rényi Differential Privacy and Analytical Moments Accountant" (2019), Theorem 27 for integer α, with
//! the cumulant K(α) = (α−1)ε(α) linearly interpolated between neighbouring integers for fractional α
//! (their Corollary 10; K is convex, so this is an upper bound). See [`super::event`] for why the noise
//! multiplier enters as σ/2.
//!
//! RDP composes by addition over steps. Conversion to (ε, δ): Balle et al. (2020), Proposition 12 /
//! Canonne, Kamath & Steinke (2020): ε = min_α [ r_α + log((α−1)/α) − (log δ + log α)/(α − 1) ], together
//! with δ ≤ sqrt(1 − e^{−r_α}) (ε = 0 when that already holds).

use std::f64::consts::{LN_2, SQRT_2};

use super::event::{History, Sampling};
use super::special::{log_add, log_binom_abs, log_erfc, log_sub_signed};
use super::{check_delta, AccountingError};

/// ε and the order that attains it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RdpEpsilon {
    /// ε at the requested δ.
    pub epsilon: f64,
    /// The best order α.
    pub order: f64,
}

/// An RDP accountant over a fixed list of orders.
#[derive(Clone, Debug, PartialEq)]
pub struct RdpAccountant {
    orders: Vec<f64>,
}

impl Default for RdpAccountant {
    fn default() -> Self {
        Self { orders: Self::default_orders() }
    }
}

impl RdpAccountant {
    /// Orders 1.1, 1.2, …, 10.9 and 12, 13, …, 63 (the paper's reference code's list; dp-accounting's
    /// default also has 11 and 128…1024, which can change ε in the fifth digit).
    pub fn default_orders() -> Vec<f64> {
        (11..110).map(|k| k as f64 / 10.0).chain((12..64).map(|k| k as f64)).collect()
    }

    /// An accountant over custom orders (each finite and > 1).
    pub fn new(orders: Vec<f64>) -> Result<Self, AccountingError> {
        if orders.is_empty() {
            return Err(AccountingError::invalid("orders", f64::NAN, "a non-empty list of numbers > 1"));
        }
        if let Some(&bad) = orders.iter().find(|a| !(a.is_finite() && **a > 1.0)) {
            return Err(AccountingError::invalid("orders", bad, "finite numbers > 1"));
        }
        Ok(Self { orders })
    }

    /// The orders.
    pub fn orders(&self) -> &[f64] {
        &self.orders
    }

    /// Total RDP of the history at each order.
    pub fn rdp(&self, history: &History) -> Vec<f64> {
        let mut total = vec![0.0; self.orders.len()];
        for event in history.events() {
            let steps = event.steps as f64;
            for (acc, &alpha) in total.iter_mut().zip(&self.orders) {
                let per_step = match event.sampling {
                    Sampling::Poisson { sample_rate } => rdp_poisson(sample_rate, event.noise_multiplier, alpha),
                    Sampling::FixedSize { .. } => {
                        rdp_fixed_size(event.sampling.sample_rate(), event.noise_multiplier / 2.0, alpha)
                    }
                };
                *acc += steps * per_step;
            }
        }
        total
    }

    /// ε at δ, with the best order.
    pub fn epsilon(&self, history: &History, delta: f64) -> Result<RdpEpsilon, AccountingError> {
        check_delta(delta)?;
        let (epsilon, order) = epsilon_from_rdp(&self.orders, &self.rdp(history), delta);
        Ok(RdpEpsilon { epsilon, order })
    }

    /// The smallest δ this accountant certifies at ε.
    pub fn delta(&self, history: &History, epsilon: f64) -> f64 {
        delta_from_rdp(&self.orders, &self.rdp(history), epsilon)
    }
}

/// RDP of one Poisson-subsampled Gaussian step at order α > 1 (q ∈ (0, 1], σ > 0).
pub fn rdp_poisson(q: f64, sigma: f64, alpha: f64) -> f64 {
    if q == 1.0 {
        return alpha / (2.0 * sigma * sigma);
    }
    let log_a = if alpha.fract() == 0.0 { log_a_int(q, sigma, alpha as u64) } else { log_a_frac(q, sigma, alpha) };
    log_a / (alpha - 1.0)
}

/// log A_α for integer α (Mironov et al. 2019, Sec. 3.2).
fn log_a_int(q: f64, sigma: f64, alpha: u64) -> f64 {
    let (log_q, log_1mq) = (q.ln(), (-q).ln_1p());
    let a = alpha as f64;
    let mut log_coef = 0.0; // log C(α, 0)
    let mut acc = f64::NEG_INFINITY;
    for k in 0..=alpha {
        let k = k as f64;
        acc = log_add(acc, log_coef + k * log_q + (a - k) * log_1mq + (k * k - k) / (2.0 * sigma * sigma));
        log_coef += (a - k).ln() - (k + 1.0).ln(); // C(α, k+1) = C(α, k)·(α − k)/(k + 1)
    }
    acc
}

/// log A_α for fractional α (Mironov et al. 2019, Sec. 3.3), summing the series with the signs of its
/// binomial coefficients (the exact value, as opacus computes it). Should round-off ever make the signed
/// total non-positive, the sum of absolute terms (an upper bound, as dp-accounting computes it) is used.
/// +∞ (order unusable) if the series has not converged after 1000 terms.
fn log_a_frac(q: f64, sigma: f64, alpha: f64) -> f64 {
    let (log_q, log_1mq) = (q.ln(), (-q).ln_1p());
    let z0 = sigma * sigma * (1.0 / q - 1.0).ln() + 0.5;
    let two_var = 2.0 * sigma * sigma;
    let zero = (f64::NEG_INFINITY, true);
    let (mut a0, mut a1) = (zero, zero);
    let mut abs_total = f64::NEG_INFINITY;
    let (mut last0, mut last1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let mut log_coef = 0.0; // log|C(α, 0)|
    for k in 0..1000u32 {
        let i = k as f64;
        let j = alpha - i;
        // C(α, i) < 0 when an odd number of the factors α − m, m < i, are negative.
        let positive = ((k as f64 - alpha.ceil()).max(0.0) as u64).is_multiple_of(2);
        let this_coef = log_coef;
        log_coef += (alpha - i).abs().ln() - (i + 1.0).ln(); // |C(α, i+1)| = |C(α, i)|·|α − i|/(i + 1)
        let log_coef = this_coef;
        let s0 =
            log_coef + i * log_q + j * log_1mq + (i * i - i) / two_var - LN_2 + log_erfc((i - z0) / (SQRT_2 * sigma));
        let s1 =
            log_coef + j * log_q + i * log_1mq + (j * j - j) / two_var - LN_2 + log_erfc((z0 - j) / (SQRT_2 * sigma));
        a0 = signed_log_add(a0, (s0, positive));
        a1 = signed_log_add(a1, (s1, positive));
        abs_total = log_add(abs_total, log_add(s0, s1));
        let total = signed_log_add(a0, a1);
        if s0 < last0 && s1 < last1 && s0.max(s1) < total.0 - 30.0 {
            if total.1 && total.0.is_finite() {
                return total.0;
            }
            log::warn!(
                "signed RDP series not positive at q={q}, sigma={sigma}, order={alpha}; using the absolute-value bound"
            );
            return abs_total;
        }
        (last0, last1) = (s0, s1);
    }
    // Near σ²·log(1/q − 1) ≈ log(1/q − 1) the terms decay only polynomially; such orders are left out
    // (ε from the others is still an upper bound), as dp-accounting does.
    log::debug!("RDP series did not converge at q={q}, sigma={sigma}, order={alpha}; order excluded");
    f64::INFINITY
}

/// (log|x + y|, x + y ≥ 0) for x, y given as (log|·|, sign).
fn signed_log_add(x: (f64, bool), y: (f64, bool)) -> (f64, bool) {
    if x.1 == y.1 {
        (log_add(x.0, y.0), x.1)
    } else {
        let (m, x_bigger) = log_sub_signed(x.0, y.0);
        (m, if x_bigger { x.1 } else { y.1 })
    }
}

/// RDP of one fixed-size (without replacement) subsampled Gaussian step under replace-one, with the
/// noise multiplier already relative to the replace-one sensitivity (Wang et al. 2019, Thm 27, Cor. 10).
pub fn rdp_fixed_size(q: f64, sigma: f64, alpha: f64) -> f64 {
    if q == 1.0 {
        return alpha / (2.0 * sigma * sigma);
    }
    if alpha.fract() == 0.0 {
        return cgf_fixed_size_int(q, sigma, alpha as u64) / (alpha - 1.0);
    }
    let (lo, hi) = (alpha.floor(), alpha.ceil());
    let t = alpha - lo;
    ((1.0 - t) * cgf_fixed_size_int(q, sigma, lo as u64) + t * cgf_fixed_size_int(q, sigma, hi as u64)) / (alpha - 1.0)
}

/// K(α) = log A_α for integer α: the bound of Wang et al. (2019), Theorem 27, for the Gaussian, whose
/// RDP is ε(j) = j/(2σ²) and ε(∞) = ∞:
/// A_α ≤ 1 + q² C(α,2) min{4(e^{ε(2)} − 1), 2e^{ε(2)}}
///         + Σ_{j=3}^{α} q^j C(α,j) min{4·sqrt(Δ^{2⌊j/2⌋} · Δ^{2⌈j/2⌉}), 2e^{(j−1)ε(j)}},
/// with Δ^m the m-th forward difference at 0 of the sequence e^{(ℓ−1)ε(ℓ)}, ℓ = 0, 1, … . Above α = 256
/// only the second argument of each min is used (O(α) instead of O(α²); still an upper bound).
fn cgf_fixed_size_int(q: f64, sigma: f64, alpha: u64) -> f64 {
    if alpha <= 1 {
        return 0.0;
    }
    let two_var = 2.0 * sigma * sigma;
    let cgf = |x: f64| x * (x + 1.0) / two_var; // (ℓ−1)·ε(ℓ) at ℓ = x + 1
    let eps2 = 2.0 / two_var;
    let log_em1_eps2 = eps2 + (-(-eps2).exp()).ln_1p(); // log(e^{ε(2)} − 1)
    let a = alpha as f64;
    let log_q = q.ln();
    let deltas = (alpha <= 256).then(|| log_forward_differences(&cgf, alpha as usize));
    let mut log_a = 0.0;
    for j in 2..=alpha {
        let jf = j as f64;
        let bound = if j == 2 {
            (4f64.ln() + log_em1_eps2).min(eps2 + LN_2)
        } else {
            let crude = LN_2 + cgf(jf - 1.0);
            match &deltas {
                Some(d) => {
                    let lo = d[(2 * (j / 2)) as usize - 1];
                    let hi = d[(2 * j.div_ceil(2)) as usize - 1];
                    (4f64.ln() + 0.5 * (lo + hi)).min(crude)
                }
                None => crude,
            }
        };
        log_a = log_add(log_a, bound + jf * log_q + log_binom_abs(a, jf));
    }
    log_a
}

/// log|Δ^m u₀| for m = 1, …, n + 2 (index m − 1), where u_ℓ = exp(log_u(ℓ − 1)), ℓ = 0, 1, …, n + 2, computed
/// by repeated differencing in signed log space (the plain sums cancel catastrophically).
fn log_forward_differences(log_u: &dyn Fn(f64) -> f64, n: usize) -> Vec<f64> {
    let len = n + 3;
    let mut mag: Vec<f64> = (0..len).map(|l| log_u(l as f64 - 1.0)).collect();
    let mut pos = vec![true; len];
    let mut out = Vec::with_capacity(n + 2);
    for order in 1..len {
        for j in 0..len - order {
            let (m, p) = if pos[j] == pos[j + 1] {
                let (m, bigger) = log_sub_signed(mag[j + 1], mag[j]);
                (m, if pos[j + 1] { bigger } else { !bigger })
            } else {
                (log_add(mag[j], mag[j + 1]), pos[j + 1])
            };
            mag[j] = m;
            pos[j] = p;
        }
        out.push(mag[0]);
    }
    out
}

/// ε at δ from RDP values, and the order attaining it.
pub fn epsilon_from_rdp(orders: &[f64], rdp: &[f64], delta: f64) -> (f64, f64) {
    let mut best = (f64::INFINITY, orders[0]);
    for (&a, &r) in orders.iter().zip(rdp) {
        let eps = if r <= 0.0 || delta * delta + (-r).exp_m1() > 0.0 {
            0.0 // δ ≥ sqrt(1 − e^{−KL}) ≥ total variation: (0, δ)-DP.
        } else if a > 1.01 {
            r + (-1.0 / a).ln_1p() - (delta * a).ln() / (a - 1.0)
        } else {
            f64::INFINITY
        };
        if eps < best.0 {
            best = (eps, a);
        }
    }
    (best.0.max(0.0), best.1)
}

/// The smallest δ certified at ε by RDP values (Balle et al. 2020, Prop. 12, and the KL bound).
pub fn delta_from_rdp(orders: &[f64], rdp: &[f64], epsilon: f64) -> f64 {
    let mut best = f64::INFINITY;
    for (&a, &r) in orders.iter().zip(rdp) {
        let mut log_delta = if r <= 0.0 { f64::NEG_INFINITY } else { 0.5 * (-(-r).exp()).ln_1p() };
        if a > 1.01 {
            log_delta = log_delta.min((a - 1.0) * (r - epsilon + (-1.0 / a).ln_1p()) - a.ln());
        }
        best = best.min(log_delta);
    }
    best.exp().min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounting::Event;

    fn eps(sigma: f64, q: f64, steps: u64, delta: f64) -> RdpEpsilon {
        RdpAccountant::default().epsilon(&History::single(Event::poisson(sigma, q, steps).unwrap()), delta).unwrap()
    }

    #[test]
    fn oracle_table_of_shared_docs() {
        // ../shared/docs/oracles.md, "RDP (best α)" column: orders 1.1…10.9, 12…63, improved conversion.
        let rows = [
            (1.1, 256.0 / 60000.0, 14063, 1e-5, 2.59666, 8.1),
            (1.1, 240.0 / 60000.0, 15000, 1e-5, 2.50287, 8.4),
            (1.5, 0.04, 2250, 1e-5, 7.329_111_171_43, 3.9),
            (1.3, 150.0 / 60000.0, 6000, 1e-5, 0.724_223_402_6, 19.0),
            (0.8, 0.005, 1000, 1e-6, 2.62654, 6.2),
            (1.0, 0.01, 1000, 1e-5, 2.10137, 7.8),
        ];
        for (sigma, q, t, delta, want, order) in rows {
            let got = eps(sigma, q, t, delta);
            // Printed to 5 decimals (or more), not always rounded: agree to one unit of the last digit.
            let digits = format!("{want}").split('.').nth(1).map_or(0, |d| d.len()) as i32;
            assert!((got.epsilon - want).abs() <= 10f64.powi(-digits), "{sigma} {q} {t}: {got:?} vs {want}");
            assert!((got.order - order).abs() < 1e-9, "{sigma} {q} {t}: order {} vs {order}", got.order);
        }
    }

    #[test]
    fn raw_rdp_matches_exact_integration() {
        // q = 0.01, σ = 2.5, 50 steps. Golden values from python/oracles/rdp_exact.py: the defining
        // integral by mpmath at 40 digits. At integer orders dp-accounting agrees to 1e-15; at 1.5 and
        // 2.5 it sums absolute terms and is 3% and 6e-5 higher (../shared/docs/oracles.md lists its
        // 6.70579741e-4 at order 1.5).
        let acc = RdpAccountant::new(vec![1.5, 2.5, 5.0, 50.0, 100.0]).unwrap();
        let rdp = acc.rdp(&History::single(Event::poisson(2.5, 0.01, 50).unwrap()));
        let exact = [
            0.000_650_070_897_186_738_7,
            0.001_085_418_056_917_401_5,
            0.002_180_756_562_307_339,
            0.023_846_037_538_705_726,
            167.416_307_548_418_25,
        ];
        for (g, w) in rdp.iter().zip(exact) {
            assert!((g - w).abs() <= 1e-9 * w, "{g} vs {w}");
        }
        assert!(rdp[0] < 6.70579741e-4, "below dp-accounting's absolute-value bound");
    }

    #[test]
    fn full_batch_is_the_gaussian_mechanism() {
        let acc = RdpAccountant::new(vec![2.0, 3.5]).unwrap();
        let rdp = acc.rdp(&History::single(Event::poisson(2.0, 1.0, 3).unwrap()));
        assert!((rdp[0] - 3.0 * 2.0 / 8.0).abs() < 1e-15 && (rdp[1] - 3.0 * 3.5 / 8.0).abs() < 1e-15);
    }

    #[test]
    fn fractional_orders_interpolate_integer_ones() {
        // RDP is non-decreasing in α: fractional values lie between their integer neighbours.
        for (q, s) in [(0.01, 1.0), (0.1, 0.8), (0.3, 3.0)] {
            let r2 = rdp_poisson(q, s, 2.0);
            let r25 = rdp_poisson(q, s, 2.5);
            let r3 = rdp_poisson(q, s, 3.0);
            assert!(r2 <= r25 * (1.0 + 1e-12) && r25 <= r3 * (1.0 + 1e-12), "{q} {s}: {r2} {r25} {r3}");
        }
    }

    #[test]
    fn forward_differences_of_a_known_sequence() {
        // u_ℓ = 2^ℓ (log_u(x) = (x+1)·ln 2): every forward difference at 0 is 1.
        let d = log_forward_differences(&|x| (x + 1.0) * LN_2, 6);
        assert_eq!(d.len(), 8);
        for v in d {
            assert!(v.abs() < 1e-12, "{v}");
        }
    }

    #[test]
    fn fixed_size_is_more_expensive_than_poisson_and_exact_at_q_one() {
        // Replace-one with sensitivity 2C: at q = 1 the RDP is α·4/(2σ²).
        let fixed = Sampling::FixedSize { dataset_size: 100, batch_size: 100 };
        let h = History::single(Event::new(2.0, fixed, 1).unwrap());
        let acc = RdpAccountant::new(vec![3.0]).unwrap();
        assert!((acc.rdp(&h)[0] - 3.0 * 4.0 / 8.0).abs() < 1e-15);
        let fixed = Sampling::FixedSize { dataset_size: 60000, batch_size: 256 };
        let h = History::single(Event::new(1.1, fixed, 1000).unwrap());
        let p = History::single(Event::poisson(1.1, 256.0 / 60000.0, 1000).unwrap());
        let acc = RdpAccountant::default();
        assert!(acc.epsilon(&h, 1e-5).unwrap().epsilon > acc.epsilon(&p, 1e-5).unwrap().epsilon);
    }

    #[test]
    fn delta_and_epsilon_are_inverse() {
        let acc = RdpAccountant::default();
        let h = History::single(Event::poisson(1.0, 0.01, 1000).unwrap());
        let e = acc.epsilon(&h, 1e-5).unwrap().epsilon;
        let d = acc.delta(&h, e);
        assert!((d - 1e-5).abs() < 1e-9, "{d}");
    }
}
