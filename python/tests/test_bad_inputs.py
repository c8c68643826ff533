"""Bad and hostile input against the dpft CLI, as a user or a careless script would give it.

Each case runs the built dpft in a fresh working directory and states the exit status it must end with (2
for bad input, 1 for work that cannot fit in memory, 0 where the input is odd but fine) and words its
message must contain: the key, file or flag at fault. Every case must also end without a panic, a Rust
backtrace or libtorch's C++ frames on the terminal (RUST_BACKTRACE=1 is set to make one visible), and
without creating or changing anything in a folder outside its --out (links planted there point at it).

The model is a tiny random GPT-2 written here with transformers, with GPT-2's tokenizer from the data
directory; the data are the first rows of the real E2E training set.
"""

import json
import os
import pathlib
import shutil
import subprocess

import pytest
from datadir import data_dir as shared_data_dir

ROOT = pathlib.Path(__file__).resolve().parents[2]
DPFT = os.environ.get("DPFT_BIN", str(ROOT / "target" / "debug" / "dpft"))

BASE = """model: {{path: {model}, untie_lm_head: true, add_pad_token: true}}
task: {{name: e2e, max_length: 60, max_train_examples: 48, max_eval_examples: 2}}
optimization: {{learning_rate: 1.0e-3, batch_size: 16, physical_batch_size: 8, steps: 2, checkpoint_every: 1, seed: 3}}
privacy: {{noise_multiplier: 1.0, delta: 1.0e-5, max_grad_norm: 0.5, noise_seed: fixed}}
generation: {{num_beams: 1, max_new_tokens: 6, min_new_tokens: 2, meteor: false}}
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The tiny model, the data directory, a folder that must stay untouched, and the base config text."""
    from transformers import GPT2Config, GPT2LMHeadModel
    import torch
    data = shared_data_dir("tokenizers/gpt2/tokenizer.json", "e2e/trainset.csv", "e2e/devset.csv")
    root = tmp_path_factory.mktemp("bad-inputs")
    model = root / "gpt2"
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=50257, n_positions=64, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=50256, eos_token_id=50256)
    GPT2LMHeadModel(config).save_pretrained(model)
    for f in (data / "tokenizers" / "gpt2").iterdir():
        if f.is_file():
            shutil.copy(f, model / f.name)
    outside = root / "outside"
    outside.mkdir()
    (outside / "victim").write_text("keep")
    return {"data": data, "model": model, "outside": outside, "root": root,
            "base": BASE.format(model=model)}


def snapshot(folder):
    return sorted((str(p.relative_to(folder)), p.read_bytes() if p.is_file() else b"")
                  for p in folder.rglob("*"))


def dpft(world, cwd, *args, data=None):
    env = dict(os.environ, RUST_BACKTRACE="1", OMP_NUM_THREADS="1")
    env.pop("DPFT_DEVICE", None)
    cmd = [DPFT, "--device", "cpu", "--data-dir", str(data or world["data"]), *map(str, args)]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=600)


def write(path, text, mode="w"):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


# --- the cases: each a function (world, cwd) -> (process, expected status, words the message must hold).

def cfg(world, cwd, text=None, name="run.yaml"):
    return write(cwd / name, world["base"] if text is None else text)


def train(world, cwd, *extra, text=None, data=None):
    return dpft(world, cwd, "train", cfg(world, cwd, text), "--out", cwd / "out", *extra, data=data)


def replaced(world, old, new):
    assert old in world["base"], old
    return world["base"].replace(old, new)


def interrupted(world, cwd):
    """A run folder stopped after step 1 (checkpoint step-1)."""
    p = train(world, cwd, "--stop-after-steps", "1")
    assert p.returncode == 0, p.stderr
    return cwd / "out"


def e2e_copy(world, cwd, rows):
    """A data directory whose E2E training file holds `rows` (the header first) and the real dev set."""
    d = cwd / "data"
    write(d / "e2e" / "trainset.csv", "\n".join(rows) + "\n")
    os.symlink(world["data"] / "e2e" / "devset.csv", d / "e2e" / "devset.csv")
    return d


def real_rows(world, k, skip=0):
    lines = (world["data"] / "e2e" / "trainset.csv").read_text().splitlines()
    return [lines[0]] + lines[1 + skip:1 + skip + k]


CASES = {
    # Config values and --set: the dotted key, the value, the type it needs, the --set to blame.
    "lr-word-in-file": lambda w, c: (train(w, c, text=replaced(w, "learning_rate: 1.0e-3", "learning_rate: fast")),
                                     2, ["optimization.learning_rate", '"fast"', "needs a number"]),
    "lr-word-by-set": lambda w, c: (train(w, c, "--set", "optimization.learning_rate=fast"),
                                    2, ["optimization.learning_rate", "from --set optimization.learning_rate=fast"]),
    "set-unclosed-list": lambda w, c: (train(w, c, "--set", "optimization.steps=[1,2"),
                                       2, ["--set optimization.steps=[1,2", "malformed YAML"]),
    "set-section-to-number": lambda w, c: (train(w, c, "--set", "optimization=3"),
                                           2, ["optimization = 3", "from --set optimization=3", "mapping"]),
    "set-enum-to-number": lambda w, c: (train(w, c, "--set", "privacy.noise_seed=123"),
                                        2, ["privacy.noise_seed = 123", "`secure`", "`fixed`"]),
    "set-inf-clip": lambda w, c: (train(w, c, "--set", "privacy.max_grad_norm=inf"),
                                  2, ["privacy.max_grad_norm", "finite"]),
    "yaml-inf-clip": lambda w, c: (train(w, c, text=replaced(w, "max_grad_norm: 0.5", "max_grad_norm: .inf")),
                                   2, ["privacy.max_grad_norm", "finite"]),
    "set-without-equals": lambda w, c: (train(w, c, "--set", "optimization.steps"),
                                        2, ["--set optimization.steps", "key=value"]),
    "set-negative-count": lambda w, c: (train(w, c, "--set", "optimization.warmup_steps=-1"),
                                        2, ["optimization.warmup_steps = -1", "whole number"]),
    "unknown-key": lambda w, c: (train(w, c, "--set", "optimization.learnig_rate=1"),
                                 2, ["learnig_rate", "unknown field", "from --set"]),
    "bom-is-read": lambda w, c: (train(w, c, text="\ufeff" + w["base"].replace("seed: 3", "seeed: 3")),
                                 2, ["run.yaml", "seeed", "unknown field"]),
    "empty-config": lambda w, c: (train(w, c, text=""), 2, ["run.yaml", "empty"]),
    "malformed-yaml": lambda w, c: (train(w, c, text="model: {path: [\n"), 2, ["run.yaml", "malformed YAML"]),
    "missing-config": lambda w, c: (dpft(w, c, "train", c / "nope.yaml", "--out", c / "out"),
                                    2, ["nope.yaml", "cannot read"]),
    "delta-above-one": lambda w, c: (train(w, c, "--set", "privacy.delta=1.5"), 2, ["privacy.delta = 1.5"]),
    "steps-zero": lambda w, c: (train(w, c, "--set", "optimization.steps=0"), 2, ["optimization.steps"]),
    "min-above-max-tokens": lambda w, c: (train(w, c, "--set", "generation.min_new_tokens=50"),
                                          2, ["generation.min_new_tokens = 50"]),
    # Plans that cannot work: refused before step 1.
    "delta-at-least-1-over-n": lambda w, c: (train(w, c, "--set", "privacy.delta=0.1"),
                                             2, ["privacy.delta", "1/n", "allow_large_delta"]),
    "budget-fits-no-step": lambda w, c: (train(w, c, "--set", "privacy.target_epsilon=0.01",
                                               "--set", "privacy.noise_multiplier=0.5"),
                                         2, ["privacy.noise_multiplier = 0.5", "target_epsilon = 0.01", "no step fits"]),
    "warmup-above-steps": lambda w, c: (train(w, c, "--set", "optimization.warmup_steps=5"),
                                        2, ["optimization.warmup_steps = 5", "2 steps"]),
    "lora-rank-above-width": lambda w, c: (train(w, c, "--set", "method={name: lora, rank: 1000}"),
                                           2, ["method", "LoRA rank 1000", "exceeds the width"]),
    "max-length-above-positions": lambda w, c: (train(w, c, "--set", "task.max_length=100000"),
                                                2, ["task.max_length = 100000", "n_positions"]),
    "batch-above-n": lambda w, c: (train(w, c, "--set", "optimization.batch_size=1000"),
                                   2, ["optimization.batch_size = 1000", "48 training examples"]),
    "micro-batch-out-of-memory": lambda w, c: (train(w, c, "--set", "optimization.physical_batch_size=100000000"),
                                               1, ["out of memory", "optimization.physical_batch_size"]),
    "model-folder-missing": lambda w, c: (train(w, c, text=replaced(w, f"path: {w['model']}", "path: /no/model")),
                                          2, ["/no/model"]),
    "text-file-empty": lambda w, c: (write(c / "empty.txt", ""),
                                     train(w, c, "--set", "task={name: text, text_files: [" + str(c / "empty.txt") + "], max_length: 16}"),
                                     2, ["task.text_files", "empty.txt", "is empty"])[1:],
    "text-file-missing": lambda w, c: (train(w, c, "--set", "task={name: text, text_files: [gone.txt], max_length: 16}"),
                                       2, ["task.text_files", "gone.txt"]),
    # Data that would be silently wrong: an unclosed quote swallowing the next rows.
    "csv-unclosed-quote": lambda w, c: (
        train(w, c, data=e2e_copy(w, c, real_rows(w, 1) + ['"name[B], eatType[pub]","open quote'] + real_rows(w, 60, 2)[1:])),
        2, ["trainset.csv", "line 3", "unclosed quote"]),
    # Run folders: other data under a resume, links, pointers outside the folder, files as folders.
    "resume-other-data": lambda w, c: (interrupted(w, c),
                                       train(w, c, "--resume", data=e2e_copy(w, c, real_rows(w, 100, 1))),
                                       2, ["training data differs", str(c / "data" / "e2e" / "trainset.csv")])[1:],
    "resume-links-planted": lambda w, c: (interrupted(w, c),
                                          [os.symlink(w["outside"] / t, c / "out" / n) for n, t in
                                           [("summary.json.tmp", "a"), (".summary.json.tmp", "b"), ("summary.json", "victim"),
                                            ("checkpoints/.latest.tmp", "c"), ("model", "d"), ("model.tmp", "e")]],
                                          train(w, c, "--resume"), 0, [])[2:],
    "latest-points-elsewhere": lambda w, c: (interrupted(w, c),
                                             write(c / "out" / "checkpoints" / "latest", str(w["outside"])),
                                             train(w, c, "--resume"), 2, ["checkpoints/latest", "not a checkpoint folder"])[2:],
    "existing-run-without-resume": lambda w, c: (interrupted(w, c), train(w, c),
                                                 2, ["already holds a run", "--resume"])[1:],
    "resume-without-run": lambda w, c: (train(w, c, "--resume"), 2, ["--resume", "holds no run"]),
    "out-is-a-file": lambda w, c: (write(c / "out", "x"), train(w, c), 2, ["--out", "is a file"])[1:],
    "out-under-a-file": lambda w, c: (write(c / "f", "x"),
                                      dpft(w, c, "train", cfg(w, c), "--out", c / "f" / "run"), 2, ["f/run"])[1:],
    # generate / score / bench: sizes that cannot fit, counts of 0, texts that cannot be scored.
    "generate-million-beams": lambda w, c: (dpft(w, c, "generate", "--model", w["model"], "--input", write(c / "p.txt", "a b c\n"),
                                                 "--num-beams", "1000000", "--max-new-tokens", "10"),
                                            1, ["out of memory", "--num-beams"]),
    "generate-batch-zero": lambda w, c: (dpft(w, c, "generate", "--model", w["model"], "--input", write(c / "p.txt", "a\n"),
                                              "--batch-size", "0"), 2, ["--batch-size", "at least 1"]),
    "generate-input-missing": lambda w, c: (dpft(w, c, "generate", "--model", w["model"], "--input", c / "none.txt"),
                                            2, ["none.txt"]),
    "generate-input-empty": lambda w, c: (dpft(w, c, "generate", "--model", w["model"], "--input", write(c / "e.txt", "")),
                                          2, ["e.txt", "empty"]),
    "bench-batch-out-of-memory": lambda w, c: (dpft(w, c, "bench", "--model", w["model"], "--batch-size", "100000",
                                                    "--seq-len", "64", "--steps", "1", "--mode", "bk"),
                                               1, ["out of memory", "--batch-size"]),
    "bench-seq-len-one": lambda w, c: (dpft(w, c, "bench", "--model", w["model"], "--batch-size", "2",
                                            "--seq-len", "1", "--mode", "bk"), 2, ["--seq-len 1"]),
    "score-one-token": lambda w, c: (dpft(w, c, "score", "--model", w["model"], "--text", "x"),
                                     2, ['--text "x"', "one token"]),
    "score-too-long": lambda w, c: (dpft(w, c, "score", "--model", w["model"], "--text", "word " * 200),
                                    2, ["--text", "n_positions"]),
    # Tokenizer training and the data directory.
    "tokenizer-empty-file": lambda w, c: (dpft(w, c, "train-tokenizer", "--file", write(c / "e.txt", ""),
                                               "--vocab-size", "300", "--out", c / "tok"), 2, ["--file", "e.txt", "empty"]),
    "tokenizer-not-utf8": lambda w, c: (dpft(w, c, "train-tokenizer", "--file", write(c / "b.txt", b"ok\n\xff\xfe"),
                                             "--vocab-size", "300", "--out", c / "tok"), 2, ["b.txt", "line 2", "UTF-8"]),
    "tokenizer-folder-as-file": lambda w, c: (dpft(w, c, "train-tokenizer", "--file", c, "--vocab-size", "300",
                                                   "--out", c / "tok"), 2, ["--file", "is a folder"]),
    "data-status-missing-dir": lambda w, c: (dpft(w, c, "data", "status", data=c / "no-data"),
                                             2, ["no-data", "does not exist"]),
    # Sweeps and reports.
    "sweep-exclude-matches-nothing": lambda w, c: (
        dpft(w, c, "sweep", write(c / "s.yaml", f"base: {cfg(w, c)}\ngrid:\n  optimization.learning_rate: [1.0e-3, 2.0e-3]\n"
                                   "exclude:\n  - optimization.learning_rate: 3.0e-3\n"), "--out", c / "sw", "--dry-run"),
        2, ["s.yaml", "exclude[0]", "matches no run"]),
    "sweep-bom-is-read": lambda w, c: (
        dpft(w, c, "sweep", write(c / "s.yaml", "\ufeff" + f"base: {cfg(w, c)}\ngrid:\n  optimization.learning_rate: [1.0e-3]\n"),
             "--out", c / "sw", "--dry-run"), 0, []),
    "sweep-unknown-top-key": lambda w, c: (
        dpft(w, c, "sweep", write(c / "s.yaml", f"base: {cfg(w, c)}\ngird:\n  a: [1]\n"), "--out", c / "sw", "--dry-run"),
        2, ["s.yaml", "gird"]),
    "report-non-numeric-metric": lambda w, c: (fake_run(w, c / "results" / "r1", {"BLEU": 0.5, "comment": "n/a"}),
                                               dpft(w, c, "report", c / "results", "--out", c / "rep"), 0,
                                               ["comment", "not numbers"])[1:],
    # Other commands' flags.
    "privacy-rate-above-one": lambda w, c: (dpft(w, c, "privacy", "epsilon", "--noise-multiplier", "1", "--sample-rate", "2",
                                                 "--steps", "10", "--delta", "1e-5"), 2, ["sample"]),
    "device-unknown": lambda w, c: (subprocess.run([DPFT, "--device", "tpu", "info"], capture_output=True, text=True, cwd=c),
                                    2, ["--device", "tpu"]),
    "eval-gen-missing-file": lambda w, c: (dpft(w, c, "eval-gen", "--predictions", c / "p.txt", "--references", c / "r.txt"),
                                           2, ["p.txt"]),
}


def fake_run(world, folder, metrics):
    """A finished run folder as `dpft train` writes it (config.yaml, summary.json), with `metrics`."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(world["base"])
    (folder / "summary.json").write_text(json.dumps({"status": "finished", "steps": 2, "metrics": metrics,
                                                     "epsilon": {"rdp": 1.0}}))


def test_there_are_at_least_40_cases():
    assert len(CASES) >= 40, len(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(world, tmp_path, name):
    before = snapshot(world["outside"])
    p, status, words = CASES[name](world, tmp_path)
    out = p.stdout + p.stderr
    for marker in ["panicked", "stack backtrace", "frame #", "RUST_BACKTRACE", "c10::"]:
        assert marker not in out, f"{name}: {marker!r} on the terminal:\n{out}"
    assert p.returncode == status, f"{name}: exit {p.returncode}, expected {status}:\n{out}"
    if status != 0:
        errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, f"{name}: one error line expected:\n{p.stderr}"
    for w in words:
        assert w in out, f"{name}: the message does not name {w!r}:\n{out}"
    assert snapshot(world["outside"]) == before, f"{name}: the folder outside --out changed"
