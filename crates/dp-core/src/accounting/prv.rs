//! PRV accountant: numerical composition of privacy random variables (Gopi, Lee & Wutschitz, "Numerical
//! Composition of Differential Privacy", NeurIPS 2021). Li et al. (2022) report ε from this accounting.
//!
//! For a dominating pair (P, Q) the privacy random variable is Y = log(P(X)/Q(X)), X ~ P, and
//! δ(ε) = E[(1 − e^{ε − Y})₊]; composition adds independent PRVs. For one Poisson-subsampled Gaussian step
//! the pairs are P = (1−q)N(0,σ²) + qN(1,σ²) against Q = N(0,σ²) ("remove") and Q against P ("add");
//! both are composed and the larger ε is reported. With ℓ(x) = log(1 − q + q·e^{(2x−1)/(2σ²)}) and
//! x(t) = σ²·log((e^t − 1 + q)/q) + ½, the CDFs are
//! - remove: F(t) = (1−q)Φ(x(t)/σ) + qΦ((x(t) − 1)/σ) for t > log(1−q), else 0;
//! - add:    F(t) = Φ(−x(−t)/σ) for t < −log(1−q), else 1.
//!
//! Algorithm (Gopi et al., Alg. 1 and Thm 5.5), with the error budget made explicit:
//! 1. Mesh h = ε_r·sqrt(2/(k·log(2/δ_h))) for k steps in all. Each step's PRV is cut to [a, b] (mass
//!    outside ≤ δ_err/(16k) per step, counted exactly) and discretised onto the grid jh: the mass of
//!    ((j−½)h, (j+½)h] sits at jh + s, the shift s making the discrete mean equal the continuous one
//!    (integrated by Gauss–Legendre quadrature in x, where the integrand is smooth).
//!    Then Ỹ − Y lies in an interval of width h with mean 0, and by Hoeffding the summed error exceeds ε_r
//!    with probability at most δ_h = δ_err/4.
//! 2. The k-fold sum is computed by FFT on a periodic window [L_lo, L_hi]. Mass outside the window wraps
//!    around; it is bounded by Chernoff bounds from the RDP of the same history (Mironov et al. 2019,
//!    Thm 5 makes the RDP bound both directions): P(ΣY > t) ≤ e^{λR(λ+1) − λt} and
//!    P(ΣY < −t) ≤ e^{(λ−1)R(λ) − λt}, each made ≤ δ_err/8.
//! 3. With δ̃ the curve of the discrete sum and δ_f the sum of all the failure probabilities above (plus
//!    twice the mass of negative round-off in the inverse FFT), for every ε:
//!    δ̃(ε + ε_r) − δ_f ≤ δ(ε) ≤ δ̃(ε − ε_r) + δ_f. Hence
//!    lower = ε̃(δ + δ_f) − ε_r ≤ ε(δ) ≤ upper = ε̃(δ − δ_f) + ε_r, and estimate = ε̃(δ).
//!
//! 4. FFT round-off: the composition puts at most `tail` mass below the lower Chernoff bound, so the
//!    largest |value| the FFT leaves in [L_lo, L_lo + ε_r] measures its round-off level ν per point; ν
//!    times the number of grid points above 0, plus any negative values there, joins δ_f. When δ_f would
//!    exceed δ/2 the accountant refuses with an error rather than return a bound it cannot back.
//!
//! ε_r is 0.9·eps_error and δ_err defaults to δ/10⁴, so upper − lower stays within 2·eps_error unless
//! the round-off term matters (very small δ with very many steps), where the interval widens honestly.
//! The FFT is `realfft` (over `rustfft`).

use std::f64::consts::PI;

use rayon::prelude::*;
use realfft::num_complex::Complex;
use realfft::RealFftPlanner;

use super::event::{History, Sampling};
use super::rdp::RdpAccountant;
use super::special::{log_add, norm_cdf};
use super::{check_delta, AccountingError};

/// Largest FFT grid (points); each point costs about 40 bytes across the buffers.
const MAX_POINTS: usize = 1 << 26;

/// Lower bound, estimate and upper bound of ε at a δ.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PrvEpsilon {
    /// A value ε is certainly not below.
    pub lower: f64,
    /// The discretised composition's ε (no error margin).
    pub estimate: f64,
    /// A sound upper bound: the value to report.
    pub upper: f64,
}

/// The PRV accountant with its error parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PrvAccountant {
    eps_error: f64,
    delta_error: Option<f64>,
}

impl Default for PrvAccountant {
    fn default() -> Self {
        Self { eps_error: 0.01, delta_error: None }
    }
}

/// Which of the two dominating pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    Remove,
    Add,
}

/// The PRV of one Poisson-subsampled Gaussian step.
#[derive(Clone, Copy, Debug)]
struct SubsampledGaussian {
    q: f64,
    sigma: f64,
    direction: Direction,
}

impl SubsampledGaussian {
    /// x(t) = σ² log((e^t − 1 + q)/q) + ½ for t > log(1−q).
    fn x_of(&self, t: f64) -> f64 {
        let inner = t.exp_m1() + self.q;
        if inner <= 0.0 {
            return f64::NEG_INFINITY;
        }
        self.sigma * self.sigma * (inner.ln() - self.q.ln()) + 0.5
    }

    /// (F(t), 1 − F(t)), each computed without cancellation.
    fn cdf_sf(&self, t: f64) -> (f64, f64) {
        let (q, s) = (self.q, self.sigma);
        match self.direction {
            Direction::Remove => {
                let x = self.x_of(t);
                if x == f64::NEG_INFINITY {
                    return (0.0, 1.0);
                }
                let cdf = (1.0 - q) * norm_cdf(x / s) + q * norm_cdf((x - 1.0) / s);
                let sf = (1.0 - q) * norm_cdf(-x / s) + q * norm_cdf((1.0 - x) / s);
                (cdf, sf)
            }
            Direction::Add => {
                let x = self.x_of(-t);
                if x == f64::NEG_INFINITY {
                    return (1.0, 0.0);
                }
                (norm_cdf(-x / s), norm_cdf(x / s))
            }
        }
    }
}

impl SubsampledGaussian {
    /// E[Y; a < Y ≤ b], as ∫ ℓ(x)·p(x) dx over the x interval that maps onto (a, b]: ℓ and the Gaussian
    /// densities are smooth on the scale of σ, so composite Gauss–Legendre on panels of σ/8 is accurate
    /// to round-off. The x interval is clipped to 40σ beyond the Gaussians' means, where the densities
    /// are below 1e-300.
    fn partial_mean(&self, a: f64, b: f64) -> f64 {
        let (q, s) = (self.q, self.sigma);
        let loss = |x: f64| {
            // ℓ(x) = log(1 − q + q·e^{(2x−1)/(2σ²)}), evaluated without overflow.
            let z = (2.0 * x - 1.0) / (2.0 * s * s) + q.ln();
            if q == 1.0 {
                z
            } else {
                log_add((-q).ln_1p(), z)
            }
        };
        let pdf = |x: f64, mean: f64| (-(x - mean) * (x - mean) / (2.0 * s * s)).exp() / (s * (2.0 * PI).sqrt());
        let (lo_clip, hi_clip) = (-40.0 * s, 1.0 + 40.0 * s);
        let (x_lo, x_hi, integrand): (f64, f64, Box<dyn Fn(f64) -> f64>) = match self.direction {
            Direction::Remove => (
                self.x_of(a).max(lo_clip),
                self.x_of(b).min(hi_clip),
                Box::new(move |x| loss(x) * ((1.0 - q) * pdf(x, 0.0) + q * pdf(x, 1.0))),
            ),
            // Y = −ℓ(X), X ~ N(0, σ²): a < Y ≤ b ⟺ x(−b) ≤ X < x(−a).
            Direction::Add => {
                (self.x_of(-b).max(lo_clip), self.x_of(-a).min(hi_clip), Box::new(move |x| -loss(x) * pdf(x, 0.0)))
            }
        };
        if x_hi.is_nan() || x_lo.is_nan() || x_hi <= x_lo {
            return 0.0;
        }
        let panels = ((x_hi - x_lo) / (s / 8.0)).ceil().max(1.0) as usize;
        let width = (x_hi - x_lo) / panels as f64;
        let (nodes, weights) = gauss_legendre_16();
        (0..panels)
            .map(|p| {
                let mid = x_lo + (p as f64 + 0.5) * width;
                nodes.iter().zip(weights).map(|(u, w)| w * integrand(mid + 0.5 * width * u)).sum::<f64>() * 0.5 * width
            })
            .sum()
    }
}

/// Nodes and weights of 16-point Gauss–Legendre quadrature on [−1, 1], by Newton's method on P₁₆
/// (a few lines; no crate needed for one fixed rule).
fn gauss_legendre_16() -> ([f64; 16], [f64; 16]) {
    const N: usize = 16;
    let (mut nodes, mut weights) = ([0.0; N], [0.0; N]);
    for i in 0..N {
        let mut x = (PI * (i as f64 + 0.75) / (N as f64 + 0.5)).cos();
        let mut dp = 0.0;
        for _ in 0..100 {
            // P_N(x) and P_N'(x) by the three-term recurrence.
            let (mut p0, mut p1) = (1.0, x);
            for k in 2..=N {
                let kf = k as f64;
                (p0, p1) = (p1, ((2.0 * kf - 1.0) * x * p1 - (kf - 1.0) * p0) / kf);
            }
            dp = N as f64 * (x * p1 - p0) / (x * x - 1.0);
            let step = p1 / dp;
            x -= step;
            if step.abs() < 1e-16 {
                break;
            }
        }
        nodes[i] = x;
        weights[i] = 2.0 / ((1.0 - x * x) * dp * dp);
    }
    (nodes, weights)
}

/// One step's PRV discretised on the grid: masses at indices `first..first + mass.len()`, value j·h + shift.
struct DiscretePrv {
    first: i64,
    mass: Vec<f64>,
    shift: f64,
    cut_mass: f64,
}

impl PrvAccountant {
    /// An accountant with the given ε error (> 0) and δ error (in (0, δ/4); default δ/10⁴).
    pub fn new(eps_error: f64, delta_error: Option<f64>) -> Result<Self, AccountingError> {
        if !(eps_error.is_finite() && eps_error > 0.0 && eps_error <= 1.0) {
            return Err(AccountingError::invalid("eps_error", eps_error, "(0, 1]"));
        }
        if let Some(d) = delta_error {
            if !(d.is_finite() && d > 0.0) {
                return Err(AccountingError::invalid("delta_error", d, "(0, delta/4)"));
            }
        }
        Ok(Self { eps_error, delta_error })
    }

    /// The ε error parameter.
    pub fn eps_error(&self) -> f64 {
        self.eps_error
    }

    /// Bounds on ε at δ for a history of Poisson-sampled events.
    pub fn epsilon(&self, history: &History, delta: f64) -> Result<PrvEpsilon, AccountingError> {
        check_delta(delta)?;
        let delta_error = self.delta_error.unwrap_or(delta * 1e-4);
        if delta_error >= delta / 4.0 {
            return Err(AccountingError::invalid(
                "delta_error",
                delta_error,
                &format!("(0, delta/4 = {})", delta / 4.0),
            ));
        }
        let mut events = Vec::new();
        for e in history.events() {
            let Sampling::Poisson { sample_rate } = e.sampling else {
                return Err(AccountingError::UnsupportedSampling { accountant: "prv" });
            };
            if e.steps > u32::MAX as u64 {
                return Err(AccountingError::invalid("steps", e.steps as f64, "≤ 4294967295 per event"));
            }
            events.push((sample_rate, e.noise_multiplier, e.steps));
        }
        if events.is_empty() {
            return Ok(PrvEpsilon { lower: 0.0, estimate: 0.0, upper: 0.0 });
        }
        let plan = Plan::new(history, &events, self.eps_error * 0.9, delta_error);
        // The two directions are independent: one thread each.
        let (remove, add) = std::thread::scope(|scope| {
            let add = scope.spawn(|| plan.compose(&events, Direction::Add, delta));
            let remove = plan.compose(&events, Direction::Remove, delta);
            (remove, add.join().expect("PRV thread panicked"))
        });
        let (remove, add) = (remove?, add?);
        Ok(PrvEpsilon {
            lower: remove.lower.max(add.lower),
            estimate: remove.estimate.max(add.estimate),
            upper: remove.upper.max(add.upper),
        })
    }
}

/// Grid and error budget shared by both directions.
struct Plan {
    h: f64,
    radius: f64,
    lo: f64,
    hi: f64,
    steps: f64,
    /// Fixed part of δ_f: Hoeffding δ_h and the two window tails.
    delta_fixed: f64,
    delta_error: f64,
}

impl Plan {
    fn new(history: &History, events: &[(f64, f64, u64)], radius: f64, delta_error: f64) -> Self {
        let steps: f64 = events.iter().map(|e| e.2 as f64).sum();
        let delta_h = delta_error / 4.0;
        let h = radius * (2.0 / (steps * (2.0 / delta_h).ln())).sqrt();
        // Window from Chernoff bounds on the total RDP R(α) (orders as the RDP accountant's plus a few
        // large ones for the lower tail).
        let tail = delta_error / 8.0;
        let mut orders = RdpAccountant::default_orders();
        orders.extend([80.0, 128.0, 256.0]);
        let rdp_acc = RdpAccountant::new(orders.clone()).expect("orders are valid");
        let rdp = rdp_acc.rdp(history);
        let rdp_at =
            |alpha: f64| orders.iter().zip(&rdp).find(|(a, _)| **a >= alpha).map(|(_, r)| *r).unwrap_or(f64::INFINITY);
        // Upper: P(ΣY > t) ≤ exp(λ R(λ+1) − λ t) ≤ tail  ⇐  t ≥ R(λ+1) + log(1/tail)/λ.
        // (R is non-decreasing, so using R at the next listed order ≥ λ+1 is conservative.)
        let upper_tail = orders
            .iter()
            .map(|&a| a - 1.0)
            .filter(|&lam| lam > 0.0)
            .map(|lam| rdp_at(lam + 1.0) + (1.0 / tail).ln() / lam)
            .fold(f64::INFINITY, f64::min);
        // Lower: P(ΣY < −t) ≤ exp((λ−1) R(λ) − λ t) ≤ tail  ⇐  t ≥ ((λ−1) R(λ) + log(1/tail))/λ; λ = 1 is Markov.
        let lower_tail = orders
            .iter()
            .zip(&rdp)
            .map(|(&lam, &r)| ((lam - 1.0) * r + (1.0 / tail).ln()) / lam)
            .fold((1.0 / tail).ln(), f64::min);
        let hi = upper_tail + radius + 2.0 * h;
        let lo = -(lower_tail + radius + 2.0 * h);
        // Tails wrap around: at most δ_h + 2·tail of Ỹ's mass lies outside the window.
        let delta_fixed = delta_h + (delta_h + 2.0 * tail);
        Self { h, radius, lo, hi, steps, delta_fixed, delta_error }
    }

    /// Composes all events for one direction and reads off the ε bounds at δ.
    fn compose(
        &self,
        events: &[(f64, f64, u64)],
        direction: Direction,
        delta: f64,
    ) -> Result<PrvEpsilon, AccountingError> {
        let h = self.h;
        // The span is checked in f64 first: a huge ε (σ → 0) makes it exceed usize, and the cast saturates.
        let span = ((self.hi - self.lo) / h).ceil() + 4.0;
        let n = if span.is_finite() && span <= MAX_POINTS as f64 { fft_size(span as usize) } else { usize::MAX };
        if n > MAX_POINTS {
            let n = format!("{span:.3e}");
            return Err(AccountingError::Precision(format!(
                "the PRV accountant would need {n} grid points (limit {MAX_POINTS}, ~{} GB) for this history: \
                 epsilon is very large or the steps very many; use a larger --eps-error, or the rdp accountant",
                MAX_POINTS * 40 / 1_000_000_000
            )));
        }
        let mut planner = RealFftPlanner::<f64>::new();
        let forward = planner.plan_fft_forward(n);
        let inverse = planner.plan_fft_inverse(n);
        let mut spectrum = vec![Complex::new(1.0, 0.0); n / 2 + 1];
        let mut buffer = vec![0.0; n];
        let mut freq = forward.make_output_vec();
        let (mut total_shift, mut cut_mass) = (0.0, 0.0);
        let per_step_cut = self.delta_error / (16.0 * self.steps);
        for &(q, sigma, steps) in events {
            let prv = SubsampledGaussian { q, sigma, direction };
            let d = self.discretise(&prv, per_step_cut);
            buffer.iter_mut().for_each(|v| *v = 0.0);
            for (i, &m) in d.mass.iter().enumerate() {
                buffer[(d.first + i as i64).rem_euclid(n as i64) as usize] += m;
            }
            forward.process(&mut buffer, &mut freq).expect("buffer sizes match the plan");
            // φ^T; where |φ|^T underflows (most frequencies once T is large) skip the power.
            let half_steps = 0.5 * steps as f64;
            spectrum.par_iter_mut().zip(&freq).for_each(|(acc, f)| {
                if *acc == Complex::new(0.0, 0.0) || half_steps * f.norm_sqr().ln() < -745.0 {
                    *acc = Complex::new(0.0, 0.0);
                } else {
                    *acc *= f.powu(steps as u32);
                }
            });
            total_shift += steps as f64 * d.shift;
            cut_mass += steps as f64 * d.cut_mass;
        }
        // Bins 0 and n/2 of a real signal's spectrum are real; round-off must not make them complex.
        spectrum[0].im = 0.0;
        if let Some(last) = spectrum.last_mut() {
            last.im = 0.0;
        }
        inverse.process(&mut spectrum, &mut buffer).expect("buffer sizes match the plan");
        let scale = 1.0 / n as f64;
        // Unwrap the periodic result so that values j·h + total_shift fill [lo − h, lo − h + n·h).
        let j0 = ((self.lo - total_shift) / h).floor() as i64 - 1;
        let curve = Curve { buffer: &buffer, j0, h, shift: total_shift, scale };
        let (mut noise, mut positive_points, mut negative) = (0.0f64, 0.0, 0.0);
        for k in 0..n {
            let (y, p) = curve.point(k);
            if y < self.lo + self.radius {
                noise = noise.max(p.abs());
            } else if y > 0.0 {
                positive_points += 1.0;
                negative -= p.min(0.0);
            }
        }
        let round_off = noise * positive_points + negative;
        let delta_fail = self.delta_fixed + cut_mass + round_off;
        log::debug!(
            "PRV {direction:?}: mesh {h:e}, window [{}, {}], {n} points, shift {total_shift:e}, cut mass {cut_mass:e}, \
             round-off {round_off:e} (level {noise:e}), delta_fail {delta_fail:e}",
            self.lo,
            self.hi
        );
        if delta_fail > delta / 2.0 {
            return Err(AccountingError::Precision(format!(
                "the PRV accountant cannot resolve delta = {delta:e} for this history: its numerical error \
                 budget reached {delta_fail:e} (round-off {round_off:e} over {n} grid points); use a larger \
                 --eps-error or delta, or the rdp accountant"
            )));
        }
        let estimate = curve.epsilon(delta);
        let upper = curve.epsilon(delta - delta_fail) + self.radius;
        let lower = (curve.epsilon(delta + delta_fail) - self.radius).max(0.0);
        Ok(PrvEpsilon { lower, estimate, upper })
    }

    /// Masses of one step's PRV on the grid between the cut points, with the mean-matching shift.
    fn discretise(&self, prv: &SubsampledGaussian, cut: f64) -> DiscretePrv {
        let h = self.h;
        let edge = |j: i64| (j as f64 - 0.5) * h; // lower edge of bucket j
        let j_min = (self.lo / h).ceil() as i64 + 1;
        let j_max = (self.hi / h).floor() as i64 - 1;
        // Median bucket by bisection on F.
        let (mut a, mut b) = (j_min, j_max);
        while b - a > 1 {
            let m = a + (b - a) / 2;
            if prv.cdf_sf(edge(m)).0 < 0.5 {
                a = m;
            } else {
                b = m;
            }
        }
        let mid = a;
        // Walk down while F at the lower edge exceeds the cut, and up while 1 − F does, keeping every
        // edge's (F, 1 − F) for the masses.
        let mut below = Vec::new();
        let mut first = mid;
        let mut at = prv.cdf_sf(edge(first));
        while first > j_min && at.0 > cut {
            below.push(at);
            first -= 1;
            at = prv.cdf_sf(edge(first));
        }
        below.push(at);
        below.reverse(); // edges first ..= mid
        let mut last = mid;
        let mut above = Vec::new();
        let mut at = prv.cdf_sf(edge(last + 1));
        above.push(at);
        while last < j_max && at.1 > cut {
            last += 1;
            at = prv.cdf_sf(edge(last + 1));
            above.push(at);
        }
        // F at every edge first ..= last + 1; masses use the upper half via 1 − F to keep tails accurate.
        let edges: Vec<(f64, f64)> = below.into_iter().chain(above).collect();
        let mass: Vec<f64> = edges
            .windows(2)
            .map(|w| if w[1].0 <= 0.5 { w[1].0 - w[0].0 } else { w[0].1 - w[1].1 })
            .map(|m| m.max(0.0))
            .collect();
        let kept: f64 = mass.iter().sum();
        let cut_mass = edges[0].0 + edges[edges.len() - 1].1;
        // Mean shift: the discrete mean (masses at bucket centres) against the continuous conditional
        // mean E[Y | a < Y ≤ b], integrated in x where the integrand is smooth (a quadrature in t would
        // fail when the bulk of Y is narrower than a few buckets, as for small q).
        let discrete_mean: f64 =
            mass.iter().enumerate().map(|(i, m)| m * (first + i as i64) as f64 * h).sum::<f64>() / kept;
        let continuous_mean = prv.partial_mean(edge(first), edge(last + 1)) / kept;
        let shift = continuous_mean - discrete_mean;
        debug_assert!(shift.abs() < h / 2.0, "mean shift {shift} exceeds half the mesh {h}");
        let mass = mass.into_iter().map(|m| m / kept).collect();
        DiscretePrv { first, mass, shift, cut_mass }
    }
}

/// The δ̃(ε) curve of the composed discrete PRV, read directly from the inverse FFT's periodic buffer:
/// point k (0 ≤ k < n, increasing value) is y = (j0 + k)·h + shift with mass max(0, buffer[(j0 + k) mod n]·scale).
struct Curve<'a> {
    buffer: &'a [f64],
    j0: i64,
    h: f64,
    shift: f64,
    scale: f64,
}

impl Curve<'_> {
    /// (value, signed mass) of point k.
    fn point(&self, k: usize) -> (f64, f64) {
        let j = self.j0 + k as i64;
        (j as f64 * self.h + self.shift, self.buffer[j.rem_euclid(self.buffer.len() as i64) as usize] * self.scale)
    }

    /// inf{ε ≥ 0 : δ̃(ε) ≤ d}, exact for the discrete distribution: δ̃(ε) = A − e^ε·B on each gap between
    /// points, with A, B the mass and Σ p·e^{−y} above ε (negative round-off counted as 0).
    fn epsilon(&self, d: f64) -> f64 {
        let (mut a, mut b) = (0.0, 0.0);
        for k in (0..self.buffer.len()).rev() {
            let (y, p) = self.point(k);
            let p = p.max(0.0);
            a += p;
            b += p * (-y).exp();
            let below = if k > 0 { self.point(k - 1).0 } else { f64::NEG_INFINITY };
            let floor = below.max(0.0);
            // δ̃ at the bottom of this gap (ε = floor), with the points above it counted.
            if a - floor.exp() * b > d {
                let eps = ((a - d) / b).ln();
                return eps.clamp(floor, y);
            }
            if below <= 0.0 {
                return 0.0;
            }
        }
        0.0
    }
}

/// The smallest size ≥ n of the form 2^a·3^b·5^c (fast for rustfft), even.
fn fft_size(n: usize) -> usize {
    let mut best = n.next_power_of_two();
    let mut p5 = 1;
    while p5 < best {
        let mut p35 = p5;
        while p35 < best {
            let mut m = p35;
            while m < n {
                m *= 2;
            }
            if m % 2 == 0 && m < best {
                best = m;
            }
            p35 *= 3;
        }
        p5 *= 5;
    }
    best.max(2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounting::Event;

    fn prv(sigma: f64, q: f64, steps: u64, delta: f64) -> PrvEpsilon {
        PrvAccountant::default().epsilon(&History::single(Event::poisson(sigma, q, steps).unwrap()), delta).unwrap()
    }

    #[test]
    fn brackets_the_pld_values_of_shared_docs() {
        // ../shared/docs/oracles.md: dp_accounting PLD (discretisation 1e-4) and prv_accountant's upper
        // bound (eps_error 0.01). Our [lower, upper] must contain the PLD value, be at most 2·eps_error
        // wide, and our upper must be within eps_error of prv_accountant's.
        let rows = [
            (1.1, 256.0 / 60000.0, 14063, 1e-5, 2.38178, 2.39184),
            (1.1, 240.0 / 60000.0, 15000, 1e-5, 2.29547, 2.30551),
            (1.5, 0.04, 2250, 1e-5, 6.76879, 6.77913),
            (1.3, 150.0 / 60000.0, 6000, 1e-5, 0.64011, 0.65006),
            (0.8, 0.005, 1000, 1e-6, 2.00411, 2.01430),
            (1.0, 0.01, 1000, 1e-5, 1.82824, 1.83837),
        ];
        for (sigma, q, t, delta, pld, prv_upper) in rows {
            let got = prv(sigma, q, t, delta);
            assert!(got.lower <= pld && pld <= got.upper, "{sigma} {q} {t}: {got:?} vs PLD {pld}");
            assert!(got.upper - got.lower <= 0.02, "{sigma} {q} {t}: width {}", got.upper - got.lower);
            assert!((got.upper - prv_upper).abs() <= 0.01, "{sigma} {q} {t}: {} vs {prv_upper}", got.upper);
        }
    }

    #[test]
    fn a_vanishing_sigma_is_a_precision_error_not_an_overflow() {
        // σ = 1e-8 puts ε near 1e17: the grid span no longer fits in usize (found with
        // `dpft privacy epsilon --noise-multiplier 1e-8 --accountant prv`, which panicked).
        let history = History::single(Event::poisson(1e-8, 0.0038, 20).unwrap());
        let err = PrvAccountant::default().epsilon(&history, 7.4e-6).unwrap_err();
        assert!(matches!(err, AccountingError::Precision(_)), "{err:?}");
        assert!(err.to_string().contains("grid points"), "{err}");
    }

    #[test]
    fn full_batch_gaussian_is_exact() {
        // q = 1: T steps are the Gaussian mechanism with σ/√T, whose ε(δ) has a closed form; compare with
        // the GDP curve at μ = √T/σ (exact for the Gaussian mechanism).
        let (sigma, steps, delta) = (3.0, 9, 1e-5);
        let exact = crate::accounting::gdp::epsilon_for_mu((steps as f64).sqrt() / sigma, delta);
        let got = prv(sigma, 1.0, steps, delta);
        assert!(got.lower <= exact && exact <= got.upper, "{got:?} vs {exact}");
        assert!((got.estimate - exact).abs() < 2e-3, "{got:?} vs {exact}");
    }

    #[test]
    fn heterogeneous_history_equals_merged_when_equal() {
        let mut h = History::new();
        h.push(Event::poisson(1.0, 0.01, 300).unwrap()).unwrap();
        h.push(Event::poisson(1.0, 0.02, 200).unwrap()).unwrap();
        let acc = PrvAccountant::default();
        let both = acc.epsilon(&h, 1e-5).unwrap();
        let first = acc.epsilon(&History::single(Event::poisson(1.0, 0.01, 300).unwrap()), 1e-5).unwrap();
        let second = acc.epsilon(&History::single(Event::poisson(1.0, 0.02, 200).unwrap()), 1e-5).unwrap();
        assert!(both.estimate > first.estimate.max(second.estimate), "{both:?} {first:?} {second:?}");
        let rdp = RdpAccountant::default().epsilon(&h, 1e-5).unwrap().epsilon;
        assert!(both.upper < rdp, "PRV is tighter than RDP: {both:?} vs {rdp}");
    }

    #[test]
    fn fft_sizes_are_smooth() {
        for n in [1, 7, 100, 1000, 12345, 1 << 20] {
            let m = fft_size(n);
            assert!(m >= n && m.is_multiple_of(2));
            let mut r = m;
            for p in [2, 3, 5] {
                while r.is_multiple_of(p) {
                    r /= p;
                }
            }
            assert_eq!(r, 1, "{m}");
        }
    }
}
