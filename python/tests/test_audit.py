"""One-run audit statistics against jax-privacy's auditing.py (the oracle; PyPI jax-privacy 2.0.0, installed
without dependencies by make setup and loaded here by path: it needs only dp_accounting, numpy and scipy).

`dpft privacy audit-scores` against `CanaryScoreAuditor(in, out).epsilon_one_run(1 - confidence, delta)` on a
grid of synthetic canary scores (separation, canary count, confidence, delta). jax-privacy finds each root with
brentq at xtol 1e-6, dpft by bisection to 1e-9: tolerance 2e-6 absolute.
"""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import sysconfig

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DPFT = os.environ.get("DPFT_BIN", str(ROOT / "target" / "debug" / "dpft"))


def load_auditing():
    path = pathlib.Path(sysconfig.get_paths()["purelib"]) / "jax_privacy" / "auditing.py"
    if not path.is_file():
        pytest.skip(f"SKIPPED: {path} missing (make setup installs jax-privacy 2.0.0 without dependencies)")
    spec = importlib.util.spec_from_file_location("jp_auditing", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["jp_auditing"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


GRID = [(sep, m, conf, delta) for sep in [0.0, 0.5, 1.5, 4.0] for m in [200, 1000]
        for conf, delta in [(0.95, 1e-5), (0.99, 1e-3)]]


@pytest.mark.parametrize("sep,m,confidence,delta", GRID)
def test_audit_scores_match_jax_privacy(sep, m, confidence, delta, tmp_path):
    auditing = load_auditing()
    rng = np.random.default_rng(int(sep * 10) + m)
    included = rng.random(m) < 0.5
    scores = rng.normal(size=m) + sep * included
    ins, outs = scores[included], scores[~included]
    want = auditing.CanaryScoreAuditor(ins, outs).epsilon_one_run(1 - confidence, delta)
    (tmp_path / "in.txt").write_text("\n".join(repr(float(x)) for x in ins) + "\n")
    (tmp_path / "out.txt").write_text("\n".join(repr(float(x)) for x in outs) + "\n")
    p = subprocess.run([DPFT, "privacy", "audit-scores", "--in-scores", str(tmp_path / "in.txt"),
                        "--out-scores", str(tmp_path / "out.txt"), "--confidence", str(confidence),
                        "--delta", str(delta), "--json"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    assert abs(got["epsilon_lower_bound"] - want) <= 2e-6, (got, want)
    assert got["canaries"] == m


def test_bad_scores_are_refused(tmp_path):
    (tmp_path / "in.txt").write_text("1.0\nnot-a-number\n")
    (tmp_path / "out.txt").write_text("0.5\n")
    p = subprocess.run([DPFT, "privacy", "audit-scores", "--in-scores", str(tmp_path / "in.txt"),
                        "--out-scores", str(tmp_path / "out.txt"), "--delta", "1e-5"], capture_output=True, text=True)
    assert p.returncode == 2 and "in.txt:2" in p.stderr, p.stderr
