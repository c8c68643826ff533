"""Checks of python/bench/bench_reference.py, the PyTorch / Opacus reference of `dpft bench`.

Run: python -m pytest -q python/tests/test_bench_reference.py
     (about 50 CPU-seconds, most of them five interpreters importing torch, transformers and opacus; no GPU,
     no data)

Tiny configs written to tmp_path (GPT-2: n_embd 32, 2 layers, 2 heads, vocab 128, 64 positions; RoBERTa:
hidden 32, 2 layers, intermediate 64, vocab 128), B=4, T=16.
- The command line, run as a subprocess (all runs start together at the beginning, with OMP_NUM_THREADS=1,
  while the in-process checks run): GPT-2 in the three modes, RoBERTa nonprivate and opacus-ghost. The JSON
  is one object on stdout with the documented keys; examples_per_s = batch_size / median_step_s and
  median_step_s = median(step_times_s) to 1e-12 relative; peak_mem_bytes > 0; threads = OMP_NUM_THREADS;
  parameters = the trainable count of the model built here with transformers (plus vocab x n_embd where
  opacus-ghost unties lm_head). Errors: unknown --model, unreadable config -> exit 2 naming the cause
  (subprocess); CUDA unavailable, --seq-len too long -> main() returns 2; a bad or missing flag -> argparse's
  exit 2 (in process).
- The Conv1D -> nn.Linear swap (float64, eval mode): logits equal to 1e-10, no Conv1D left, tie kept.
- Clipping (float64, dropout 0, noise 0, C = 1e-3 so every example is clipped), opacus-ghost and
  opacus-hooks, GPT-2 and RoBERTa: the gradient Adam receives equals (1/B) sum_i g_i min(1, C/(|g_i|+1e-6))
  from per-example gradients computed one example at a time with plain autograd (1e-8 relative; for
  hooks on GPT-2 this includes the tied wte/lm_head, for ghost the untied copy), its norm is <= C, and the
  non-private gradient's norm is > 100 C. With noise multiplier 1 the added noise has standard deviation
  sigma C / B (within 5%, over the ~30k coordinates).
- Opacus refusing a module (BatchNorm in the classifier): OpacusRefused, not a frozen layer.
"""

import functools
import importlib.util
import json
import math
import os
import pathlib
import statistics
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "python" / "bench" / "bench_reference.py"
_spec = importlib.util.spec_from_file_location("bench_reference", SCRIPT)
br = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(br)

B, T = 4, 16
GPT2_TINY = {"model_type": "gpt2", "vocab_size": 128, "n_positions": 64, "n_embd": 32, "n_layer": 2, "n_head": 2,
             "bos_token_id": 127, "eos_token_id": 127}
ROBERTA_TINY = {"model_type": "roberta", "vocab_size": 128, "max_position_embeddings": 66, "hidden_size": 32,
                "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64, "type_vocab_size": 1,
                "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2}
NO_DROPOUT = {"gpt2": {"resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0},
              "roberta": {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}}
TINY = {"gpt2": GPT2_TINY, "roberta": ROBERTA_TINY}
RUNS = [("gpt2", "nonprivate"), ("gpt2", "opacus-ghost"), ("gpt2", "opacus-hooks"),
        ("roberta", "nonprivate"), ("roberta", "opacus-ghost")]
KEYS = {"impl", "mode", "model", "batch_size", "seq_len", "median_step_s", "examples_per_s", "peak_mem_bytes",
        "peak_mem_kind", "step_times_s", "steps", "warmup", "device", "threads", "parameters", "versions", "notes"}


def script(*args, env=None):
    return subprocess.Popen([sys.executable, str(SCRIPT), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


@pytest.fixture(scope="module")
def configs(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench_configs")
    paths = {}
    for family, cfg in TINY.items():
        paths[family] = d / f"{family}.json"
        paths[family].write_text(json.dumps(cfg))
    return paths


@pytest.fixture(scope="module", autouse=True)
def runs(request, configs):
    """Starts the command-line runs test_command_line_json (at the end of the file) will check, all at once,
    so that they overlap the in-process checks; and runs torch on one thread in this process meanwhile (tiny
    tensors: a second thread only fights the subprocesses for the cores)."""
    selected = {(item.callspec.params["family"], item.callspec.params["mode"]) for item in request.session.items
                if getattr(item, "originalname", None) == "test_command_line_json"}
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = {(family, mode): script("--model", str(configs[family]), "--batch-size", str(B), "--seq-len", str(T),
                                    "--mode", mode, "--steps", "2", "--warmup", "1", "--json", env=env)
             for family, mode in RUNS if (family, mode) in selected}
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield procs
    torch.set_num_threads(threads)
    for p in procs.values():
        if p.poll() is None:
            p.kill()
            p.communicate()


def test_unknown_model_exits_2():
    p = script("--model", "gpt5-huge", "--batch-size", "2", "--seq-len", "8", "--mode", "nonprivate")
    out, err = p.communicate()
    assert p.returncode == 2 and out == ""
    assert "--model gpt5-huge: not a built-in model" in err


def test_unreadable_config_exits_2(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    p = script("--model", str(bad), "--batch-size", "2", "--seq-len", "8", "--mode", "nonprivate")
    out, err = p.communicate()
    assert p.returncode == 2 and out == "" and f"--model {bad}: cannot read the config" in err
    bad.write_text(json.dumps({"model_type": "t5"}))
    p = script("--model", str(bad), "--batch-size", "2", "--seq-len", "8", "--mode", "nonprivate")
    out, err = p.communicate()
    assert p.returncode == 2 and "model_type 't5' is not one of" in err


def test_bad_arguments_exit_2(configs, capsys):
    for args in (["--model", "gpt2", "--batch-size", "2", "--seq-len", "8"],  # no --mode
                 ["--model", "gpt2", "--batch-size", "0", "--seq-len", "8", "--mode", "nonprivate"],
                 ["--model", "gpt2", "--batch-size", "2", "--seq-len", "8", "--mode", "ghost"],
                 ["--model", "gpt2", "--batch-size", "2", "--seq-len", "8", "--mode", "nonprivate", "--device", "tpu"]):
        with pytest.raises(SystemExit) as e:
            br.main(args)
        assert e.value.code == 2, args
        assert "usage:" in capsys.readouterr().err
    assert br.main(["--model", str(configs["gpt2"]), "--batch-size", "2", "--seq-len", "65", "--mode", "nonprivate"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "--seq-len 65 exceeds the 64 positions" in err


def test_cuda_unavailable_exits_2(configs, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    args = ["--model", str(configs["gpt2"]), "--batch-size", "2", "--seq-len", "8", "--mode", "nonprivate"]
    assert br.main(args + ["--device", "cuda:0"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "--device cuda:0: CUDA is not available" in err


def test_conv1d_swap_keeps_logits():
    import torch
    from transformers.pytorch_utils import Conv1D

    family, cfg = "gpt2", GPT2_TINY
    model = br.build_model(family, cfg, 0).double().eval()
    inputs, _ = br.make_batch(family, cfg, B, T, 0)
    with torch.no_grad():
        before = br.forward(model, family, inputs)
    n = br.conv1d_to_linear(model)
    assert n == 4 * cfg["n_layer"]
    assert not any(isinstance(m, Conv1D) for m in model.modules())
    assert br.lm_head_tied(model)
    with torch.no_grad():
        after = br.forward(model, family, inputs)
    assert after.dtype == torch.float64
    assert (after - before).abs().max().item() <= 1e-10


def per_example_grads(family, cfg, mode, seed=0):
    """[B, P]: each example's gradient alone, by plain autograd, on the model `mode` trains (float64)."""
    import torch

    model, _ = br.prepare_model(family, cfg, seed, mode, dtype=torch.float64)
    inputs, labels = br.make_batch(family, cfg, B, T, seed)
    params = [p for p in model.parameters() if p.requires_grad]
    rows = []
    for i in range(B):
        one = {k: v[i:i + 1] for k, v in inputs.items()}
        loss = br.per_example_loss(family, br.forward(model, family, one), labels[i:i + 1]).sum()
        rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)]))
    return torch.stack(rows)


@functools.cache
def nonprivate_gradient(family):
    import torch

    cfg = {**TINY[family], **NO_DROPOUT[family]}
    return br.applied_gradient(family, cfg, "nonprivate", batch_size=B, seq_len=T, dtype=torch.float64)


@pytest.mark.parametrize("family", ["gpt2", "roberta"])
@pytest.mark.parametrize("mode", ["opacus-ghost", "opacus-hooks"])
def test_update_is_clipped(family, mode):
    import torch

    cfg = {**TINY[family], **NO_DROPOUT[family]}
    c = 1e-3
    kw = dict(batch_size=B, seq_len=T, dtype=torch.float64)
    nonprivate = nonprivate_gradient(family)
    clipped = br.applied_gradient(family, cfg, mode, max_grad_norm=c, noise_multiplier=0.0, **kw)
    noisy = br.applied_gradient(family, cfg, mode, max_grad_norm=c, noise_multiplier=1.0, **kw)

    g = per_example_grads(family, cfg, mode)
    norms = g.norm(dim=1)
    assert (norms > 10 * c).all()  # every example is clipped
    expected = (g * (c / (norms + 1e-6)).clamp(max=1.0)[:, None]).mean(dim=0)
    assert clipped.shape == expected.shape
    assert (clipped - expected).norm().item() <= 1e-8 * expected.norm().item()
    assert clipped.norm().item() <= c * (1 + 1e-12)
    assert nonprivate.norm().item() > 100 * c
    # Noise N(0, sigma^2 C^2) on the clipped sum, divided by B.
    std = (noisy - clipped).std().item()
    assert abs(std / (c / B) - 1) < 0.05, std


def test_opacus_refusal_is_an_error():
    import torch

    family, cfg = "roberta", ROBERTA_TINY
    model, _ = br.prepare_model(family, cfg, 0, "opacus-hooks")
    hidden = cfg["hidden_size"]
    model.classifier.dense = torch.nn.Sequential(torch.nn.Linear(hidden, hidden), torch.nn.BatchNorm1d(hidden))
    inputs, labels = br.make_batch(family, cfg, B, T, 0)
    for mode in ("opacus-hooks", "opacus-ghost"):
        with pytest.raises(br.OpacusRefused, match="Opacus refused the model"):
            br.make_stepper(model, family, inputs, labels, mode)


def expected_parameters(family, mode):
    import transformers as tf

    cfg = {k: v for k, v in TINY[family].items() if k != "model_type"}
    if family == "gpt2":
        model = tf.GPT2LMHeadModel(tf.GPT2Config(**cfg))
        n = sum(p.numel() for p in model.parameters())
        return n + (cfg["vocab_size"] * cfg["n_embd"] if mode == "opacus-ghost" else 0)
    model = tf.RobertaForSequenceClassification(tf.RobertaConfig(**cfg, num_labels=2))
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("family,mode", RUNS)
def test_command_line_json(runs, configs, family, mode):
    p = runs[(family, mode)]
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 1, out
    r = json.loads(lines[0])
    assert KEYS <= set(r)
    assert r["impl"] == ("pytorch" if mode == "nonprivate" else "opacus")
    assert (r["mode"], r["model"], r["batch_size"], r["seq_len"]) == (mode, str(configs[family]), B, T)
    assert (r["steps"], r["warmup"], r["device"], r["threads"]) == (2, 1, "cpu", 1)
    times = r["step_times_s"]
    assert len(times) == 2 and all(t > 0 for t in times)
    assert r["median_step_s"] == pytest.approx(statistics.median(times), rel=1e-12)
    assert r["examples_per_s"] == pytest.approx(B / r["median_step_s"], rel=1e-12)
    assert isinstance(r["peak_mem_bytes"], int) and r["peak_mem_bytes"] > 0
    assert "VmHWM" in r["peak_mem_kind"]
    assert r["parameters"] == expected_parameters(family, mode)
    assert set(r["versions"]) == {"torch", "transformers", "opacus"}
    assert all(isinstance(n, str) for n in r["notes"])
    assert all(math.isfinite(t) for t in times)
    if family == "gpt2":
        assert r["lm_head_tied"] == (mode != "opacus-ghost")
        assert any("Conv1D" in n for n in r["notes"]) == (mode != "nonprivate")
