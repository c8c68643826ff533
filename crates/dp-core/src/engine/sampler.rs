//! Batch samplers that match the accountants (so that the ε reported is the ε of the sampler used):
//! - Poisson: each of the n examples joins each batch independently with probability q (batch sizes are
//!   Binomial(n, q); empty batches happen and are valid steps) — accounted with add/remove-one RDP/PRV;
//! - fixed size: each batch is a fresh uniformly random subset of exactly b examples, drawn
//!   independently at every step (not an epoch shuffle) — accounted with replace-one RDP
//!   (see [`crate::accounting::event`]).
//!
//! Randomness: ChaCha20 under the run's 256-bit sampler key ([`super::keys`]), separate from the noise's.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use super::keys::Key;
use super::EngineError;
use crate::accounting::Sampling;

/// A batch sampler over example indices 0..n.
#[derive(Clone, Debug)]
pub struct BatchSampler {
    sampling: Sampling,
    dataset_size: u64,
    rng: ChaCha20Rng,
}

impl BatchSampler {
    /// Poisson sampling with rate q ∈ (0, 1] over n ≥ 1 examples.
    pub fn poisson(dataset_size: u64, sample_rate: f64, key: Key) -> Result<Self, EngineError> {
        Self::new(Sampling::Poisson { sample_rate }, dataset_size, key)
    }

    /// Independent uniformly random batches of exactly b of n examples.
    pub fn fixed_size(dataset_size: u64, batch_size: u64, key: Key) -> Result<Self, EngineError> {
        Self::new(Sampling::FixedSize { dataset_size, batch_size }, dataset_size, key)
    }

    fn new(sampling: Sampling, dataset_size: u64, key: Key) -> Result<Self, EngineError> {
        crate::accounting::Event::new(1.0, sampling, 1).map_err(|e| EngineError::Invalid(e.to_string()))?;
        if dataset_size == 0 {
            return Err(EngineError::Invalid("dataset_size = 0: expected ≥ 1".into()));
        }
        Ok(Self { sampling, dataset_size, rng: ChaCha20Rng::from_seed(key) })
    }

    /// The position of the random stream (ChaCha20 words consumed), for checkpoints: a sampler rebuilt
    /// with the same arguments and [`set_stream_position`](Self::set_stream_position) draws the same
    /// batches from there on.
    pub fn stream_position(&self) -> u128 {
        self.rng.get_word_pos()
    }

    /// Moves the random stream to a position taken by [`stream_position`](Self::stream_position).
    pub fn set_stream_position(&mut self, position: u128) {
        self.rng.set_word_pos(position);
    }

    /// The sampling the accountant must be told about.
    pub fn sampling(&self) -> Sampling {
        self.sampling
    }

    /// The expected batch size q·n (= b for fixed-size batches): the divisor of the noisy sum.
    pub fn expected_batch_size(&self) -> f64 {
        self.sampling.sample_rate() * self.dataset_size as f64
    }

    /// The next batch's example indices, increasing.
    pub fn next_batch(&mut self) -> Vec<u64> {
        let n = self.dataset_size;
        match self.sampling {
            Sampling::Poisson { sample_rate: q } if q >= 1.0 => (0..n).collect(),
            Sampling::Poisson { sample_rate: q } => {
                // Gaps between included indices are Geometric(q): skip = ⌊log U / log(1 − q)⌋.
                let log_1mq = (-q).ln_1p();
                let mut out = Vec::new();
                let mut i: u64 = 0;
                loop {
                    let u: f64 = 1.0 - self.rng.gen::<f64>(); // (0, 1]
                    let skip = (u.ln() / log_1mq).floor();
                    if !skip.is_finite() || skip >= (n - i) as f64 {
                        break;
                    }
                    i += skip as u64;
                    out.push(i);
                    i += 1;
                    if i >= n {
                        break;
                    }
                }
                out
            }
            Sampling::FixedSize { dataset_size, batch_size } => {
                let mut idx: Vec<u64> =
                    rand::seq::index::sample(&mut self.rng, dataset_size as usize, batch_size as usize)
                        .into_iter()
                        .map(|i| i as u64)
                        .collect();
                idx.sort_unstable();
                idx
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// log of the Binomial(n, q) pmf at k.
    fn log_binom_pmf(n: u64, q: f64, k: u64) -> f64 {
        let (n, k) = (n as f64, k as f64);
        libm::lgamma(n + 1.0) - libm::lgamma(k + 1.0) - libm::lgamma(n - k + 1.0) + k * q.ln() + (n - k) * (-q).ln_1p()
    }

    #[test]
    fn a_restored_stream_position_continues_the_same_batches() {
        for make in [
            || BatchSampler::poisson(1000, 0.03, [5; 32]).unwrap(),
            || BatchSampler::fixed_size(1000, 30, [5; 32]).unwrap(),
        ] {
            let mut a = make();
            for _ in 0..7 {
                a.next_batch();
            }
            let mut b = make();
            b.set_stream_position(a.stream_position());
            for _ in 0..5 {
                assert_eq!(a.next_batch(), b.next_batch());
            }
        }
    }

    #[test]
    fn poisson_batch_sizes_are_binomial() {
        // Chi-square goodness of fit of 4000 batch sizes to Binomial(200, 0.05), bins 0..=3, 4, …, 16, ≥ 17;
        // reject at significance 1e-3 (critical value by Wilson–Hilferty, z = 3.0902).
        let (n, q, draws) = (200u64, 0.05, 4000usize);
        let mut s = BatchSampler::poisson(n, q, [11; 32]).unwrap();
        let mut counts = [0f64; 15];
        for _ in 0..draws {
            let batch = s.next_batch();
            assert!(batch.windows(2).all(|w| w[0] < w[1]) && batch.iter().all(|&i| i < n));
            counts[(batch.len().saturating_sub(3)).min(14)] += 1.0;
        }
        let pmf = |k: u64| log_binom_pmf(n, q, k).exp();
        let mut expected = [0f64; 15];
        expected[0] = (0..=3).map(pmf).sum();
        for (b, e) in expected.iter_mut().enumerate().take(14).skip(1) {
            *e = pmf(b as u64 + 3);
        }
        expected[14] = 1.0 - expected[..14].iter().sum::<f64>();
        let chi2: f64 =
            counts.iter().zip(&expected).map(|(o, p)| (o - p * draws as f64).powi(2) / (p * draws as f64)).sum();
        let df: f64 = 14.0;
        let critical = df * (1.0 - 2.0 / (9.0 * df) + 3.0902 * (2.0 / (9.0 * df)).sqrt()).powi(3);
        assert!(chi2 < critical, "chi2 {chi2} ≥ {critical}");
        assert!((s.expected_batch_size() - 10.0).abs() < 1e-12);
    }

    #[test]
    fn fixed_size_batches_are_uniform_subsets() {
        let mut s = BatchSampler::fixed_size(50, 5, [3; 32]).unwrap();
        let mut hits = [0u32; 50];
        for _ in 0..10_000 {
            let b = s.next_batch();
            assert_eq!(b.len(), 5);
            assert!(b.windows(2).all(|w| w[0] < w[1]));
            b.iter().for_each(|&i| hits[i as usize] += 1);
        }
        // Each index is included with probability 0.1: 1000 ± 5·30.
        assert!(hits.iter().all(|&h| (h as f64 - 1000.0).abs() < 150.0), "{hits:?}");
        assert_eq!(s.sampling(), Sampling::FixedSize { dataset_size: 50, batch_size: 5 });
    }

    #[test]
    fn seeds_reproduce_and_bad_settings_fail() {
        let a: Vec<_> = (0..5)
            .map({
                let mut s = BatchSampler::poisson(1000, 0.01, [9; 32]).unwrap();
                move |_| s.next_batch()
            })
            .collect();
        let b: Vec<_> = (0..5)
            .map({
                let mut s = BatchSampler::poisson(1000, 0.01, [9; 32]).unwrap();
                move |_| s.next_batch()
            })
            .collect();
        assert_eq!(a, b);
        assert!(BatchSampler::poisson(10, 0.0, [0; 32]).is_err());
        assert!(BatchSampler::poisson(0, 0.5, [0; 32]).is_err());
        assert!(BatchSampler::fixed_size(10, 11, [0; 32]).is_err());
        assert_eq!(BatchSampler::poisson(7, 1.0, [0; 32]).unwrap().next_batch(), vec![0, 1, 2, 3, 4, 5, 6]);
    }

    /// Poisson batch sizes follow Binomial(n, q): Pearson's χ² over the bins with expected count ≥ 5 (the
    /// tails pooled), against the 0.1% critical value. The key is fixed, so the test is deterministic.
    #[test]
    fn poisson_batch_sizes_fit_the_binomial() {
        let (n, q, draws) = (200u64, 0.1, 20_000usize);
        let mut s = BatchSampler::poisson(n, q, [21; 32]).unwrap();
        let mut counts = vec![0usize; n as usize + 1];
        for _ in 0..draws {
            counts[s.next_batch().len()] += 1;
        }
        let pmf = |k: u64| {
            let tail = |k: i64| crate::accounting::audit::binom_tail(n, k, q);
            tail(k as i64) - tail(k as i64 + 1)
        };
        // Bins: [0, lo], lo+1 … hi−1 one by one, [hi, n]; lo and hi where the expected count reaches 5.
        let expected: Vec<f64> = (0..=n).map(|k| pmf(k) * draws as f64).collect();
        let lo = expected.iter().position(|&e| e >= 5.0).unwrap();
        let hi = expected.iter().rposition(|&e| e >= 5.0).unwrap();
        let mut bins: Vec<(f64, f64)> =
            vec![(counts[..=lo].iter().sum::<usize>() as f64, expected[..=lo].iter().sum::<f64>())];
        bins.extend((lo + 1..hi).map(|k| (counts[k] as f64, expected[k])));
        bins.push((counts[hi..].iter().sum::<usize>() as f64, expected[hi..].iter().sum::<f64>()));
        let chi2: f64 = bins.iter().map(|(o, e)| (o - e).powi(2) / e).sum();
        let df = bins.len() - 1;
        // χ² 0.999 quantile by the Wilson–Hilferty approximation (accurate to ~1% at these df).
        let z = 3.090_232;
        let crit = df as f64 * (1.0 - 2.0 / (9.0 * df as f64) + z * (2.0 / (9.0 * df as f64)).sqrt()).powi(3);
        assert!(chi2 < crit, "χ² = {chi2:.1} over {df} degrees of freedom (critical {crit:.1})");
        assert!(df >= 10, "{df} bins");
    }
}
