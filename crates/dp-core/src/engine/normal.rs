//! Standard normal draws from a keyed cipher stream, for the Gaussian mechanism's noise ([`super::noise`]).
//!
//! **Generator: AES-256 in counter mode** (RustCrypto's `aes` and `ctr`; AES-NI/VAES, or ARMv8's AES
//! instructions, detected at run time, a constant-time software AES otherwise) under the draw's 256-bit
//! key, one stream per chunk of [`CHUNK`] draws (the chunk's index is the counter block's first 64 bits,
//! the block counter the last 64), so chunks are filled in any order, on any number of threads, with the
//! same values. Security argument: an adversary who could tell these words from uniform ones could tell
//! AES-256 from a random permutation; the best known attacks on full AES-256 are biclique key recoveries
//! at about 2^254 work, and counter mode's distinguishing advantage is at most q²/2^129 for q blocks per
//! key (here about 2^14 per chunk, and keys never repeat: SHA-256 of the run key, step and tensor). The key
//! keeps the 256 bits the ChaCha20 keystream had. Why AES and not ChaCha12 or ChaCha8: on this project's
//! machine (AES-NI), 8 bytes of AES-256-CTR take 1.7 ns against 2.2 ns (ChaCha12), 1.5 ns (ChaCha8) and
//! 2.9 ns (ChaCha20, from an earlier measurement: 0.36 s per 124M draws), with the largest security margin of the fast ones (results/bench/notes.md).
//!
//! **Transform:** `rand_distr`'s ziggurat (Marsaglia & Tsang 2000; 256 layers, f64, the layer index and
//! the uniform from disjoint bits of one 64-bit word; an exact tail beyond r = 3.654), rounded once to
//! f32 for f32 parameters. A hand-written ziggurat on the same words measured no faster, so the
//! maintained one stays. As for every floating-point sampler (libtorch's, Opacus'), values lie on a grid,
//! which Jin et al. (IEEE S&P 2022) show can leak through the low bits of released values; a discrete
//! Gaussian would close that and is not done here.

use aes::Aes256;
use ctr::cipher::{KeyIvInit, StreamCipher};
use rand::{Rng, RngCore};
use rand_distr::StandardNormal;

/// Draws per independent stream (and per parallel task): 32,768 values, 128 KiB of f32, so that a
/// chunk's draws are still in cache when they are added to the gradient's slice (and each add works on
/// at most libtorch's grain size, so it does not fork threads of its own inside a task).
pub const CHUNK: usize = 1 << 15;

/// Keystream words buffered per refill: 4 KiB.
const WORDS: usize = 512;

type Cipher = ctr::Ctr64BE<Aes256>;

/// 64-bit words of one chunk's stream, for `rand_distr`'s samplers (`ctr` ships no `RngCore`).
pub struct Words {
    cipher: Cipher,
    bytes: [u8; WORDS * 8],
    pos: usize,
}

impl Words {
    fn new(key: &[u8; 32], chunk: u64) -> Self {
        let mut iv = [0u8; 16];
        iv[..8].copy_from_slice(&chunk.to_be_bytes());
        Self { cipher: Cipher::new(key.into(), &iv.into()), bytes: [0; WORDS * 8], pos: WORDS * 8 }
    }
}

impl RngCore for Words {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }

    #[inline]
    fn next_u64(&mut self) -> u64 {
        if self.pos + 8 > self.bytes.len() {
            self.bytes.fill(0);
            self.cipher.apply_keystream(&mut self.bytes);
            self.pos = 0;
        }
        let w = u64::from_le_bytes(self.bytes[self.pos..self.pos + 8].try_into().expect("8 bytes"));
        self.pos += 8;
        w
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes()[..chunk.len()]);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

/// A float type the draws are written in.
pub trait Draw: Copy + Default + Send + Sync + tch::kind::Element + 'static {
    /// `scale`·N(0, 1) in this type, from `rng`. (Through `rand_distr`'s per-type entry point: its f32
    /// path, the f64 ziggurat rounded, inlines into the fill loop, measured 1.7× faster than calling
    /// the f64 path and rounding here.)
    fn draw(rng: &mut Words, scale: f64) -> Self;
}

impl Draw for f32 {
    #[inline]
    fn draw(rng: &mut Words, scale: f64) -> Self {
        scale as f32 * rng.sample::<f32, _>(StandardNormal)
    }
}

impl Draw for f64 {
    #[inline]
    fn draw(rng: &mut Words, scale: f64) -> Self {
        scale * rng.sample::<f64, _>(StandardNormal)
    }
}

/// Fills `out` with `scale`·N(0, 1): the first `out.len()` draws of stream `chunk` under `key`. Values
/// depend on (key, chunk, position) only, never on the thread or on how many are drawn after them.
pub fn fill<T: Draw>(key: &[u8; 32], chunk: u64, scale: f64, out: &mut [T]) {
    let mut words = Words::new(key, chunk);
    out.iter_mut().for_each(|o| *o = T::draw(&mut words, scale));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_prefix_does_not_depend_on_the_length_drawn() {
        let key = [5u8; 32];
        let mut long = vec![0f64; 3 * WORDS + 13];
        fill(&key, 4, 1.0, &mut long);
        for n in [1, 7, WORDS - 1, WORDS, WORDS + 1, 2 * WORDS + 5] {
            let mut short = vec![0f64; n];
            fill(&key, 4, 1.0, &mut short);
            assert_eq!(short[..], long[..n], "prefix of {n}");
        }
        let mut f32s = vec![0f32; 100];
        fill(&key, 4, 2.0, &mut f32s);
        assert!(
            f32s.iter().zip(&long).all(|(a, b)| *a == 2.0 * (*b as f32)),
            "f32 draws are the f64 draws rounded, scaled"
        );
        let mut other = vec![0f64; 100];
        fill(&key, 5, 1.0, &mut other);
        assert_ne!(other[..], long[..100]);
    }

    #[test]
    fn the_word_source_is_aes_256_ctr() {
        // FIPS-197 C.3's AES-256 key; counter block = chunk 0 then block 0: the first keystream block is
        // AES-256(key, 0¹²⁸), computed here with the block cipher itself.
        use aes::cipher::{BlockEncrypt, KeyInit};
        let key: [u8; 32] = std::array::from_fn(|i| i as u8);
        let mut block = aes::Block::default();
        Aes256::new(&key.into()).encrypt_block(&mut block);
        let mut words = Words::new(&key, 0);
        let want =
            [u64::from_le_bytes(block[..8].try_into().unwrap()), u64::from_le_bytes(block[8..].try_into().unwrap())];
        assert_eq!([words.next_u64(), words.next_u64()], want);
    }
}
