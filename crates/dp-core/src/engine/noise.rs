//! Gaussian noise for the clipped sum (Abadi et al. 2016; Li et al. 2022, Sec. 3): once per logical batch
//! g̃ = (Σ_i c_i g_i + N(0, σ²C²·I)) / B, with B the *expected* batch size (q·n for Poisson sampling), not
//! the realised one, so that the released mean does not depend on the batch size.
//!
//! Draws are made in Rust, not by libtorch: the ChaCha20 keystream (RustCrypto's `chacha20`, which picks
//! its AVX2 code at run time) under a per-draw key — SHA-256 of (run noise key, step, parameter index)
//! for a fixed seed ([`super::keys`]), 256 fresh bits from the OS otherwise — cut into chunks of 2^16 draws that
//! are filled in parallel (`rayon`), chunk c from the keystream with nonce c (independent streams, so a
//! chunk never reads another's words however many the ziggurat rejects). Each draw is `rand_distr`'s
//! ziggurat N(0, 1) over 64-bit words of the keystream. This is reproducible from the seed regardless of
//! thread count, independent of libtorch's global generator (which other code and parallel tests also
//! use), and parallel where libtorch's CPU `normal_` is serial (the keystream's speed against
//! `rand_chacha`, as measured: results/bench/notes.md). The tensor is then
//! moved to the parameter's device: on CUDA too, the draws are this keystream's, copied to the device —
//! libtorch's CUDA generator takes a 64-bit seed (no key could fill it without collisions between
//! (step, parameter) pairs) and is global (reseeding it would also reset dropout's randomness); the copy
//! costs one host-to-device transfer of the parameter's size per step. `Secure` draws a fresh 256-bit key
//! from the OS for every call: no seed can reproduce the noise (the cost is one `getrandom` call per
//! parameter tensor per step).

use chacha20::cipher::{KeyIvInit, StreamCipher};
use chacha20::ChaCha20;
use rand::{Rng, RngCore};
use rand_distr::StandardNormal;
use rayon::prelude::*;
use tch::{Kind, Tensor};

use super::keys::Key;
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
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum NoiseSeed {
    /// Reproducible from this 256-bit key (research runs; see [`super::keys::derived_key`]).
    Fixed(Key),
    /// Fresh OS randomness for every draw (for deployments).
    Secure,
}

impl std::fmt::Debug for NoiseSeed {
    /// Never prints a key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Fixed(_) => "Fixed(<key>)",
            Self::Secure => "Secure",
        })
    }
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

    /// The keystream key of the draw for parameter `index` at `step`: SHA-256 of the whole (key, step,
    /// index) for a fixed seed, so that no two draws of a run share a stream; fresh OS bits when secure.
    pub fn draw_key(&self, step: u64, index: u64) -> Key {
        match self.seed {
            NoiseSeed::Fixed(key) => {
                super::keys::hash_parts(&[b"dpft/noise-draw", &key, &step.to_le_bytes(), &index.to_le_bytes()])
            }
            NoiseSeed::Secure => super::keys::os_key(),
        }
    }

    /// N(0, std²) shaped like `like`, for parameter `index` at `step`: drawn in f64 for f64 parameters and
    /// in f32 otherwise (bf16 and f16 parameters included: see [`privatize`](Self::privatize)), on
    /// `like`'s device. No libtorch generator is read or reseeded.
    pub fn sample(&self, like: &Tensor, std: f64, step: u64, index: u64) -> Tensor {
        let key = self.draw_key(step, index);
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
        t.reshape(like.size()).to_device(like.device())
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
        let out =
            GaussianNoise::new(NoiseSeed::Fixed([7; 32])).privatize(&[("w".into(), zero)], 2.0, 0.5, 10.0, 3).unwrap();
        let want = 2.0 * 0.5 / 10.0;
        let got = std_of(&out[0].1);
        assert!((got - want).abs() <= 5.0 * want / (2.0 * (1 << 20) as f64).sqrt(), "{got} vs {want}");
        assert!(out[0].1.mean(Kind::Double).double_value(&[]).abs() < 5.0 * want / (1 << 10) as f64);
    }

    #[test]
    fn reproducible_from_the_seed_and_fresh_when_secure() {
        let like = Tensor::zeros([3, 70_000], (Kind::Double, Device::Cpu));
        let a = GaussianNoise::new(NoiseSeed::Fixed([1; 32])).sample(&like, 1.0, 5, 0);
        let b = GaussianNoise::new(NoiseSeed::Fixed([1; 32])).sample(&like, 1.0, 5, 0);
        assert!(a.equal(&b));
        let other_step = GaussianNoise::new(NoiseSeed::Fixed([1; 32])).sample(&like, 1.0, 6, 0);
        let other_param = GaussianNoise::new(NoiseSeed::Fixed([1; 32])).sample(&like, 1.0, 5, 1);
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
        let out =
            GaussianNoise::new(NoiseSeed::Fixed([0; 32])).privatize(&[("w".into(), g)], 0.0, 1.0, 2.0, 0).unwrap();
        assert_eq!(Vec::<f64>::try_from(&out[0].1).unwrap(), vec![1.0, 2.0]);
        let noise = GaussianNoise::new(NoiseSeed::Fixed([0; 32]));
        let g = || vec![("w".to_string(), Tensor::zeros([2], (Kind::Double, Device::Cpu)))];
        assert!(noise.privatize(&g(), -1.0, 1.0, 2.0, 0).is_err());
        assert!(noise.privatize(&g(), 1.0, f64::INFINITY, 2.0, 0).is_err());
        assert!(noise.privatize(&g(), 1.0, 1.0, 0.0, 0).is_err());
    }

    #[test]
    fn no_two_draws_of_a_run_share_a_stream() {
        // GPT-2 small has 150 trainable tensors; 1,000 steps. The 64-bit fold of the key that seeded
        // libtorch's CUDA generator made (step 1, tensor 136) and (step 24, tensor 4) collide.
        let noise = GaussianNoise::new(NoiseSeed::Fixed([9; 32]));
        let mut seen = std::collections::HashSet::new();
        for step in 1..=1000u64 {
            for index in 0..150u64 {
                assert!(seen.insert(noise.draw_key(step, index)), "step {step} tensor {index} repeats a stream");
            }
        }
        let like = Tensor::zeros([1000], (Kind::Float, Device::Cpu));
        assert!(!noise.sample(&like, 1.0, 1, 136).equal(&noise.sample(&like, 1.0, 24, 4)));
        // Another run key: other streams.
        let other = GaussianNoise::new(NoiseSeed::Fixed([8; 32]));
        assert_ne!(other.draw_key(1, 0), noise.draw_key(1, 0));
        assert_eq!(format!("{:?}", NoiseSeed::Fixed([9; 32])), "Fixed(<key>)");
    }

    #[test]
    fn draws_are_the_keystreams_on_every_device_and_leave_cuda_generators_alone() {
        let noise = GaussianNoise::new(NoiseSeed::Fixed([3; 32]));
        let cpu = Tensor::zeros([4096], (Kind::Float, Device::Cpu));
        let reference = noise.sample(&cpu, 1.0, 2, 5);
        // The keystream is read in Rust: the same key gives the same draws, whatever the device.
        assert!(noise.sample(&cpu, 1.0, 2, 5).equal(&reference));
        if tch::Cuda::is_available() {
            // Dropout draws from libtorch's CUDA generator: a noise draw must not reseed it (the old path
            // called manual_seed_all). No CPU test uses the CUDA generator, so this cannot race.
            let device = Device::Cuda(0);
            let like = cpu.to_device(device);
            tch::Cuda::manual_seed_all(11);
            let undisturbed = Tensor::randn([8], (Kind::Float, device));
            tch::Cuda::manual_seed_all(11);
            let drawn = noise.sample(&like, 1.0, 2, 5);
            let after = Tensor::randn([8], (Kind::Float, device));
            assert!(after.equal(&undisturbed), "a noise draw moved libtorch's CUDA generator");
            assert_eq!(drawn.device(), device);
            assert!(drawn.to_device(Device::Cpu).equal(&reference), "CUDA draws are the keystream's");
        }
    }

    #[test]
    fn low_precision_gradients_get_f32_noise_and_sums() {
        // A bf16 parameter's clipped sum arrives in f32 (the engine's accumulation dtype); the noise is
        // drawn and added in f32, not rounded to bf16 (whose 8-bit mantissa is not the Gaussian mechanism).
        let sum = Tensor::zeros([1 << 16], (Kind::Float, Device::Cpu));
        let out =
            GaussianNoise::new(NoiseSeed::Fixed([4; 32])).privatize(&[("w".into(), sum)], 1.0, 1e-3, 1.0, 1).unwrap();
        assert_eq!(out[0].1.kind(), Kind::Float);
        // bf16 keeps 8 significant bits: f32 noise has (almost) no value that survives a bf16 round trip.
        let rounded = out[0].1.to_kind(Kind::BFloat16).to_kind(Kind::Float);
        let exact = out[0].1.eq_tensor(&rounded).sum(Kind::Int64).int64_value(&[]);
        assert!(exact < 1 << 10, "{exact} of 65536 noise values are bf16-representable");
        assert_eq!(
            crate::engine::layers::accumulation_kind(Kind::BFloat16),
            Kind::Float,
            "bf16 parameters accumulate in f32"
        );
    }
}
