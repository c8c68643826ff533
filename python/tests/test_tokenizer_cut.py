"""`dpft train-tokenizer --cut-from`: a byte-level BPE made of the first merges of GPT-2's, checked against a BPE
built here with Hugging Face `tokenizers` (Python) from the same vocab.json / merges.txt prefix.

Oracle: `tokenizers.models.BPE(vocab, merges[:K])` with GPT-2's pipeline (byte-level pre-tokenizer without a prefix
space); the ids differ by construction (dpft puts `<|endoftext|>` at 0), so the token strings are compared, on
every E2E dev reference and table. Exact equality. With all 50,000 merges the cut is GPT-2's own tokenizer:
token strings equal the data directory's tokenizer.json on the same texts.

Data: $DPFT_DATA_DIR, else ../shared/data; without it the tests are skipped with the reason printed.
"""

import csv
import json
import os
import pathlib
import subprocess

import pytest
from datadir import data_dir as shared_data_dir

ROOT = pathlib.Path(__file__).resolve().parents[2]
DPFT = os.environ.get("DPFT_BIN", str(ROOT / "target" / "debug" / "dpft"))
EOT = "<|endoftext|>"


def data_dir():
    return shared_data_dir("tokenizers/gpt2/merges.txt", "e2e/devset.csv")


def texts(d):
    with open(d / "e2e" / "devset.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [r["ref"] for r in rows] + sorted({r["mr"] for r in rows}) + [f" a table {EOT} a text {EOT}"]


def reference_cut(d, vocab_size):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = json.loads((d / "tokenizers" / "gpt2" / "vocab.json").read_text(encoding="utf-8"))
    lines = (d / "tokenizers" / "gpt2" / "merges.txt").read_text(encoding="utf-8").splitlines()
    merges = [tuple(m.split(" ")) for m in lines if m and not m.startswith("#version")][: vocab_size - 257]
    by_id = {i: t for t, i in vocab.items()}
    tokens = [by_id[i] for i in range(256)] + [a + b for a, b in merges]
    tk = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens([EOT])
    return tk


def dpft_cut(d, vocab_size, out):
    env = dict(os.environ, DPFT_DATA_DIR=str(d))
    p = subprocess.run([DPFT, "train-tokenizer", "--cut-from", "data:tokenizers/gpt2", "--vocab-size", str(vocab_size),
                        "--out", str(out)], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(out / "tokenizer.json"))


@pytest.mark.parametrize("vocab_size", [300, 4096])
def test_cut_equals_a_bpe_of_the_first_merges(tmp_path, vocab_size):
    d = data_dir()
    ours, ref = dpft_cut(d, vocab_size, tmp_path / "cut"), reference_cut(d, vocab_size)
    assert ours.get_vocab_size() == vocab_size and ours.token_to_id(EOT) == 0
    bad = [(t, a, b) for t in texts(d) for a, b in [(ours.encode(t).tokens, ref.encode(t).tokens)] if a != b]
    assert not bad, bad[:3]


def test_all_merges_give_gpt2_itself(tmp_path):
    d = data_dir()
    from tokenizers import Tokenizer

    ours = dpft_cut(d, 50257, tmp_path / "cut")
    gpt2 = Tokenizer.from_file(str(d / "tokenizers" / "gpt2" / "tokenizer.json"))
    bad = [(t, a, b) for t in texts(d) for a, b in [(ours.encode(t).tokens, gpt2.encode(t).tokens)] if a != b]
    assert not bad, bad[:3]


def test_out_of_range_sizes_are_refused(tmp_path):
    d = data_dir()
    env = dict(os.environ, DPFT_DATA_DIR=str(d))
    for size in ["257", "50258"]:
        p = subprocess.run([DPFT, "train-tokenizer", "--cut-from", "data:tokenizers/gpt2", "--vocab-size", size,
                            "--out", str(tmp_path / size)], capture_output=True, text=True, env=env)
        assert p.returncode == 2 and "vocab_size" in p.stderr and "50257" in p.stderr, p.stderr
    p = subprocess.run([DPFT, "train-tokenizer", "--cut-from", str(tmp_path), "--out", str(tmp_path / "x")],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 2 and "merges.txt" in p.stderr, p.stderr
