"""One non-private GPT-2 training step, dpft (Rust, tch) next to transformers in PyTorch eager mode.

Run: make bench-models   (writes results/bench/model_step.{json,md} and prints the table)

Both sides: the same config (GPT-2 small unless --config), random weights, random token ids [B, T], dropout
on (training mode), loss = mean next-token cross-entropy, backward into .grad (zeroed before each step),
median over STEPS after WARMUP, the same number of threads, and the same allocator settings (this script sets
MALLOC_MMAP_MAX_/MALLOC_TRIM_THRESHOLD_ for both processes; ../shared/docs/toolchain.md explains why they
matter on CPU). Each side runs in its own process, one after the other.
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
GPT2_SMALL = {
    "model_type": "gpt2", "vocab_size": 50257, "n_positions": 1024, "n_embd": 768, "n_layer": 12, "n_head": 12,
    "activation_function": "gelu_new", "resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1,
    "layer_norm_epsilon": 1e-5, "initializer_range": 0.02, "bos_token_id": 50256, "eos_token_id": 50256,
}
ALLOC = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "68719476736"}


def transformers_side(config_path, batch, seq, steps, warmup):
    import torch
    import transformers as tf

    torch.manual_seed(0)
    config = tf.GPT2Config(**json.loads(pathlib.Path(config_path).read_text()))
    model = tf.GPT2LMHeadModel(config)
    model.train()
    ids = torch.randint(config.vocab_size, (batch, seq))
    times = []
    for step in range(warmup + steps):
        t = time.perf_counter()
        model.zero_grad(set_to_none=False)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        dt = time.perf_counter() - t
        if step >= warmup:
            times.append(dt)
    return {
        "impl": "transformers", "version": tf.__version__, "attn_implementation": model.config._attn_implementation,
        "batch_size": batch, "seq_len": seq, "steps": steps, "median_step_s": statistics.median(times),
        "step_times_s": sorted(times), "threads": torch.get_num_threads(),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=pathlib.Path, default=None, help="GPT-2 config.json [GPT-2 small]")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "results" / "bench")
    ap.add_argument("--side", choices=["transformers"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.side == "transformers":
        print(json.dumps(transformers_side(a.config, a.batch_size, a.seq_len, a.steps, a.warmup)))
        return
    a.out.mkdir(parents=True, exist_ok=True)
    config = a.config
    if config is None:
        config = a.out / "gpt2-small-config.json"
        config.write_text(json.dumps(GPT2_SMALL, indent=1) + "\n")
    env = dict(os.environ, **ALLOC)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "models", "--example", "bench_step"], cwd=ROOT, check=True)
    ours = json.loads(subprocess.run(
        [str(ROOT / "target" / "release" / "examples" / "bench_step"), str(config), str(a.batch_size), str(a.seq_len),
         str(a.steps), str(a.warmup)], env=env, check=True, capture_output=True, text=True).stdout)
    theirs = json.loads(subprocess.run(
        [sys.executable, __file__, "--side", "transformers", "--config", str(config), "--batch-size", str(a.batch_size),
         "--seq-len", str(a.seq_len), "--steps", str(a.steps), "--warmup", str(a.warmup)],
        env=env, check=True, capture_output=True, text=True).stdout)
    ratio = ours["median_step_s"] / theirs["median_step_s"]
    result = {"config": str(config.name), "dpft": ours, "transformers": theirs, "ratio_dpft_over_transformers": ratio,
              "allocator_env": ALLOC, "cpu_count": os.cpu_count()}
    (a.out / "model_step.json").write_text(json.dumps(result, indent=1) + "\n")
    table = "\n".join([
        "# One non-private GPT-2 training step: dpft vs transformers (PyTorch eager)",
        "",
        f"Config {config.name}, batch {a.batch_size}, sequence length {a.seq_len}, median of {a.steps} steps after "
        f"{a.warmup} warm-up, {ours['threads']} threads, allocator env {ALLOC}, {os.cpu_count()} CPUs. "
        "Written by `make bench-models` (python/bench/bench_model_step.py).",
        "",
        "| implementation | median step (s) | ratio to transformers |",
        "|---|---:|---:|",
        f"| transformers {theirs['version']} ({theirs['attn_implementation']} attention) | {theirs['median_step_s']:.3f} | 1.00 |",
        f"| dpft (tch) | {ours['median_step_s']:.3f} | {ratio:.2f} |",
        "",
    ])
    (a.out / "model_step.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
