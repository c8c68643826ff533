//! Where the time of one 124M-draw noise sample goes (a throw-away measurement; see results/bench/notes.md).
use std::time::Instant;

use chacha20::cipher::{KeyIvInit, StreamCipher};
use chacha20::{ChaCha12, ChaCha20, ChaCha8};
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use rayon::prelude::*;

const N: usize = 124_000_000;

fn main() {
    let key = [7u8; 32];
    let mut buf = vec![0u8; N * 8 / 2]; // half: one thread's share
    for (name, f) in [
        (
            "chacha20",
            Box::new(|b: &mut [u8]| ChaCha20::new(&key.into(), &[0u8; 12].into()).apply_keystream(b))
                as Box<dyn Fn(&mut [u8])>,
        ),
        ("chacha12", Box::new(|b: &mut [u8]| ChaCha12::new(&key.into(), &[0u8; 12].into()).apply_keystream(b))),
        ("chacha8", Box::new(|b: &mut [u8]| ChaCha8::new(&key.into(), &[0u8; 12].into()).apply_keystream(b))),
    ] {
        let t = Instant::now();
        f(&mut buf);
        println!("{name}: {:.3} s for {} MB (one thread)", t.elapsed().as_secs_f64(), buf.len() >> 20);
    }
    let mut v = vec![0f32; N / 2];
    let t = Instant::now();
    let mut rng = rand_chacha::ChaCha12Rng::from_seed(key);
    v.iter_mut().for_each(|x| *x = rng.sample::<f32, _>(StandardNormal));
    println!(
        "rand_chacha ChaCha12 + ziggurat f32: {:.3} s for {} draws (one thread)",
        t.elapsed().as_secs_f64(),
        v.len()
    );
    let t = Instant::now();
    let mut rng = rand_chacha::ChaCha12Rng::from_seed(key);
    v.iter_mut().for_each(|x| *x = rng.gen::<f32>());
    println!("rand_chacha ChaCha12 uniform f32: {:.3} s", t.elapsed().as_secs_f64());
    let mut all = vec![0f32; N];
    let t = Instant::now();
    all.par_chunks_mut(1 << 16).enumerate().for_each(|(c, xs)| {
        let mut rng = rand_chacha::ChaCha12Rng::from_seed(key);
        rng.set_stream(c as u64);
        xs.iter_mut().for_each(|x| *x = rng.sample::<f32, _>(StandardNormal));
    });
    println!("parallel ChaCha12 + ziggurat: {:.3} s for {N}", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let tensor = tch::Tensor::from_slice(&all);
    println!("from_slice copy: {:.3} s ({:?})", t.elapsed().as_secs_f64(), tensor.size());
}
