//! Time of one non-private training step (forward, per-example causal-LM loss, mean, backward into
//! `.grad`) of our GPT-2 on random weights and random token ids; prints JSON. `make bench-models` runs it
//! next to `python/bench/bench_model_step.py` (transformers, PyTorch eager) on the same config and batch.
//!
//! Usage: bench_step CONFIG.json BATCH SEQ_LEN STEPS WARMUP

use std::time::Instant;

use dp_core::engine::Tape;
use models::{causal_lm_losses, from_config, AnyModel, HeadKind, Inputs, LoadOptions};
use tch::{Device, Kind, Tensor};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 {
        eprintln!("usage: bench_step CONFIG.json BATCH SEQ_LEN STEPS WARMUP");
        std::process::exit(2);
    }
    let num = |i: usize| args[i].parse::<i64>().unwrap_or_else(|e| panic!("argument {i} ({}): {e}", args[i]));
    let (batch, seq, steps, warmup) = (num(2), num(3), num(4) as usize, num(5) as usize);
    let opts = LoadOptions { device: Device::Cpu, kind: Kind::Float };
    let AnyModel::Gpt2(model) = from_config(std::path::Path::new(&args[1]), HeadKind::MaskedLm, &opts, 0).unwrap()
    else {
        panic!("the benchmark config must be a GPT-2 config");
    };
    let params = model.trainable();
    tch::manual_seed(1);
    let ids = Tensor::randint(model.config.vocab_size, [batch, seq], (Kind::Int64, Device::Cpu));
    let mut times = Vec::with_capacity(steps);
    for step in 0..warmup + steps {
        let start = Instant::now();
        for (_, p) in &params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
        let logits = model.forward(Inputs::ids(&ids), None, true, &mut Tape::off()).unwrap();
        let loss = causal_lm_losses(&logits, &ids).unwrap().mean(Kind::Float);
        loss.backward();
        let elapsed = start.elapsed().as_secs_f64();
        if step >= warmup {
            times.push(elapsed);
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "{}",
        serde_json::json!({
            "impl": "dpft", "batch_size": batch, "seq_len": seq, "steps": steps,
            "median_step_s": median, "step_times_s": times, "threads": tch::get_num_threads(),
        })
    );
}
