"""`dpft sweep --backend slurm` against a real Slurm: a single-node cluster on localhost started from Debian's
packages by scripts/slurm-local.sh (munged, slurmctld and slurmd from a temporary folder, SLURM_CONF pointing
there), stopped by pid at the end. The runs are CPU runs of a tiny random GPT-2 on E2E rows.

Cases: a 3-run sweep where one run fails (recorded, the others finish; `dpft report` gives the local backend's
table); `--no-wait` then `--status`; `--cancel` mid-sweep then `--resume` (only the rest runs); a task killed
by `scancel` mid-run resumes from its checkpoint bit-identically; a bad partition, GPUs the node lacks and a
missing sbatch are refused with what to do. Skipped, with the reason printed, only where Slurm's packages
cannot be installed.
"""
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import time

import pytest
import torch

from datadir import data_dir as shared_data_dir

ROOT = pathlib.Path(__file__).resolve().parents[2]
DPFT = os.environ.get("DPFT_BIN", str(ROOT / "target" / "debug" / "dpft"))
SCRIPT = ROOT / "scripts" / "slurm-local.sh"


def data_dir():
    return shared_data_dir("tokenizers/gpt2/tokenizer.json", "e2e/trainset.csv")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The environment of a running single-node cluster (SLURM_CONF set)."""
    install = subprocess.run(["bash", str(SCRIPT), "install"], capture_output=True, text=True)
    if install.returncode != 0:
        reason = f"Slurm's packages cannot be installed here: {install.stderr.strip()}"
        print(reason)
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("slurm")
    up = subprocess.run(["bash", str(SCRIPT), "up", str(folder)], capture_output=True, text=True, timeout=60)
    assert up.returncode == 0, up.stderr
    env = dict(os.environ, SLURM_CONF=str(folder / "etc" / "slurm.conf"), OMP_NUM_THREADS="1")
    try:
        yield env
    finally:
        down = subprocess.run(["bash", str(SCRIPT), "down", str(folder)], capture_output=True, text=True, timeout=60)
        assert down.returncode == 0, down.stderr
        for name in ["slurmd", "slurmctld", "munged"]:
            assert not (folder / f"{name}.pid.dpft").exists(), f"{name} was not stopped"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A tiny random GPT-2 folder with GPT-2's tokenizer."""
    from transformers import GPT2Config, GPT2LMHeadModel
    d = data_dir()
    out = tmp_path_factory.mktemp("gpt2")
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=50257, n_positions=64, n_embd=16, n_layer=1, n_head=2,
                        bos_token_id=50256, eos_token_id=50256)
    GPT2LMHeadModel(config).save_pretrained(out)
    for f in (d / "tokenizers" / "gpt2").iterdir():
        if f.is_file():
            shutil.copy(f, out / f.name)
    return out


def base_config(model, steps=3):
    return f"""model: {{path: {model}, untie_lm_head: true, add_pad_token: true}}
task: {{name: e2e, max_length: 60, max_train_examples: 16, max_eval_examples: 4}}
optimization: {{learning_rate: 1e-3, batch_size: 8, physical_batch_size: 8, steps: {steps}, checkpoint_every: 2, seed: 3}}
privacy: {{target_epsilon: 8, delta: 1e-5, max_grad_norm: 0.5, noise_seed: fixed}}
generation: {{num_beams: 1, max_new_tokens: 4, min_new_tokens: 1, meteor: false}}
"""


def write_sweep(folder, model, grid, steps=3, extra=""):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "base.yaml").write_text(base_config(model, steps))
    sweep = folder / "sweep.yaml"
    sweep.write_text(f"name: s\nbase: base.yaml\ngrid:\n{grid}{extra}")
    return sweep


def dpft(env, *args, timeout=150, cwd=None):
    cmd = [DPFT, "--data-dir", str(data_dir()), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd)


def sweep_json(out):
    return json.loads((out / "sweep.json").read_text())


def by_status(state):
    counts = {}
    for r in state["runs"]:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return counts


def wait_for(predicate, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def queue_empty(env, job):
    o = subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True, env=env)
    return o.returncode == 0 and not o.stdout.strip()


def test_a_failing_run_is_recorded_the_others_finish_and_the_report_matches_the_local_backend(cluster, model, tmp_path):
    # A model path relative to where dpft sweep starts (as the mini profile's results/pretrained/gpt2-mini):
    # the array tasks start there too.
    (tmp_path / "tiny").symlink_to(model)
    grid = "  model.path: [tiny, /nonexistent/gpt2]\n  privacy: [{target_epsilon: 3}, none]\n"
    extra = "exclude:\n  - {model.path: /nonexistent/gpt2, privacy: none}\nslurm: {cpus_per_run: 1}\n"
    sweep = write_sweep(tmp_path, model, grid, extra=extra)
    out = tmp_path / "slurm-out"
    o = dpft(cluster, "sweep", sweep, "--backend", "slurm", "--out", out, "--poll", "0.5", cwd=tmp_path)
    assert o.returncode == 1, o.stdout + o.stderr
    assert "1 of 3 runs failed" in o.stderr
    state = sweep_json(out)
    assert state["backend"] == "slurm" and state["slurm"]["job_id"].isdigit()
    assert by_status(state) == {"finished": 2, "failed": 1}, state
    failed = next(r for r in state["runs"] if r["status"] == "failed")
    assert "/nonexistent/gpt2" in failed["error"] and "Slurm FAILED" in failed["error"], failed
    script = (out / state["slurm"]["script"]).read_text()
    assert "#SBATCH --array=0-2\n" in script and "#SBATCH --cpus-per-task=1\n" in script
    for i, run in enumerate(state["slurm"]["tasks"]):
        assert (out / "logs" / f"{run}.log").is_file()
        assert (out / "logs" / f"slurm-{state['slurm']['job_id']}_{i}.out").is_file()
    for r in state["runs"]:
        if r["status"] == "finished":
            for f in ["config.yaml", "metrics.jsonl", "summary.json", "privacy.json", "predictions.txt"]:
                assert (out / r["id"] / f).is_file(), f"{r['id']}/{f}"
    # The same sweep on the local backend: the same run ids, and `dpft report` makes the same table.
    local = tmp_path / "local-out"
    o = dpft(cluster, "sweep", sweep, "--out", local, "--jobs", "2", cwd=tmp_path)
    assert o.returncode == 1, o.stdout + o.stderr
    assert [r["id"] for r in sweep_json(local)["runs"]] == [r["id"] for r in state["runs"]]
    tables = []
    for folder in [out, local]:
        rep = tmp_path / f"report-{folder.name}"
        o = dpft(cluster, "report", folder, "--out", rep)
        assert o.returncode == 0, o.stdout + o.stderr
        md = sorted(rep.glob("*.md"))
        assert md, list(rep.iterdir())
        tables.append({p.name: p.read_text() for p in md})
    assert tables[0] == tables[1]


def test_no_wait_returns_at_once_and_status_follows_the_job(cluster, model, tmp_path):
    sweep = write_sweep(tmp_path, model, "  optimization.seed: [1, 2]\n")
    out = tmp_path / "out"
    o = dpft(cluster, "sweep", sweep, "--backend", "slurm", "--no-wait", "--out", out)
    assert o.returncode == 0, o.stdout + o.stderr
    assert "submitted Slurm job" in o.stdout and "--status" in o.stdout
    state = sweep_json(out)
    assert set(by_status(state)) <= {"pending", "running"}, state
    assert not any((out / r["id"] / "summary.json").exists() for r in state["runs"])

    def finished():
        o = dpft(cluster, "sweep", sweep, "--out", out, "--status")
        assert o.returncode == 0, o.stdout + o.stderr
        return "2 of 2 runs finished" in o.stdout
    wait_for(finished, 90, "--status to show both runs finished")
    state = sweep_json(out)
    assert by_status(state) == {"finished": 2}
    assert all(r["metrics"]["loss"] > 0 for r in state["runs"])


def test_cancel_mid_sweep_then_resume_runs_only_the_rest(cluster, model, tmp_path):
    sweep = write_sweep(tmp_path, model, "  optimization.seed: [1, 2, 3]\n")
    out = tmp_path / "out"
    o = dpft(cluster, "sweep", sweep, "--backend", "slurm", "--no-wait", "--max-concurrent", "1", "--out", out)
    assert o.returncode == 0, o.stdout + o.stderr
    first = sweep_json(out)["slurm"]
    wait_for(lambda: (out / first["tasks"][0] / "summary.json").exists(), 90, "the first run to finish")
    o = dpft(cluster, "sweep", sweep, "--out", out, "--cancel")
    assert o.returncode == 0, o.stdout + o.stderr
    assert queue_empty(cluster, first["job_id"])
    state = sweep_json(out)
    counts = by_status(state)
    assert counts.get("finished", 0) >= 1 and counts.get("cancelled", 0) >= 1, state
    done = {r["id"] for r in state["runs"] if r["status"] == "finished"}
    stamps = {i: (out / i / "summary.json").stat().st_mtime_ns for i in done}
    # A second sweep into the folder while nothing is queued needs --resume.
    o = dpft(cluster, "sweep", sweep, "--backend", "slurm", "--out", out)
    assert o.returncode == 2 and "--resume" in o.stderr, o.stderr
    o = dpft(cluster, "sweep", sweep, "--backend", "slurm", "--resume", "--out", out, "--poll", "0.5")
    assert o.returncode == 0, o.stdout + o.stderr
    state = sweep_json(out)
    assert by_status(state) == {"finished": 3}
    job = state["slurm"]
    assert job["earlier_jobs"] == [first["job_id"]]
    assert sorted(job["tasks"]) == sorted({r["id"] for r in state["runs"]} - done), "only the rest ran"
    assert job["script"] == "slurm/submit-2.sbatch"
    assert {i: (out / i / "summary.json").stat().st_mtime_ns for i in done} == stamps, "finished runs untouched"


def losses(run):
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in rows if "eval" not in r]


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_task_killed_by_scancel_resumes_from_its_checkpoint_bit_identically(cluster, model, tmp_path):
    steps = 40
    sweep = write_sweep(tmp_path, model, "  optimization.seed: [5]\n", steps=steps)
    out = tmp_path / "out"
    o = dpft(cluster, "sweep", sweep, "--backend", "slurm", "--no-wait", "--out", out)
    assert o.returncode == 0, o.stdout + o.stderr
    job = sweep_json(out)["slurm"]
    run = out / job["tasks"][0]
    wait_for(lambda: (run / "checkpoints" / "step-2").is_dir(), 90, "the run's step-2 checkpoint")
    subprocess.run(["scancel", f"{job['job_id']}_0"], check=True, env=cluster)
    wait_for(lambda: queue_empty(cluster, job["job_id"]), 60, "the task to leave the queue")
    assert not (run / "summary.json").exists(), "the task was cancelled mid-run"
    steps_before = len(losses(run))
    assert 2 <= steps_before < steps
    o = dpft(cluster, "sweep", sweep, "--out", out, "--status")
    assert o.returncode == 0 and "1 cancelled" in o.stdout, o.stdout + o.stderr
    o = dpft(cluster, "sweep", sweep, "--backend", "slurm", "--resume", "--out", out, "--poll", "0.5")
    assert o.returncode == 0, o.stdout + o.stderr
    assert "resum" in (out / "logs" / f"{job['tasks'][0]}.log").read_text().lower()
    # The same run trained in one go on this machine.
    ref = tmp_path / "reference"
    config = out / "configs" / f"{job['tasks'][0]}.yaml"
    o = dpft(cluster, "--device", "cpu", "train", config, "--out", ref)
    assert o.returncode == 0, o.stdout + o.stderr
    assert losses(run) == losses(ref)
    assert len(losses(run)) == steps
    assert sha256(run / "model" / "model.safetensors") == sha256(ref / "model" / "model.safetensors")
    assert json.loads((run / "summary.json").read_text())["metrics"] == json.loads(
        (ref / "summary.json").read_text())["metrics"]


def test_refusals_name_what_to_do(cluster, model, tmp_path):
    sweep = write_sweep(tmp_path, model, "  optimization.seed: [1]\n")
    out = tmp_path / "out"
    o = dpft(cluster, "sweep", sweep, "--backend", "slurm", "--partition", "nope", "--out", out)
    assert o.returncode == 2, o.stdout + o.stderr
    assert "invalid partition" in o.stderr.lower() and "sinfo -s" in o.stderr, o.stderr
    assert not (out / "sweep.json").exists(), "nothing recorded for a refused submission"
    o = dpft(cluster, "sweep", sweep, "--backend", "slurm", "--gpus-per-run", "1", "--out", out)
    assert o.returncode == 2, o.stdout + o.stderr
    assert "GPUs" in o.stderr and "--gpus-per-run" in o.stderr, o.stderr
    o = dpft(dict(cluster, PATH=str(tmp_path)), "sweep", sweep, "--backend", "slurm", "--out", out)
    assert o.returncode == 2 and "sbatch" in o.stderr and "--backend local" in o.stderr, o.stderr
    o = dpft(cluster, "sweep", sweep, "--backend", "slurm", "--time", "2h", "--out", out)
    assert o.returncode == 2 and "--time" in o.stderr, o.stderr
    o = dpft(cluster, "sweep", sweep, "--partition", "debug", "--out", out)
    assert o.returncode == 2 and "--backend slurm" in o.stderr, o.stderr
