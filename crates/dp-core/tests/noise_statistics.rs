//! Statistical tests of the Gaussian mechanism's noise (crates/dp-core/src/engine/normal.rs): moments,
//! Kolmogorov–Smirnov and binned χ² against N(0, 1), tail frequencies (the ziggurat's tail sampler beyond
//! r = 3.654), and no correlation within a stream, across chunks, tensors and steps. The exact
//! probabilities come from erfc in f64 (libm). Fixed keys make every statistic deterministic; the bounds
//! are those a correct sampler exceeds with probability about 10⁻⁶ or less (stated per test), so a pass
//! is not luck of the key and a real bias of the size they detect fails.

use dp_core::engine::noise::{GaussianNoise, NoiseSeed};
use tch::{Device, Kind, Tensor};

const N: usize = 1 << 22;

fn draws(seed: NoiseSeed, n: usize, step: u64, index: u64) -> Vec<f64> {
    let like = Tensor::zeros([n as i64], (Kind::Double, Device::Cpu));
    Vec::<f64>::try_from(&GaussianNoise::new(seed).sample(&like, 1.0, step, index)).unwrap()
}

/// Φ(x), the standard normal CDF.
fn cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

#[test]
fn moments_are_those_of_a_standard_normal() {
    // Standard errors of mean, variance, skewness and excess kurtosis for N draws: 1, √2, √6, √24 over √N;
    // 5 of them (two-sided 6e-7 each).
    let z = draws(NoiseSeed::Fixed([1; 32]), N, 1, 0);
    let n = N as f64;
    let mean = z.iter().sum::<f64>() / n;
    let m = |k: i32| z.iter().map(|x| (x - mean).powi(k)).sum::<f64>() / n;
    let (var, skew, kurt) = (m(2), m(3) / m(2).powf(1.5), m(4) / (m(2) * m(2)) - 3.0);
    let se = |c: f64| 5.0 * (c / n).sqrt();
    assert!(mean.abs() < se(1.0), "mean {mean}");
    assert!((var - 1.0).abs() < se(2.0), "variance {var}");
    assert!(skew.abs() < se(6.0), "skewness {skew}");
    assert!(kurt.abs() < se(24.0), "excess kurtosis {kurt}");
}

/// √N·D, the Kolmogorov–Smirnov statistic against Φ.
fn ks(mut z: Vec<f64>) -> f64 {
    z.sort_by(f64::total_cmp);
    let n = z.len() as f64;
    let d = z
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let p = cdf(*x);
            ((i + 1) as f64 / n - p).max(p - i as f64 / n)
        })
        .fold(0f64, f64::max);
    d * n.sqrt()
}

#[test]
fn kolmogorov_smirnov_against_n01_for_fixed_and_secure_keys() {
    // P(√N·D > x) ≈ 2·exp(−2x²): 2.69 is exceeded with probability 1e-6.
    for seed in [NoiseSeed::Fixed([2; 32]), NoiseSeed::Fixed([3; 32]), NoiseSeed::Secure] {
        let stat = ks(draws(seed, 1 << 20, 1, 0));
        assert!(stat < 2.69, "{seed:?}: √N·D = {stat}");
    }
    // The test has power: a 2% error in the scale (√N·D ≈ 5) is caught.
    let scaled: Vec<f64> = draws(NoiseSeed::Fixed([2; 32]), 1 << 20, 1, 0).iter().map(|x| 1.02 * x).collect();
    assert!(ks(scaled) > 2.69, "the KS test does not see a 2% scale error");
}

#[test]
fn binned_frequencies_and_tails_match_n01() {
    // 80 bins of width 0.125 over [−5, 5] plus the two outer tails: Pearson's χ² with 81 degrees of
    // freedom; the bound df + 7·√(2·df) ≈ 170 is exceeded with probability < 1e-6 (Wilson–Hilferty).
    let z = draws(NoiseSeed::Fixed([4; 32]), N, 1, 0);
    let edges: Vec<f64> = (0..=80).map(|k| -5.0 + 0.125 * k as f64).collect();
    let mut counts = vec![0usize; edges.len() + 1];
    for x in &z {
        counts[edges.partition_point(|e| e <= x)] += 1;
    }
    let mut chi2 = 0.0;
    for (b, &count) in counts.iter().enumerate() {
        let lo = if b == 0 { f64::NEG_INFINITY } else { edges[b - 1] };
        let hi = if b == edges.len() { f64::INFINITY } else { edges[b] };
        let expected = N as f64 * (cdf(hi) - cdf(lo));
        chi2 += (count as f64 - expected).powi(2) / expected;
    }
    let df = (counts.len() - 1) as f64;
    assert!(chi2 < df + 7.0 * (2.0 * df).sqrt(), "χ² = {chi2} on {df} degrees of freedom");
    // The tail sampler (beyond r = 3.654) and the far tail: binomial counts within 5 standard deviations.
    for t in [3.0, 3.654_152_885_361_009, 4.0, 4.5] {
        let p = 2.0 * cdf(-t);
        let expected = N as f64 * p;
        let got = z.iter().filter(|x| x.abs() > t).count() as f64;
        assert!((got - expected).abs() < 5.0 * (expected * (1.0 - p)).sqrt(), "|z| > {t}: {got} vs {expected:.1}");
    }
    assert!(z.iter().all(|x| x.is_finite() && x.abs() < 14.0));
}

fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum::<f64>();
    let va = a.iter().map(|x| (x - ma).powi(2)).sum::<f64>();
    let vb = b.iter().map(|y| (y - mb).powi(2)).sum::<f64>();
    cov / (va * vb).sqrt()
}

#[test]
fn no_correlation_within_a_stream_across_chunks_tensors_or_steps() {
    // |r| < 5/√n for independent samples of n pairs (two-sided 6e-7 each).
    let chunk = dp_core::engine::normal::CHUNK;
    let z = draws(NoiseSeed::Fixed([5; 32]), 64 * chunk, 7, 3);
    let bound = |n: usize| 5.0 / (n as f64).sqrt();
    // Lag 1 and lag 2 within the stream.
    for lag in [1, 2] {
        let r = correlation(&z[..z.len() - lag], &z[lag..]);
        assert!(r.abs() < bound(z.len()), "lag {lag}: {r}");
    }
    // Position k of chunk c against position k of chunk c + 1 (streams with adjacent counter blocks).
    let (even, odd): (Vec<f64>, Vec<f64>) = (0..32)
        .flat_map(|c| (0..chunk).map(move |k| (2 * c * chunk + k, (2 * c + 1) * chunk + k)))
        .map(|(i, j)| (z[i], z[j]))
        .unzip();
    let r = correlation(&even, &odd);
    assert!(r.abs() < bound(even.len()), "adjacent chunks: {r}");
    // The same chunk of another tensor at the same step, and of the same tensor at the next step.
    let n = 1 << 20;
    let base = draws(NoiseSeed::Fixed([5; 32]), n, 7, 3);
    for (what, other) in
        [("tensor 4", draws(NoiseSeed::Fixed([5; 32]), n, 7, 4)), ("step 8", draws(NoiseSeed::Fixed([5; 32]), n, 8, 3))]
    {
        let r = correlation(&base, &other);
        assert!(r.abs() < bound(n), "{what}: {r}");
        // Squares too: dependence that is not linear (e.g. shared layer indices).
        let sq = |v: &[f64]| v.iter().map(|x| x * x).collect::<Vec<_>>();
        let r2 = correlation(&sq(&base), &sq(&other));
        assert!(r2.abs() < bound(n), "{what}, squares: {r2}");
    }
}

#[test]
fn draws_do_not_depend_on_the_thread_count_and_privatize_adds_exactly_them() {
    let g = Tensor::randn([3, 100_003], (Kind::Float, Device::Cpu));
    let noise = GaussianNoise::new(NoiseSeed::Fixed([6; 32]));
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        // Tensors are not Sync: the pool's job gets its own handle of g.
        let sums = vec![("w".to_string(), g.shallow_clone())];
        pool.install(move || noise.privatize(&sums, 1.5, 0.5, 8.0, 2).unwrap().remove(0).1)
    };
    let one = run(1);
    assert!(one.equal(&run(2)) && one.equal(&run(3)), "privatize differs with the number of threads");
    // The in-cache path is (g + the draws of `sample`) / B, bit for bit (the path other devices take).
    let mut reference = noise.sample(&g, 0.75, 2, 0);
    let _ = reference.g_add_(&g).g_div_scalar_(8.0);
    assert!(one.equal(&reference), "privatize is not (g + sample) / B");
}
