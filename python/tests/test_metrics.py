"""Cross-checks of crates/metrics (generation metrics) against the reference implementations.

Binary: target/debug/examples/eval_gen (build it with `cargo build -p metrics --example eval_gen`; override the path
with DPFT_EVAL_GEN). Data: $DPFT_DATA_DIR, else ../shared/data next to the checkout (E2E dev/test CSVs, DART dev
XML); without data the tests are skipped with the reason printed.

Systems scored, on the real E2E dev (547 segments, 4,672 references) and test (630 / 4,693) references:
- "perturbed": per segment one of its references (index = segment mod count), deterministically perturbed
  (a word dropped, two neighbours swapped, a word repeated, a clause from another segment, or unchanged), plus
  one empty prediction;
- "shuffled": the perturbed texts with their words shuffled (seeded).

Oracles and tolerances (absolute, on e2e-metrics' scales):
- BLEU: sacrebleu.corpus_bleu(hyps, refs padded with None, lowercase=True, tokenize="13a").score / 100: 1e-9.
- NIST (the default, the paper's): e2e-metrics' pymteval itself (`measure_scores.py --python`; the Python 3 copy
  in PyPI's gem-metrics-fork 0.1.dev0, installed by `make setup` without dependencies, file loaded by path):
  1e-9 relative. The Perl flavour (`--nist mteval13a`): python/oracles/nist_reference.py (mteval-v13a-sig.pl
  semantics, written from the Perl), 1e-9 relative. The length penalty (1 for the systems above) is checked on
  two-word outputs for 100 dev segments in both flavours.
- PTB tokenisation: pycocoevalcap's PTBTokenizer (stanford-corenlp-3.4.1.jar): equal strings for every reference
  and prediction.
- ROUGE-L, CIDEr: pycocoevalcap Rouge / Cider on the jar's tokenisation: 1e-9.
- METEOR: pycocoevalcap Meteor (METEOR 1.5 jar), on the first 100 test segments of the perturbed system (each JVM
  takes ~10 s to load its tables, so both load while the other checks run): 1e-6.
- Porter stemmer: NLTK PorterStemmer on every word longer than 3 letters of the E2E dev/test and DART dev
  references: equal.
- DART (GEM-style, 600 dev entries): BLEU as above over all references, 1e-9; ROUGE-L: rouge-score
  RougeScorer(["rougeL"], use_stemmer=True) with GEM-metrics' leave-one-out jackknifing, mean F, 1e-9.
"""

import csv
import json
import os
import pathlib
import random
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from itertools import zip_longest

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
EVAL_GEN = os.environ.get("DPFT_EVAL_GEN", str(ROOT / "target" / "debug" / "examples" / "eval_gen"))
sys.path.insert(0, str(ROOT / "python" / "oracles"))

import nist_reference  # noqa: E402


def data_dir():
    d = os.environ.get("DPFT_DATA_DIR")
    if d:
        return pathlib.Path(d)
    d = ROOT.parent / "shared" / "data"
    return d if d.is_dir() else None


def require_data(*parts):
    d = data_dir()
    if d is None or not (d.joinpath(*parts)).exists():
        reason = f"SKIPPED: no {'/'.join(parts)} (set DPFT_DATA_DIR or provide ../shared/data)"
        print(reason)
        pytest.skip(reason)
    return d.joinpath(*parts)


def load_pymteval():
    """e2e-metrics' metrics/pymteval.py as gem-metrics-fork carries it, imported by path (the package's
    __init__ imports far more than this file needs)."""
    import importlib.metadata
    import importlib.util

    try:
        path = importlib.metadata.distribution("gem-metrics-fork").locate_file("gem_metrics_fork/impl/pymteval.py")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("gem-metrics-fork (the pymteval NIST oracle) is not installed: run `make setup`")
    spec = importlib.util.spec_from_file_location("pymteval", str(path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pymteval_nist(preds, segs):
    """NIST as `measure_scores.py --python` accumulates it: one append per (prediction, its references)."""
    nist = load_pymteval().NISTScore()
    for pred, refs in zip(preds, segs):
        nist.append(pred, refs)
    return nist.score()


def require_binary():
    if not pathlib.Path(EVAL_GEN).is_file():
        pytest.fail(f"{EVAL_GEN} missing: run `cargo build -p metrics --example eval_gen`")


def read_e2e_segments(path):
    """Group the CSV's references by consecutive identical MR (e2e-metrics read_and_group_tsv)."""
    segs, cur_mr = [], None
    with open(path, encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            ref = " ".join(row["ref"].split("\n")).strip()
            if row["mr"] != cur_mr:
                segs.append([ref])
                cur_mr = row["mr"]
            else:
                segs[-1].append(ref)
    return segs


def perturbed_system(segs, seed=13):
    rng = random.Random(seed)
    out = []
    for i, refs in enumerate(segs):
        words = refs[i % len(refs)].split()
        kind = i % 5
        if kind == 0 and len(words) > 3:
            del words[rng.randrange(len(words))]
        elif kind == 1 and len(words) > 3:
            j = rng.randrange(len(words) - 1)
            words[j], words[j + 1] = words[j + 1], words[j]
        elif kind == 2 and words:
            j = rng.randrange(len(words))
            words.insert(j, words[j])
        elif kind == 3:
            other = segs[(i * 7 + 3) % len(segs)][0].split()
            words = words[: max(1, len(words) // 2)] + other[len(other) // 2:]
        out.append(" ".join(words))
    out[len(out) // 2] = ""
    return out


def shuffled_system(texts, seed=29):
    rng = random.Random(seed)
    out = []
    for t in texts:
        w = t.split()
        rng.shuffle(w)
        out.append(" ".join(w))
    return out


def write_refs(path, segs):
    path.write_text("\n\n".join("\n".join(rs) for rs in segs) + "\n", encoding="utf-8")


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def run_eval_gen(*args):
    out = subprocess.run([EVAL_GEN, *map(str, args)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def start_eval_gen(*args):
    return subprocess.Popen([EVAL_GEN, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out, err


def coco_tokenize(segs):
    """pycocoevalcap's PTBTokenizer (the jar) on a list of caption lists; returns {index: [tokenised, ...]}."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    gts = {i: [{"caption": c} for c in rs] for i, rs in enumerate(segs)}
    return PTBTokenizer().tokenize(gts)


METEOR_SEGMENTS = 100


class Split:
    """One E2E split: references, two systems, the Rust results and every oracle value."""

    def __init__(self, name, csv_name, tmp):
        self.name = name
        self.segs = read_e2e_segments(require_data("e2e", csv_name))
        perturbed = perturbed_system(self.segs)
        self.systems = {"perturbed": perturbed, "shuffled": shuffled_system(perturbed)}
        self.dir = tmp / name
        self.dir.mkdir()
        self.refs_path = self.dir / "refs.txt"
        write_refs(self.refs_path, self.segs)
        self.pred_paths = {}
        for sys_name, preds in self.systems.items():
            self.pred_paths[sys_name] = self.dir / f"{sys_name}.txt"
            write_lines(self.pred_paths[sys_name], preds)

    def start_rust(self):
        args = ["--references", self.refs_path, "--no-meteor", "--dump-ptb", self.dir]
        for n in self.systems:
            args += ["--predictions", self.pred_paths[n]]
        self.proc = start_eval_gen(*args)

    def oracles(self):
        """Everything computed by the reference implementations (runs while the Rust binary works)."""
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.rouge.rouge import Rouge
        from sacrebleu.metrics import BLEU

        self.gts = coco_tokenize(self.segs)
        self.res = {n: coco_tokenize([[p] for p in preds]) for n, preds in self.systems.items()}
        bleu = BLEU(lowercase=True, tokenize="13a", references=list(zip_longest(*self.segs)))
        nist = nist_reference.NistReferences(self.segs)
        self.oracle = {}
        for n, preds in self.systems.items():
            self.oracle[n] = {
                "BLEU": bleu.corpus_score(preds, None).score / 100,
                "NIST": pymteval_nist(preds, self.segs),
                "NIST_mteval13a": nist.score(preds),
                "ROUGE_L": Rouge().compute_score(self.gts, self.res[n])[0],
                "CIDEr": Cider().compute_score(self.gts, self.res[n])[0],
            }

    def collect_rust(self):
        out, _ = finish(self.proc)
        self.rust = dict(zip(self.systems, json.loads(out)))
        self.rust_ptb_refs = (self.dir / "references.txt").read_text(encoding="utf-8").split("\n")[:-1]
        self.rust_ptb = {n: (self.dir / f"predictions.{k}.txt").read_text(encoding="utf-8").split("\n")[:-1]
                         for k, n in enumerate(self.systems)}


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    """Runs everything once: Rust (in the background) and the oracles, METEOR JVMs overlapping the rest."""
    require_binary()
    if shutil.which("java") is None:
        pytest.skip("SKIPPED: no java (pycocoevalcap's PTB tokenizer and METEOR need it)")
    from pycocoevalcap.meteor.meteor import Meteor

    tmp = tmp_path_factory.mktemp("metrics")
    result = {name: Split(name, csv_name, tmp) for name, csv_name in
              [("dev", "devset.csv"), ("test", "testset_w_refs.csv")]}
    # METEOR on the first test segments: both JVMs load their tables while everything else runs.
    test = result["test"]
    mdir = tmp / "meteor"
    mdir.mkdir()
    write_refs(mdir / "refs.txt", test.segs[:METEOR_SEGMENTS])
    write_lines(mdir / "hyp.txt", test.systems["perturbed"][:METEOR_SEGMENTS])
    meteor_rust = start_eval_gen("--references", mdir / "refs.txt", "--predictions", mdir / "hyp.txt")
    meteor_py = Meteor()
    for s in result.values():
        s.start_rust()
        s.oracles()
        s.collect_rust()
    gts = {i: test.gts[i] for i in range(METEOR_SEGMENTS)}
    res = {i: test.res["perturbed"][i] for i in range(METEOR_SEGMENTS)}
    test.meteor_oracle = meteor_py.compute_score(gts, res)[0]
    out, err = finish(meteor_rust)
    test.meteor_rust = json.loads(out)["METEOR"]
    test.meteor_stderr = err
    return result


NIST_SHORT_SEGMENTS = 100


@pytest.mark.parametrize("flavour", ["pymteval", "mteval13a"])
def test_nist_length_penalty_on_short_outputs(splits, tmp_path, flavour):
    """Two-word outputs on 100 dev segments: the length penalty is active (ratio < 1) in both flavours."""
    s = splits["dev"]
    segs = s.segs[:NIST_SHORT_SEGMENTS]
    short = [" ".join(p.split()[:2]) for p in s.systems["perturbed"][:NIST_SHORT_SEGMENTS]]
    write_refs(tmp_path / "refs.txt", segs)
    write_lines(tmp_path / "hyp.txt", short)
    ours = json.loads(run_eval_gen("--references", tmp_path / "refs.txt", "--no-meteor", "--nist", flavour,
                                   "--predictions", tmp_path / "hyp.txt"))["NIST"]
    perl = nist_reference.NistReferences(segs)
    if flavour == "mteval13a":
        assert sum(len(nist_reference.tokenize(h)) for h in short) < perl.total_words / perl.nsys
        oracle = perl.score(short)
    else:
        assert sum(len(nist_reference.tokenize(h)) for h in short) < perl.mean_ref_len
        oracle = pymteval_nist(short, segs)
    assert ours == pytest.approx(oracle, rel=1e-9, abs=1e-12)


def test_nist_flavours_differ_on_e2e(splits):
    """E2E's segments have different numbers of references, so the two NISTs are not the same number: the
    default must be the paper's (pymteval), which the test above pins; this one shows the choice matters."""
    s = splits["test"]
    o = s.oracle["perturbed"]
    assert abs(o["NIST"] - o["NIST_mteval13a"]) > 1e-5, o  # 9e-5 here; the checks above are 1e-9 relative


SYSTEMS = ["perturbed", "shuffled"]
SPLITS = ["dev", "test"]


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("system", SYSTEMS)
def test_bleu_matches_sacrebleu(splits, split, system):
    s = splits[split]
    assert abs(s.rust[system]["BLEU"] - s.oracle[system]["BLEU"]) <= 1e-9, (s.rust[system], s.oracle[system])


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("system", SYSTEMS)
def test_nist_matches_pymteval(splits, split, system):
    s = splits[split]
    assert s.rust[system]["NIST"] == pytest.approx(s.oracle[system]["NIST"], rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("split", SPLITS)
def test_nist_mteval13a_matches_the_perl_oracle(splits, split, tmp_path):
    s = splits[split]
    args = ["--references", s.refs_path, "--no-meteor", "--nist", "mteval13a"]
    for n in SYSTEMS:
        args += ["--predictions", s.pred_paths[n]]
    got = dict(zip(SYSTEMS, json.loads(run_eval_gen(*args))))
    for n in SYSTEMS:
        assert got[n]["NIST"] == pytest.approx(s.oracle[n]["NIST_mteval13a"], rel=1e-9, abs=1e-12), n


@pytest.mark.parametrize("split", SPLITS)
def test_ptb_tokenization_equals_the_jar(splits, split):
    s = splits[split]
    jar = [t for i in range(len(s.segs)) for t in s.gts[i]]
    bad = [(a, b) for a, b in zip(s.rust_ptb_refs, jar) if a != b]
    assert len(s.rust_ptb_refs) == len(jar) and not bad, bad[:5]
    for name, preds in s.systems.items():
        jar = [s.res[name][i][0] for i in range(len(preds))]
        bad = [(a, b) for a, b in zip(s.rust_ptb[name], jar) if a != b]
        assert len(s.rust_ptb[name]) == len(jar) and not bad, (name, bad[:5])


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("system", SYSTEMS)
def test_rouge_l_and_cider_match_pycocoevalcap(splits, split, system):
    s = splits[split]
    for metric in ["ROUGE_L", "CIDEr"]:
        assert abs(s.rust[system][metric] - s.oracle[system][metric]) <= 1e-9, (metric, s.rust[system], s.oracle[system])


def test_meteor_matches_pycocoevalcap(splits):
    s = splits["test"]
    assert s.meteor_rust is not None, s.meteor_stderr
    assert abs(s.meteor_rust - s.meteor_oracle) <= 1e-6, (s.meteor_rust, s.meteor_oracle)


def test_meteor_unavailable_is_null(splits, tmp_path):
    s = splits["dev"]
    write_refs(tmp_path / "refs.txt", s.segs[:3])
    write_lines(tmp_path / "hyp.txt", s.systems["perturbed"][:3])
    env = dict(os.environ, PATH="/nonexistent", DPFT_METEOR_JAR="/nonexistent/meteor-1.5.jar")
    env.pop("JAVA_HOME", None)
    out = subprocess.run([EVAL_GEN, "--references", tmp_path / "refs.txt", "--predictions", tmp_path / "hyp.txt"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["METEOR"] is None
    assert "METEOR unavailable" in out.stderr


def dart_entries(limit):
    root = ET.parse(require_data("dart", "dart-v1.1.1-full-dev.xml")).getroot()
    segs = []
    for entry in root.iter("entry"):
        refs = [" ".join((lex.text or "").split()) for lex in entry.iter("lex")]
        refs = [r for r in refs if r]
        if refs:
            segs.append(refs)
        if len(segs) == limit:
            break
    return segs


def test_porter_stemmer_matches_nltk(tmp_path):
    require_binary()
    from nltk.stem.porter import PorterStemmer
    from rouge_score import tokenize as rs_tokenize

    words = set()
    for segs in [read_e2e_segments(require_data("e2e", "devset.csv")),
                 read_e2e_segments(require_data("e2e", "testset_w_refs.csv")), dart_entries(None)]:
        for rs in segs:
            for r in rs:
                words.update(rs_tokenize.tokenize(r, None))
    words = sorted(w for w in words if len(w) > 3)
    write_lines(tmp_path / "words.txt", words)
    ours = run_eval_gen("--porter-stem", tmp_path / "words.txt").split("\n")[: len(words)]
    stemmer = PorterStemmer()
    bad = [(w, a, stemmer.stem(w)) for w, a in zip(words, ours) if a != stemmer.stem(w)]
    assert len(ours) == len(words) and not bad, bad[:10]


def gem_rouge_l(preds, segs):
    """GEM-metrics ROUGE (gem_metrics/rouge.py) reduced to rougeL F, on the raw texts."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    per = []
    for pred, refs in zip(preds, segs):
        cur = [scorer.score(r, pred)["rougeL"] for r in refs]
        if len(cur) > 1:
            best = [max([cur[s] for s in range(len(refs)) if s != leave], key=lambda s: s.fmeasure)
                    for leave in range(len(refs))]
            per.append(np.mean([b.fmeasure for b in best]))
        else:
            per.append(cur[0].fmeasure)
    return float(np.mean(per))


def test_dart_gem_style(tmp_path):
    require_binary()
    import sacrebleu

    segs = dart_entries(600)
    preds = perturbed_system(segs)
    write_refs(tmp_path / "refs.txt", segs)
    write_lines(tmp_path / "hyp.txt", preds)
    out = json.loads(run_eval_gen("--dart", "--references", tmp_path / "refs.txt", "--predictions",
                                  tmp_path / "hyp.txt"))
    bleu = sacrebleu.corpus_bleu(preds, list(zip_longest(*segs)), lowercase=True, tokenize="13a").score / 100
    assert abs(out["BLEU"] - bleu) <= 1e-9, (out["BLEU"], bleu)
    rouge = gem_rouge_l(preds, segs)
    assert abs(out["ROUGE_L"] - rouge) <= 1e-9, (out["ROUGE_L"], rouge)


DPFT = os.environ.get("DPFT_BIN", str(ROOT / "target" / "debug" / "dpft"))


@pytest.mark.parametrize("system", SYSTEMS)
def test_dpft_eval_gen_matches_the_oracles(splits, tmp_path, system):
    """The user-facing command on the E2E dev split: BLEU, NIST, ROUGE-L, CIDEr equal the oracles (1e-9)."""
    s = splits["dev"]
    write_refs(tmp_path / "refs.txt", s.segs)
    write_lines(tmp_path / "hyp.txt", s.systems[system])
    out = subprocess.run([DPFT, "eval-gen", "--predictions", str(tmp_path / "hyp.txt"), "--references",
                          str(tmp_path / "refs.txt"), "--no-meteor", "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert set(got) == {"BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr"} and got["METEOR"] is None
    for metric in ["BLEU", "ROUGE_L", "CIDEr"]:
        assert abs(got[metric] - s.oracle[system][metric]) <= 1e-9, (metric, got, s.oracle[system])
    assert got["NIST"] == pytest.approx(s.oracle[system]["NIST"], rel=1e-9, abs=1e-12)


def test_dpft_eval_gen_refuses_mismatched_counts(tmp_path):
    require_binary()
    write_lines(tmp_path / "hyp.txt", ["a", "b", "c"])
    (tmp_path / "refs.txt").write_text("x\ny\n\nz\n")
    out = subprocess.run([DPFT, "eval-gen", "--predictions", str(tmp_path / "hyp.txt"), "--references",
                          str(tmp_path / "refs.txt"), "--no-meteor"], capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    assert "3 predictions" in out.stderr and "2 segments" in out.stderr, out.stderr
