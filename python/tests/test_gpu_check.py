"""scripts/gpu-check.sh --dry-run: the prepared GPU check's sequence on the CPU (debug dpft, tiny sizes), so that
the script a lent GPU machine runs is known to work before device time is spent on it. Every step must pass:
dpft info, clip-check f64 in bk/ghost/naive, a private training run, and the bench harness on both sides."""

import os
import pathlib
import subprocess

from datadir import data_dir

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_gpu_check_dry_run_passes_every_step(tmp_path):
    data = data_dir("tokenizers/gpt2/tokenizer.json", "e2e/trainset.csv")
    env = dict(os.environ, OUT=str(tmp_path), DPFT_DATA_DIR=str(data), OMP_NUM_THREADS="1")
    p = subprocess.run(["bash", str(ROOT / "scripts" / "gpu-check.sh"), "--dry-run"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=900)
    summary = (tmp_path / "summary.txt").read_text()
    log = (tmp_path / "gpu-check.log").read_text() if (tmp_path / "gpu-check.log").exists() else ""
    assert p.returncode == 0, f"{summary}\n{p.stderr[-2000:]}\n{log[-3000:]}"
    steps = [line for line in summary.splitlines() if line.startswith("ok")]
    assert len(steps) == 7, summary  # info, checkpoints, 3 clip-checks, training, bench
    assert "FAIL" not in summary
