"""python/pretrain/public_corpus.py, the public pretraining corpus of the mini GPT-2 (`make pretrain-mini`).

What is checked: it reads only public text (it runs on a copy of the data directory that holds WikiText-2 and the
GLUE subsets and nothing else, so reading E2E or DART would fail), it is deterministic for a seed (byte-identical
files, SHA256SUMS that match them), it undoes WikiText's tokenisation, it drops sentences with <unk>, and every
keyword example is made of phrases of its own sentence, in order. A missing input is an error naming the file.

Data: a small data directory written here (no fixture needed), and the real one when present for the
no-E2E/DART property on the real files.
"""

import hashlib
import json
import pathlib
import shutil
import subprocess
import sys

import pytest
from datadir import data_dir as shared_data_dir

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "python" / "pretrain" / "public_corpus.py"
END = "<|endoftext|>"
GLUE = ("qnli", "mnli", "qqp")


def write_small_data(d: pathlib.Path):
    wiki = d / "pretrain-text" / "wikitext-2"
    wiki.mkdir(parents=True)
    (wiki / "valid.txt").write_text(
        " = Heading = \n"
        " The old bridge , built in 1901 , crosses the river near the market town . It was repaired in 1950 . \n"
        " A second line has an <unk> word in it and should not appear in running text at all . "
        "The rest of this paragraph stays in the running text of the corpus . \n",
        encoding="utf-8",
    )
    (wiki / "test.txt").write_text(
        " The 3 @,@ 000 @-@ seat stadium opened in the spring of 1923 with a football match . \n", encoding="utf-8"
    )
    for i, task in enumerate(GLUE):
        (d / task).mkdir()
        for split in ("subset-train.json", "subset-dev.json"):
            recs = {
                "0": {"text_a": f"Where is the {task} museum located in the city?", "text_b":
                      f"The {task} museum is located beside the central railway station.", "label": i},
            }
            (d / task / split).write_text(json.dumps(recs), encoding="utf-8")


def run(data: pathlib.Path, out: pathlib.Path, *extra):
    return subprocess.run([sys.executable, str(SCRIPT), str(data), str(out), *extra], capture_output=True, text=True)


def test_deterministic_and_checksummed(tmp_path):
    data = tmp_path / "data"
    write_small_data(data)
    a, b = run(data, tmp_path / "a"), run(data, tmp_path / "b")
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    for name in ("text.txt", "keywords.txt", "SHA256SUMS"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    sums = dict(line.split("  ")[::-1] for line in (tmp_path / "a" / "SHA256SUMS").read_text().splitlines())
    for name in ("text.txt", "keywords.txt"):
        assert sums[name] == hashlib.sha256((tmp_path / "a" / name).read_bytes()).hexdigest()
    other = run(data, tmp_path / "c", "--seed", "1")
    assert other.returncode == 0, other.stderr
    assert (tmp_path / "c" / "keywords.txt").read_bytes() != (tmp_path / "a" / "keywords.txt").read_bytes()


def test_content(tmp_path):
    data = tmp_path / "data"
    write_small_data(data)
    p = run(data, tmp_path / "out")
    assert p.returncode == 0, p.stderr
    text = (tmp_path / "out" / "text.txt").read_text(encoding="utf-8")
    assert "The old bridge, built in 1901, crosses the river near the market town." in text
    assert "The 3,000-seat stadium opened" in text
    assert "<unk>" not in text and "second line" not in text
    assert "The rest of this paragraph stays" in text
    assert "Heading" not in text
    for task in GLUE:
        assert f"The {task} museum is located beside the central railway station." in text

    examples = (tmp_path / "out" / "keywords.txt").read_text(encoding="utf-8").strip().split(f" {END} ")
    pairs = [(examples[i], examples[i + 1].removesuffix(f" {END}")) for i in range(0, len(examples) - 1, 2)]
    assert len(pairs) >= 4
    for source, sentence in pairs:
        phrases = source.strip().split(" | ")
        assert 2 <= len(phrases) <= 6
        pos = 0
        for phrase in phrases:  # every phrase occurs in its sentence, in order
            found = sentence.find(phrase, pos)
            assert found >= 0, (phrase, sentence)
            pos = found + len(phrase)


def test_missing_input_is_named(tmp_path):
    data = tmp_path / "data"
    write_small_data(data)
    (data / "qqp" / "subset-dev.json").unlink()
    p = run(data, tmp_path / "out")
    assert p.returncode != 0
    assert "qqp/subset-dev.json" in p.stderr and "missing" in p.stderr
    assert not (tmp_path / "out" / "text.txt").exists()


def test_real_data_without_e2e_or_dart(tmp_path):
    """On the real data directory's files, copied without e2e/ and dart/: the corpus builds, and no E2E
    reference sentence occurs in it."""
    needed = [f"pretrain-text/wikitext-2/{n}" for n in ("valid.txt", "test.txt")]
    needed += [f"{t}/{s}" for t in GLUE for s in ("subset-train.json", "subset-dev.json")]
    real = shared_data_dir(*needed, "e2e/devset.csv")
    data = tmp_path / "data"
    for rel in needed:
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(real / rel, data / rel)
    p = run(data, tmp_path / "out")
    assert p.returncode == 0, p.stderr
    corpus = (tmp_path / "out" / "text.txt").read_text(encoding="utf-8")
    corpus += (tmp_path / "out" / "keywords.txt").read_text(encoding="utf-8")
    import csv

    with open(real / "e2e" / "devset.csv", encoding="utf-8", newline="") as fh:
        refs = [r["ref"] for r in csv.DictReader(fh) if len(r["ref"]) > 60]
    assert refs
    leaked = [r for r in refs if r in corpus]
    assert not leaked, leaked[:3]
