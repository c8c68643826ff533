//! Gaussian noise for the clipped sum (Abadi et al. 2016; Li et al. 2022, Sec. 3): once per logical batch
//! g̃ = (Σ_i c_i g_i + N(0, σ²C²·I)) / B, with B the *expected* batch size (q·n for Poisson sampling), not
//! the realised one, so that the released mean does not depend on the batch size.
//!
//! Draws are made in Rust, not by libtorch: the ChaCha20 keystream (RustCrypto's `chacha20`, which picks
//! its AVX2 code at run time) keyed by (seed, step, parameter index), cut into chunks of 2^16 draws that
//! are filled in parallel (`rayon`), chunk c from the keystream with nonce c (independent streams, so a
//! chunk never reads another's words however many the ziggurat rejects). Each draw is `rand_distr`'s
//! ziggurat N(0, 1) over 64-bit words of the keystream. This is reproducible from the seed regardless of
//! thread count, independent of libtorch's global generator (which other code and parallel tests also
//! use), and parallel where libtorch's CPU `normal_` is serial (the keystream's speed against
//! `rand_chacha`, as measured: results/bench/notes.md). The tensor is then
//! moved to the parameter's device (on CUDA, see [`GaussianNoise::sample`]). `Secure` draws a fresh 256-bit key from the OS for every call: no
//! seed can reproduce the noise (the cost is one `getrandom` call per parameter tensor per step).

use chacha20::cipher::{KeyIvInit, StreamCipher};
use chacha20::ChaCha20;
use rand::{Rng, RngCore};
use rand_distr::StandardNormal;
use rayon::prelude::*;
use tch::{Kind, Tensor};

use super::EngineError;

const CHUNK: usize = 1 << 16;

/// 64-bit words from one chunk's ChaCha20 keystream, for `rand_distr`'s samplers.
/// (`rand_core`'s block-RNG wrappers would fit, but `chacha20` 0.9 no longer ships its `RngCore`.)
struct Keystream {
    cipher: ChaCha20,
    buf: [u8; 4096],
    pos: usize,
}

impl Keystream {
    fn new(key: &[u8; 32], chunk: usize) -> Self {
        let mut nonce = [0u8; 12];
        nonce[..8].copy_from_slice(&(chunk as u64).to_le_bytes());
        Self { cipher: ChaCha20::new(key.into(), &nonce.into()), buf: [0; 4096], pos: 4096 }
    }

    fn refill(&mut self) {
        self.buf.fill(0);
        self.cipher.apply_keystream(&mut self.buf);
        self.pos = 0;
    }
}

impl RngCore for Keystream {
    fn next_u32(&mut self) -> u32 {
        if self.pos + 4 > self.buf.len() {
            self.refill();
        }
        let v = u32::from_le_bytes(self.buf[self.pos..self.pos + 4].try_into().expect("4 bytes"));
        self.pos += 4;
        v
    }

    fn next_u64(&mut self) -> u64 {
        if self.pos + 8 > self.buf.len() {
            self.refill();
        }
        let v = u64::from_le_bytes(self.buf[self.pos..self.pos + 8].try_into().expect("8 bytes"));
        self.pos += 8;
        v
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

/// Where the noise's randomness comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoiseSeed {
    /// Reproducible from this seed (default for research runs).
    Fixed(u64),
    /// Fresh OS randomness for every draw (for deployments).
    Secure,
}

/// A Gaussian noise source.
#[derive(Clone, Copy, Debug)]
pub struct GaussianNoise {
    seed: NoiseSeed,
}

impl GaussianNoise {
    /// A source with the given seed policy.
    pub fn new(seed: NoiseSeed) -> Self {
        Self { seed }
    }

    fn key(&self, step: u64, index: u64) -> [u8; 32] {
        let mut key = [0u8; 32];
        match self.seed {
            NoiseSeed::Fixed(seed) => {
                key[..8].copy_from_slice(&seed.to_le_bytes());
                key[8..16].copy_from_slice(&step.to_le_bytes());
                key[16..24].copy_from_slice(&index.to_le_bytes());
                key[24..].copy_from_slice(b"dpftnois");
            }
            NoiseSeed::Secure => rand::rngs::OsRng.fill_bytes(&mut key),
        }
        key
    }

    /// N(0, std²) shaped like `like` (f32 or f64, on its device), for parameter `index` at `step`.
    ///
    /// On CUDA the draw is made on the device by libtorch's generator, seeded for this (step, index)
    /// from the key (reproducible for a fixed seed; with `Secure`, the 64 bits libtorch's generator takes
    /// come from the OS). Copying CPU draws to the GPU would cost more than the step's clipping.
    pub fn sample(&self, like: &Tensor, std: f64, step: u64, index: u64) -> Tensor {
        let key = self.key(step, index);
        if like.device().is_cuda() {
            let mut seed = [0u8; 8];
            for (i, b) in key.iter().enumerate() {
                seed[i % 8] ^= b.rotate_left((i / 8) as u32);
            }
            tch::Cuda::manual_seed_all(u64::from_le_bytes(seed));
            return Tensor::randn(like.size(), (like.kind(), like.device())) * std;
        }
        let n = like.numel();
        let t = if like.kind() == Kind::Double {
            let mut v = vec![0f64; n];
            v.par_chunks_mut(CHUNK).enumerate().for_each(|(c, xs)| {
                let mut rng = Keystream::new(&key, c);
                xs.iter_mut().for_each(|x| *x = rng.sample::<f64, _>(StandardNormal) * std)
            });
            Tensor::from_slice(&v)
        } else {
            let std = std as f32;
            let mut v = vec![0f32; n];
            v.par_chunks_mut(CHUNK).enumerate().for_each(|(c, xs)| {
                let mut rng = Keystream::new(&key, c);
                xs.iter_mut().for_each(|x| *x = rng.sample::<f32, _>(StandardNormal) * std)
            });
            Tensor::from_slice(&v)
        };
        t.reshape(like.size()).to_device(like.device()).to_kind(like.kind())
    }

    /// The released gradients: (Σ_i c_i g_i + N(0, σ²C²)) / expected_batch, per parameter.
    pub fn privatize(
        &self,
        sums: &[(String, Tensor)],
        noise_multiplier: f64,
        max_grad_norm: f64,
        expected_batch: f64,
        step: u64,
    ) -> Result<Vec<(String, Tensor)>, EngineError> {
        if !(noise_multiplier.is_finite() && noise_multiplier >= 0.0) {
            return Err(EngineError::Invalid(format!(
                "noise_multiplier = {noise_multiplier} is out of range: expected a finite value ≥ 0"
            )));
        }
        if !(max_grad_norm.is_finite() && max_grad_norm > 0.0) && noise_multiplier > 0.0 {
            return Err(EngineError::Invalid(format!(
                "max_grad_norm = {max_grad_norm} with noise: expected a finite value > 0 (noise scales with it)"
            )));
        }
        if !(expected_batch.is_finite() && expected_batch > 0.0) {
            return Err(EngineError::Invalid(format!("expected batch size = {expected_batch}: expected > 0")));
        }
        let std = noise_multiplier * max_grad_norm;
        Ok(sums
            .iter()
            .enumerate()
            .map(|(i, (name, g))| {
                // In place on the fresh noise tensor: no further temporaries of the parameter's size.
                let mut out = if std > 0.0 { self.sample(g, std, step, i as u64) } else { g.zeros_like() };
                let _ = out.g_add_(g);
                let _ = out.g_div_scalar_(expected_batch);
                (name.clone(), out)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn std_of(t: &Tensor) -> f64 {
        t.std(true).double_value(&[])
    }

    #[test]
    fn noise_on_a_zero_gradient_has_std_sigma_c_over_b() {
        // 2^20 draws: the sample std has relative standard error 1/sqrt(2N) ≈ 7e-4; allow 5 of them.
        let zero = Tensor::zeros([1 << 20], (Kind::Float, Device::Cpu));
        let out = GaussianNoise::new(NoiseSeed::Fixed(7)).privatize(&[("w".into(), zero)], 2.0, 0.5, 10.0, 3).unwrap();
        let want = 2.0 * 0.5 / 10.0;
        let got = std_of(&out[0].1);
        assert!((got - want).abs() <= 5.0 * want / (2.0 * (1 << 20) as f64).sqrt(), "{got} vs {want}");
        assert!(out[0].1.mean(Kind::Double).double_value(&[]).abs() < 5.0 * want / (1 << 10) as f64);
    }

    #[test]
    fn reproducible_from_the_seed_and_fresh_when_secure() {
        let like = Tensor::zeros([3, 70_000], (Kind::Double, Device::Cpu));
        let a = GaussianNoise::new(NoiseSeed::Fixed(1)).sample(&like, 1.0, 5, 0);
        let b = GaussianNoise::new(NoiseSeed::Fixed(1)).sample(&like, 1.0, 5, 0);
        assert!(a.equal(&b));
        let other_step = GaussianNoise::new(NoiseSeed::Fixed(1)).sample(&like, 1.0, 6, 0);
        let other_param = GaussianNoise::new(NoiseSeed::Fixed(1)).sample(&like, 1.0, 5, 1);
        assert!(!a.equal(&other_step) && !a.equal(&other_param));
        let s1 = GaussianNoise::new(NoiseSeed::Secure).sample(&like, 1.0, 5, 0);
        let s2 = GaussianNoise::new(NoiseSeed::Secure).sample(&like, 1.0, 5, 0);
        assert!(!s1.equal(&s2));
        // Chunks are independent streams: the two halves are uncorrelated.
        let flat = a.reshape([-1]);
        let (x, y) = (flat.narrow(0, 0, 100_000), flat.narrow(0, 100_000, 100_000));
        let corr = (&x * &y).mean(Kind::Double).double_value(&[]);
        assert!(corr.abs() < 5.0 / (100_000f64).sqrt(), "{corr}");
    }

    #[test]
    fn zero_sigma_is_the_plain_mean_and_bad_settings_fail() {
        let g = Tensor::from_slice(&[2.0f64, 4.0]);
        let out = GaussianNoise::new(NoiseSeed::Fixed(0)).privatize(&[("w".into(), g)], 0.0, 1.0, 2.0, 0).unwrap();
        assert_eq!(Vec::<f64>::try_from(&out[0].1).unwrap(), vec![1.0, 2.0]);
        let noise = GaussianNoise::new(NoiseSeed::Fixed(0));
        let g = || vec![("w".to_string(), Tensor::zeros([2], (Kind::Double, Device::Cpu)))];
        assert!(noise.privatize(&g(), -1.0, 1.0, 2.0, 0).is_err());
        assert!(noise.privatize(&g(), 1.0, f64::INFINITY, 2.0, 0).is_err());
        assert!(noise.privatize(&g(), 1.0, 1.0, 0.0, 0).is_err());
    }
}
