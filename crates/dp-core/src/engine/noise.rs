//! Gaussian noise for the clipped sum (Abadi et al. 2016; Li et al. 2022, Sec. 3): once per logical batch
//! g̃ = (Σ_i c_i g_i + N(0, σ²C²·I)) / B, with B the *expected* batch size (q·n for Poisson sampling), not
//! the realised one, so that the released mean does not depend on the batch size.
//!
//! Draws are made in Rust, not by libtorch ([`super::normal`]: the AES-256-CTR keystream and the
//! ziggurat) under a per-draw key — SHA-256 of (run noise key, step, parameter index) for a
//! fixed seed ([`super::keys`]), 256 fresh bits from the OS otherwise — in independent chunks of
//! [`CHUNK`] draws filled in parallel (`rayon`). This is reproducible from the seed regardless of thread
//! count, independent of libtorch's global generator (which other code and parallel tests also use), and
//! parallel where libtorch's CPU `normal_` is serial. On the CPU each chunk's draws are added to the
//! released tensor's slice while they are in cache: the noise never exists as a tensor of the parameter's
//! size (tch gives no safe write access to a tensor's storage, so each chunk is copied once, from cache).
//! On CUDA the draws are this keystream's too, made on the host and copied to the device — libtorch's
//! CUDA generator takes a 64-bit seed (no key could fill it without collisions between (step, parameter)
//! pairs) and is global (reseeding it would also reset dropout's randomness); the copy costs one
//! host-to-device transfer of the parameter's size per step. `Secure` draws a fresh 256-bit key from the
//! OS for every call: no seed can reproduce the noise (one `getrandom` call per parameter tensor per step).

use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

use super::keys::Key;
use super::normal::{self, Draw, CHUNK};
use super::EngineError;

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
            Tensor::from_slice(&draws::<f64>(&key, n, std))
        } else {
            Tensor::from_slice(&draws::<f32>(&key, n, std))
        };
        t.reshape(like.size()).to_device(like.device())
    }

    /// (g + N(0, std²)) / batch, chunk by chunk in parallel, for a contiguous CPU f32/f64 `g`: into a new
    /// tensor (`in_place` false), or into g itself. Each chunk's draws (those of [`sample`](Self::sample)
    /// with the same key) are added and the sum divided while it is in cache, so memory is read and
    /// written once and no tensor of g's size holds the noise alone.
    fn noisy_mean(
        &self,
        g: Tensor,
        std: f64,
        batch: f64,
        step: u64,
        index: u64,
        in_place: bool,
    ) -> Result<Tensor, EngineError> {
        let key = self.draw_key(step, index);
        let out = if in_place { g.shallow_clone() } else { Tensor::f_empty(g.size(), (g.kind(), Device::Cpu))? };
        let sources = if in_place { None } else { Some(g.f_view([-1])?.f_split(CHUNK as i64, 0)?) };
        let targets = out.f_view([-1])?.f_split(CHUNK as i64, 0)?;
        let pairs: Vec<(Option<Tensor>, Tensor)> = match sources {
            Some(s) => s.into_iter().map(Some).zip(targets).collect(),
            None => targets.into_iter().map(|t| (None, t)).collect(),
        };
        if g.kind() == Kind::Double {
            noisy_chunks::<f64>(&key, pairs, std, batch)?
        } else {
            noisy_chunks::<f32>(&key, pairs, std, batch)?
        }
        Ok(out)
    }

    /// The released gradients: (Σ_i c_i g_i + N(0, σ²C²)) / expected_batch, per parameter, as new tensors
    /// (`sums` are left as they are).
    pub fn privatize(
        &self,
        sums: &[(String, Tensor)],
        noise_multiplier: f64,
        max_grad_norm: f64,
        expected_batch: f64,
        step: u64,
    ) -> Result<Vec<(String, Tensor)>, EngineError> {
        let std = checked_std(noise_multiplier, max_grad_norm, expected_batch)?;
        sums.iter()
            .enumerate()
            .map(|(i, (name, g))| {
                Ok((name.clone(), self.release_one(g.shallow_clone(), std, expected_batch, step, i, false)?))
            })
            .collect()
    }

    /// [`privatize`](Self::privatize) on sums the caller gives up ([`super::step::ClippedSum`]'s own
    /// buffers): contiguous CPU sums are overwritten in place, so that the release needs no second buffer
    /// of the model's size next to the sums (the step's peak memory; issue 20 part 2). A sum that is a
    /// view (the broadcast zeros of an empty batch) or on another device is released into a new tensor.
    pub(crate) fn privatize_owned(
        &self,
        sums: Vec<(String, Tensor)>,
        noise_multiplier: f64,
        max_grad_norm: f64,
        expected_batch: f64,
        step: u64,
    ) -> Result<Vec<(String, Tensor)>, EngineError> {
        let std = checked_std(noise_multiplier, max_grad_norm, expected_batch)?;
        sums.into_iter()
            .enumerate()
            .map(|(i, (name, g))| {
                let in_place = g.is_contiguous();
                Ok((name, self.release_one(g, std, expected_batch, step, i, in_place)?))
            })
            .collect()
    }

    /// (g + N(0, std²)) / batch for parameter `index`.
    fn release_one(
        &self,
        g: Tensor,
        std: f64,
        batch: f64,
        step: u64,
        index: usize,
        in_place: bool,
    ) -> Result<Tensor, EngineError> {
        let index = index as u64;
        Ok(if std == 0.0 {
            g.f_div_scalar(batch)?
        } else if g.device() == Device::Cpu && matches!(g.kind(), Kind::Float | Kind::Double) {
            if g.is_contiguous() {
                self.noisy_mean(g, std, batch, step, index, in_place)?
            } else {
                self.noisy_mean(g.f_contiguous()?, std, batch, step, index, true)?
            }
        } else {
            // Other devices (and kinds): the same draws, copied to the device in one tensor.
            let mut out = self.sample(&g, std, step, index);
            let _ = out.f_add_(&g)?.f_div_scalar_(batch)?;
            out
        })
    }
}

/// σC, after checking σ ≥ 0, C > 0 when there is noise, and B > 0 (all finite).
fn checked_std(noise_multiplier: f64, max_grad_norm: f64, expected_batch: f64) -> Result<f64, EngineError> {
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
    Ok(noise_multiplier * max_grad_norm)
}

/// `n` draws of scale `std` under `key`: chunk c is stream c.
fn draws<T: Draw>(key: &Key, n: usize, std: f64) -> Vec<T> {
    let mut v = vec![T::default(); n];
    v.par_chunks_mut(CHUNK).enumerate().for_each(|(c, xs)| normal::fill(key, c as u64, std, xs));
    v
}

/// Chunk c of the output = (chunk c of g + stream c's draws) / batch, in parallel, each task with a
/// cache-sized buffer of its own; without a source chunk the output chunk is g's (in place).
fn noisy_chunks<T: Draw>(
    key: &Key,
    pairs: Vec<(Option<Tensor>, Tensor)>,
    std: f64,
    batch: f64,
) -> Result<(), EngineError> {
    pairs.into_par_iter().enumerate().try_for_each_init(
        || vec![T::default(); CHUNK],
        |buf, (c, (g, mut out))| {
            let n = out.numel();
            normal::fill(key, c as u64, std, &mut buf[..n]);
            if let Some(g) = g {
                out.f_copy_(&g)?;
            }
            let _ = out.f_add_(&Tensor::from_slice(&buf[..n]))?.f_div_scalar_(batch)?;
            Ok(())
        },
    )
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
    fn the_in_place_release_equals_the_copying_one_and_takes_views() {
        let noise = GaussianNoise::new(NoiseSeed::Fixed([2; 32]));
        let g = Tensor::randn([70_001], (Kind::Float, Device::Cpu));
        let copied = noise.privatize(&[("w".into(), g.shallow_clone())], 1.0, 0.5, 4.0, 3).unwrap();
        let before = g.copy();
        assert!(g.equal(&before), "privatize left its input alone");
        let owned = noise.privatize_owned(vec![("w".into(), g.shallow_clone())], 1.0, 0.5, 4.0, 3).unwrap();
        assert!(owned[0].1.equal(&copied[0].1));
        assert!(!g.equal(&before), "the owned sum was overwritten, not copied");
        // The broadcast zeros of an empty batch are a view: released into a new tensor.
        let zeros = Tensor::zeros([], (Kind::Float, Device::Cpu)).expand([3, 5], true);
        let out = noise.privatize_owned(vec![("w".into(), zeros)], 1.0, 0.5, 4.0, 3).unwrap();
        let want = noise.sample(&Tensor::zeros([3, 5], (Kind::Float, Device::Cpu)), 0.5, 3, 0) / 4.0;
        assert!(out[0].1.allclose(&want, 1e-7, 1e-7, false));
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
