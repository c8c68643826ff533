//! The Gaussian mechanism's noise on GPT-2 small's size (124M draws, f32): the released tensor
//! (g + σC·z)/B as `privatize` makes it, against the sampler dpft used before (ChaCha20 keystream,
//! `rand_distr`'s ziggurat, a Vec copied into a fresh tensor, then the in-place add and divide), kept
//! here as the baseline; and the draws alone into a tensor (`sample`), before and now. Run under the
//! allocator settings `dpft` runs under (crates/harness/src/allocator.rs: freed buffers are reused, not
//! handed back to the OS and faulted in again), for both. `cargo bench -p dp-core --bench noise`;
//! results/bench/notes.md has the figures.

use chacha20::cipher::{KeyIvInit, StreamCipher};
use chacha20::ChaCha20;
use criterion::{criterion_group, Criterion};
use dp_core::engine::noise::{GaussianNoise, NoiseSeed};
use rand::{Rng, RngCore};
use rand_distr::StandardNormal;
use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

const DRAWS: i64 = 124_000_000;

/// The old generator: 64-bit words of one chunk's ChaCha20 keystream.
struct Keystream {
    cipher: ChaCha20,
    buf: [u8; 4096],
    pos: usize,
}

impl RngCore for Keystream {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        if self.pos + 8 > self.buf.len() {
            self.buf.fill(0);
            self.cipher.apply_keystream(&mut self.buf);
            self.pos = 0;
        }
        let v = u64::from_le_bytes(self.buf[self.pos..self.pos + 8].try_into().expect("8 bytes"));
        self.pos += 8;
        v
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        dest.iter_mut().for_each(|b| *b = self.next_u64() as u8);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

/// The old draws into a tensor: ziggurat draws in 2^16 chunks of a Vec, copied into a tensor.
fn baseline_sample(n: usize, std: f32, key: &[u8; 32]) -> Tensor {
    let mut v = vec![0f32; n];
    v.par_chunks_mut(1 << 16).enumerate().for_each(|(c, xs)| {
        let mut nonce = [0u8; 12];
        nonce[..8].copy_from_slice(&(c as u64).to_le_bytes());
        let mut rng = Keystream { cipher: ChaCha20::new(key.into(), &nonce.into()), buf: [0; 4096], pos: 4096 };
        xs.iter_mut().for_each(|x| *x = rng.sample::<f32, _>(StandardNormal) * std)
    });
    Tensor::from_slice(&v)
}

/// The old `privatize` of one tensor: ziggurat draws in 2^16 chunks, copied into a tensor, added, divided.
fn baseline(g: &Tensor, std: f32, batch: f64, key: &[u8; 32]) -> Tensor {
    let mut out = baseline_sample(g.numel(), std, key).reshape(g.size());
    let _ = out.g_add_(g);
    let _ = out.g_div_scalar_(batch);
    out
}

fn noise(c: &mut Criterion) {
    let g = Tensor::zeros([DRAWS], (Kind::Float, Device::Cpu));
    let sums = vec![("w".to_string(), g.shallow_clone())];
    let fixed = GaussianNoise::new(NoiseSeed::Fixed([7; 32]));
    let secure = GaussianNoise::new(NoiseSeed::Secure);
    let mut group = c.benchmark_group("draws_124M_f32");
    group.sample_size(10);
    group.bench_function("before: chacha20 + ziggurat, Vec copied into a tensor", |b| {
        b.iter(|| baseline_sample(DRAWS as usize, 1.0, &[7; 32]))
    });
    group.bench_function("now: aes-256-ctr + ziggurat, Vec copied into a tensor (sample)", |b| {
        b.iter(|| fixed.sample(&g, 1.0, 1, 0))
    });
    group.finish();
    let mut group = c.benchmark_group("privatize_124M_f32");
    group.sample_size(10);
    group.bench_function("before: draws, then add and divide", |b| b.iter(|| baseline(&g, 1.0, 1024.0, &[7; 32])));
    group.bench_function("now: per chunk in cache", |b| {
        b.iter(|| fixed.privatize(&sums, 1.0, 1.0, 1024.0, 1).expect("privatize"))
    });
    group.bench_function("now: per chunk in cache, secure keys", |b| {
        b.iter(|| secure.privatize(&sums, 1.0, 1.0, 1024.0, 1).expect("privatize"))
    });
    group.finish();
}

criterion_group!(benches, noise);

/// Re-executes the bench once with dpft's allocator settings (the same values as
/// crates/harness/src/allocator.rs), then runs criterion.
fn main() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("DPFT_MALLOC").is_none() {
        use std::os::unix::process::CommandExt;
        if let Ok(exe) = std::env::current_exe() {
            let _failed = std::process::Command::new(exe)
                .args(std::env::args_os().skip(1))
                .env("MALLOC_MMAP_THRESHOLD_", (4u64 << 30).to_string())
                .env("MALLOC_TRIM_THRESHOLD_", (8u64 << 30).to_string())
                .env("DPFT_MALLOC", "tuned")
                .exec();
        }
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
