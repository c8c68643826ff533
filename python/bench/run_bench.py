"""`make bench`: dpft's training steps (non-private, book-keeping, ghost clipping, naive per-example gradients) next
to the Python reference (PyTorch eager + transformers, Opacus ghost clipping, Opacus per-sample hooks): step time,
peak memory and the largest batch that fits a memory limit (Li et al. 2022, Sec. 4 and Fig. 4; Bu et al. 2023).

Run: make bench                               (BENCH_PROFILE=cpu, the default: GPT-2 small on the CPU)
     make bench BENCH_PROFILE=paper           (a GPU; BENCH_MEM_LIMIT=40G, the A100 of the paper's anchors)
     make bench BENCH_ARGS="--only-timing"    (any switch below through BENCH_ARGS)
     python python/bench/run_bench.py --help  (every switch; --render-only re-draws from the JSON already written)
Run it on an otherwise idle machine: on a CPU, libtorch's OpenMP threads slow down by orders of magnitude when
another busy process (a cargo build, a second benchmark) takes their cores.

What runs. Two programs, each printing one JSON object with the same keys (impl, mode, model, batch_size, seq_len,
median_step_s, examples_per_s, peak_mem_bytes, peak_mem_kind, step_times_s, steps, warmup, device, threads,
parameters, lm_head_tied):
- ours: `target/release/dpft bench --mode nonprivate|bk|ghost|naive ... --json`, built first with
  `cargo build --release -p harness` (not with --no-build or --dpft PATH);
- the reference: `python/bench/bench_reference.py --mode nonprivate|opacus-ghost|opacus-hooks ... --json`.
  Opacus 1.6 ghost clipping refuses tied parameters, so opacus-ghost always unties GPT-2's lm_head from wte (its
  own copy, the same arithmetic per step); its fair partner is `dpft bk --untie-lm-head`, which is therefore run
  as well. The other runs keep the tie, as GPT-2 ships.
Every run is its own process, one after the other (never two at once: they would share the cores). TIMING_RUNS
and MAX_BATCH_METHODS below list them; PROFILES the sizes.

Profiles (BENCH_PROFILE or --profile; --device, --mem-limit, --max-batch-cap override a profile's values):
- cpu (default): timing of gpt2 (124M parameters, random weights), batch 8 x 128 tokens, 3 timed steps after 1
  warm-up, every timing run 3 times in rounds (--rounds); max batch of a ladder of small GPT-2 configs (GPT-2's
  vocabulary of 50257 and 1024 positions, fewer and narrower layers; written to OUT/configs/), 128 tokens, within
  3 GiB of resident memory, batch at most 256.
- paper: timing of gpt2, batch 32 x 128, 10 timed steps after 3 warm-up; max batch of gpt2, gpt2-medium and
  gpt2-large, 128 tokens, within --mem-limit (default 40 GiB), on --device (default cuda).
- smoke: a 2-layer GPT-2 of width 32 and vocabulary 128, batch 2 x 16, one step; max batch capped at 4. It checks
  that the whole pipeline runs (about a minute on 2 cores); its numbers mean nothing.

Environment. Every child process gets the same environment: the caller's, with MALLOC_MMAP_THRESHOLD_=4294967296
and MALLOC_TRIM_THRESHOLD_=8589934592 added (unless the caller set them: then the caller's values, for both
sides alike). A training step allocates and frees buffers far above glibc's default mmap threshold (the logits
alone are B x T x 50257 floats); with the defaults glibc returns each one to the kernel when freed and the next
step faults fresh pages in again, which costs a large share of a CPU step in system time. dpft sets these two
variables itself when they are absent (it re-executes itself with them, crates/harness/src/allocator.rs); the
Python process would keep glibc's defaults, so without them here the comparison would measure the allocator
settings, not the implementations. With them set, dpft does not re-execute. OMP_NUM_THREADS is left as the caller
has it (both programs then use the same number of threads; each JSON reports its count).

Timing: median step time over the timed steps, examples/s = batch / median, peak memory as each program reports it
(CPU: the process's resident-set high-water mark, VmHWM, the model and Adam state included; CUDA: dpft reports the
device memory its process holds at the end, nvidia-smi, i.e. peak reserved + context; the reference reports
torch.cuda.max_memory_allocated, so memory across sides is not like for like on CUDA).
Rounds (--rounds; cpu profile 3): the timing runs are repeated round-robin, every run once per round, so that the
runs of one round are minutes apart. A run's file then holds the record of its round with the median step time
(the lower middle for an even count), the median peak memory over its rounds and "rounds" (each round's median
step time, peak memory, phases, start); each target ratio is the median over rounds of the ratio within a round.
On a shared or thermally throttled machine the speed drifts by tens of percent over the minutes a bench takes
(this project's 2-core machine: dpft non-private 4.8 to 7.6 s a step on different runs); ratios within a round
are what the drift leaves alone.

Max batch (the same search on both sides, crates/harness/src/bench/max_batch.rs): `dpft bench --max-batch
--mem-limit BYTES --max-batch-cap CAP` searches on its own; for the reference, this script searches the same way.
Each candidate batch size runs in its own process with --steps 1 --warmup 1 (the optimizer state exists when the
peak is taken). Sizes 1, 2, 4, ... until one does not fit or the cap (then the cap itself), then bisection between
the last that fit and the first that did not: exact when the peak grows with the batch. On the CPU a watchdog
polls the child's VmRSS (/proc/PID/status) every 20 ms and kills it as soon as it passes the limit: "does not
fit". A child that fails with an out-of-memory message also does not fit; any other failure stops that search with
the child's error. A child that finishes fits if and only if its peak_mem_bytes <= the limit. On the CPU the limit
covers each whole process: the Python side starts about 0.3 GB higher (interpreter, torch's Python package,
transformers, opacus: 0.70 GB against dpft's 0.37 GB with a tiny model), which costs it a few examples of batch.

Output (OUT = --out, BENCH_OUT, else results/bench; files of other runs and profiles are kept):
- OUT/timing/<impl>-<mode>[-untied]-<model>-b<B>-t<T>.json and OUT/max_batch/<impl>-<mode>-<model>-t<T>.json,
  impl = dpft or python: the program's JSON plus "runner" (its exact command, environment, times, host). A run
  that fails is written too, with "error" (and the others go on); the exit status is then 1.
- OUT/bench.md: the timing table (ratios to dpft nonprivate), the targets of issue 20 (dpft bk time / nonprivate <= 1.10,
  bk peak memory / nonprivate <= 1.10, Opacus ghost time / dpft bk untied >= 1.6: bk at least 1.6x faster than
  Opacus ghost clipping on the same untied model), and the max-batch table; machine, versions, dates and the command.
  OUT/bench.json: everything behind it. Both are built from the per-run files of the profile's runs only (files
  of other profiles or sizes are ignored); bench.md is also printed at the end.
- OUT/timing.png (median step time and peak memory per run), OUT/max_batch.png and .svg (the paper's figure: the
  largest batch per model size and method, and the throughput at that batch).
--render-only (or --from-json DIR) rewrites bench.md, bench.json and the figures from the files in OUT, running
nothing. --only REGEX runs only the runs whose file name (without .json) matches, e.g. --only opacus-ghost.
"""

import argparse
import datetime
import importlib.util
import json
import os
import pathlib
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "python" / "bench" / "bench_reference.py"
DPFT = ROOT / "target" / "release" / "dpft"
DEFAULT_OUT = ROOT / "results" / "bench"
ALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(4 << 30), "MALLOC_TRIM_THRESHOLD_": str(8 << 30)}

# ---------------------------------------------------------------------------------------------- what runs

# Timing runs, in order: (program, mode, untie lm_head). "dpft" is target/release/dpft bench, "python" is
# bench_reference.py (whose opacus-ghost unties lm_head whatever this says: Opacus refuses tied weights).
TIMING_RUNS = [
    ("dpft", "nonprivate", False),
    ("dpft", "bk", False),
    ("dpft", "ghost", False),
    ("dpft", "naive", False),
    ("dpft", "bk", True),
    ("python", "nonprivate", False),
    ("python", "opacus-ghost", False),
    ("python", "opacus-hooks", False),
]
# Max-batch searches, per model of the profile: (program, mode, untie lm_head).
MAX_BATCH_METHODS = [
    ("dpft", "nonprivate", False),
    ("dpft", "bk", False),
    ("dpft", "ghost", False),
    ("dpft", "naive", False),
    ("python", "nonprivate", False),
    ("python", "opacus-ghost", False),
    ("python", "opacus-hooks", False),
]

# The runs the targets compare (see targets()).
NONPRIVATE, BK, BK_UNTIED = ("dpft", "nonprivate", False), ("dpft", "bk", False), ("dpft", "bk", True)
OPACUS_GHOST, TORCH_NONPRIVATE = ("python", "opacus-ghost", False), ("python", "nonprivate", False)
TARGET_BK_TIME, TARGET_BK_MEMORY, TARGET_OPACUS_GHOST = 1.10, 1.10, 1.6

_spec = importlib.util.spec_from_file_location("bench_reference", REFERENCE)
_reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_reference)  # its configs only (torch is imported by its functions, not at import)
BUILTIN = _reference.BUILTIN


def gpt2_config(n_layer, n_embd, n_head, **over):
    """A GPT-2 config (GPT-2's vocabulary, positions and dropout unless overridden) named e.g. gpt2-2x128."""
    cfg = {**_reference._GPT2, "n_layer": n_layer, "n_embd": n_embd, "n_head": n_head, **over}
    return {"name": f"gpt2-{n_layer}x{n_embd}" + ("-tiny" if "vocab_size" in over else ""), "config": cfg}


SMOKE_MODEL = gpt2_config(2, 32, 2, vocab_size=128, n_positions=64, bos_token_id=127, eos_token_id=127)

# A model is a built-in name (both programs know it) or {"name", "config"}: a config written to OUT/configs/.
PROFILES = {
    "cpu": {
        "device": "cpu",
        "timing": {"model": "gpt2", "batch_size": 8, "seq_len": 128, "steps": 3, "warmup": 1, "rounds": 3},
        "max_batch": {"models": [gpt2_config(2, 128, 2), gpt2_config(4, 256, 4)], "seq_len": 128,
                      "mem_limit": "3G", "cap": 256},
    },
    "paper": {
        "device": "cuda",
        "timing": {"model": "gpt2", "batch_size": 32, "seq_len": 128, "steps": 10, "warmup": 3, "rounds": 1},
        "max_batch": {"models": ["gpt2", "gpt2-medium", "gpt2-large"], "seq_len": 128, "mem_limit": "40G",
                      "cap": 2048},
    },
    "smoke": {
        "device": "cpu",
        "timing": {"model": SMOKE_MODEL, "batch_size": 2, "seq_len": 16, "steps": 1, "warmup": 1, "rounds": 1},
        "max_batch": {"models": [SMOKE_MODEL], "seq_len": 16, "mem_limit": "2G", "cap": 4},
    },
}

LABELS = {
    ("dpft", "nonprivate"): "dpft nonprivate",
    ("dpft", "bk"): "dpft bk",
    ("dpft", "ghost"): "dpft ghost",
    ("dpft", "naive"): "dpft naive",
    ("python", "nonprivate"): "PyTorch nonprivate",
    ("python", "opacus-ghost"): "Opacus ghost clipping",
    ("python", "opacus-hooks"): "Opacus hooks",
}


def run_label(side, mode, untie):
    label = LABELS.get((side, mode), f"{side} {mode}")
    return label + (" (untied lm_head)" if untie else "")


def model_label(model):
    return model if isinstance(model, str) else model["name"]


def model_config(model):
    return BUILTIN.get(model) if isinstance(model, str) else model["config"]


def gpt2_parameters(cfg):
    """Trainable parameters of a GPT-2 config with lm_head tied to wte (None for another family)."""
    if not cfg or cfg.get("model_type") != "gpt2":
        return None
    v, p, d, n = cfg["vocab_size"], cfg.get("n_positions", 1024), cfg["n_embd"], cfg["n_layer"]
    return v * d + p * d + n * (12 * d * d + 13 * d) + 2 * d


def timing_stem(side, mode, untie, model, batch, seq):
    return f"{side}-{mode}{'-untied' if untie else ''}-{model_label(model)}-b{batch}-t{seq}"


def max_batch_stem(side, mode, untie, model, seq):
    return f"{side}-{mode}{'-untied' if untie else ''}-{model_label(model)}-t{seq}"


# ----------------------------------------------------------------------------------------------- bytes


def parse_bytes(s):
    """A byte count: a plain integer, or a number with a unit K/M/G/T (powers of 1024; KiB, KB, k... alike), as
    `dpft bench --mem-limit` reads it."""
    t = str(s).strip()
    m = re.fullmatch(r"([0-9.]*)(.*)", t)
    num, unit = m.group(1), m.group(2)
    try:
        value = float(num)
    except ValueError:
        raise ValueError(f"`{s}` is not a byte count (e.g. 8G, 512MiB, 1073741824)") from None
    shifts = {"": 0, "k": 10, "m": 20, "g": 30, "t": 40}
    key = unit.strip().lower().rstrip("b").rstrip("i")
    if key not in shifts:
        raise ValueError(f"`{s}`: unknown unit `{unit}` (use K, M, G or T, powers of 1024)")
    b = value * (1 << shifts[key])
    if not (b >= 1 and b != float("inf")):
        raise ValueError(f"`{s}`: the memory limit must be at least one byte")
    return int(b)


def human_bytes(b):
    """`1.50 GiB`-style rendering of a byte count (as dpft prints it)."""
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    x, u = float(b), 0
    while x >= 1024 and u + 1 < len(units):
        x /= 1024
        u += 1
    return f"{int(b)} B" if u == 0 else f"{x:.2f} {units[u]}"


# --------------------------------------------------------------------------------------------- children


def child_env():
    """The environment of every benchmark process (see the module docstring)."""
    env = dict(os.environ)
    for k, v in ALLOC_ENV.items():
        env.setdefault(k, v)
    return env


def env_summary(env):
    keys = list(ALLOC_ENV) + ["OMP_NUM_THREADS"]
    return {k: env.get(k) for k in keys}


def proc_status_bytes(pid, key):
    """VmRSS / VmHWM of process `pid` in bytes, None when unreadable (gone, or not Linux)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class Child:
    """A child process whose stdout and stderr are drained on threads (so a chatty child never blocks on a full
    pipe); stderr lines are echoed to our stdout (after the progress lines) with `echo` as prefix when given."""

    def __init__(self, argv, env=None, echo=None, cwd=ROOT):
        self.proc = subprocess.Popen([str(x) for x in argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, cwd=cwd, text=True, errors="replace")
        self._out, self._err = [], []

        def drain(pipe, sink, prefix):
            for line in pipe:
                sink.append(line)
                if prefix is not None:
                    sys.stdout.write(prefix + line)
                    sys.stdout.flush()
            pipe.close()

        self._threads = [threading.Thread(target=drain, args=(self.proc.stdout, self._out, None), daemon=True),
                         threading.Thread(target=drain, args=(self.proc.stderr, self._err, echo), daemon=True)]
        for t in self._threads:
            t.start()

    @property
    def pid(self):
        return self.proc.pid

    def poll(self):
        return self.proc.poll()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()

    def finish(self):
        """Waits for the exit; (returncode, stdout, stderr)."""
        rc = self.proc.wait()
        for t in self._threads:
            t.join()
        return rc, "".join(self._out), "".join(self._err)


def run_child(argv, env=None, echo=None):
    child = Child(argv, env=env, echo=echo)
    try:
        return child.finish()
    finally:
        child.kill()  # only if interrupted (KeyboardInterrupt) while waiting


def parse_report(stdout):
    """The one JSON object a benchmark prints (the last line that parses, should a library print first)."""
    text = stdout.strip()
    for candidate in [text] + text.splitlines()[::-1]:
        try:
            v = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(v, dict):
            return v
    raise ValueError(f"no JSON object on stdout: {tail(stdout, 500)!r}")


def tail(s, n=2000):
    s = s.strip()
    return s if len(s) <= n else "..." + s[-n:]


# ----------------------------------------------------------------------------------------- max-batch search

OOM_MARKERS = ("out of memory", "can't allocate memory", "bad_alloc", "memoryerror")
POLL_S = 0.02


class TrialFailed(Exception):
    """A candidate failed for another reason than memory: the search stops."""


def trial(argv, batch, limit, watch_rss=True, env=None):
    """One candidate: runs `argv --batch-size batch` (which must print the JSON report) and says whether it fits in
    `limit` bytes. Returns {batch_size, fits, peak_mem_bytes, median_step_s, reason} as dpft's trials."""
    child = Child(list(argv) + ["--batch-size", str(batch)], env=env)
    stopped_at = None
    try:
        while child.poll() is None:
            if watch_rss:
                rss = proc_status_bytes(child.pid, "VmRSS:")
                if rss is not None and rss > limit:
                    child.kill()
                    stopped_at = rss
                    break
            time.sleep(POLL_S)
    finally:
        child.kill()
    rc, out, err = child.finish()
    if stopped_at is not None:
        return {"batch_size": batch, "fits": False, "peak_mem_bytes": stopped_at, "median_step_s": None,
                "reason": f"stopped at {human_bytes(stopped_at)} resident, above the limit"}
    if rc != 0:
        if any(m in err.lower() for m in OOM_MARKERS):
            return {"batch_size": batch, "fits": False, "peak_mem_bytes": None, "median_step_s": None,
                    "reason": "ran out of memory"}
        raise TrialFailed(f"the trial with batch size {batch} failed (exit status {rc}): {tail(err)}")
    try:
        report = parse_report(out)
    except ValueError as e:
        raise TrialFailed(f"reading the report of the trial with batch size {batch}: {e}") from None
    peak = report.get("peak_mem_bytes")
    if peak is None:
        raise TrialFailed(f"the trial with batch size {batch} could not measure its peak memory on this platform")
    fits = peak <= limit
    return {"batch_size": batch, "fits": fits, "peak_mem_bytes": peak, "median_step_s": report.get("median_step_s"),
            "reason": None if fits else f"peak {human_bytes(peak)} above the limit", "report": report}


def search(cap, run_trial):
    """The largest batch size in 1..cap whose trial fits (0 if not even 1 fits), and every trial made, in order.

    1, 2, 4, ... until a size does not fit or the cap is passed (then the cap itself), then bisection between the
    last size that fit and the first that did not; no size is tried twice. run_trial(b) returns a trial dict
    (at least "fits") and raises to stop the search."""
    trials = []

    def run(b):
        t = run_trial(b)
        trials.append(t)
        return t["fits"]

    good, bad, b = 0, None, 1
    while b <= cap:
        if run(b):
            good, b = b, b * 2
        else:
            bad = b
            break
    if bad is None and good < cap:  # doubling stepped over the cap: try the cap itself
        if run(cap):
            return cap, trials
        bad = cap
    if bad is not None:
        lo, hi = good, bad
        while hi - lo > 1:
            mid = lo + (hi - lo) // 2
            if run(mid):
                lo = mid
            else:
                hi = mid
        good = lo
    return good, trials


def describe_trial(t):
    if t["fits"]:
        step = f", {t['median_step_s']:.3f} s/step" if t.get("median_step_s") is not None else ""
        return f"batch {t['batch_size']:>5}: fits (peak {human_bytes(t['peak_mem_bytes'])}{step})"
    return f"batch {t['batch_size']:>5}: does not fit ({t.get('reason') or ''})"


def python_max_batch(argv, limit, cap, device, env=None, log=None):
    """The reference's max-batch search: dpft bench --max-batch's JSON, for bench_reference.py `argv` (a timing
    command without --batch-size)."""
    watch_rss = not device.startswith("cuda")

    def one(b):
        t = trial(argv, b, limit, watch_rss=watch_rss, env=env)
        if log:
            log(describe_trial(t))
        return t

    best, trials = search(cap, one)
    at_best = next((t for t in trials if t["batch_size"] == best and t["fits"]), None)
    report = (at_best or {}).get("report") or next((t["report"] for t in trials if t.get("report")), {})
    med = at_best and at_best.get("median_step_s")
    return {
        "impl": report.get("impl"), "mode": report.get("mode"), "model": report.get("model"),
        "seq_len": report.get("seq_len"), "mem_limit_bytes": limit, "max_batch_size": best, "max_batch_cap": cap,
        "batch_size": best, "median_step_s": med, "examples_per_s": best / med if med else None,
        "peak_mem_bytes": at_best and at_best.get("peak_mem_bytes"), "peak_mem_kind": report.get("peak_mem_kind"),
        "device": report.get("device", device), "dtype": report.get("dtype"), "threads": report.get("threads"),
        "parameters": report.get("parameters"), "lm_head_tied": report.get("lm_head_tied"),
        "versions": report.get("versions"),
        "trials": [{k: t.get(k) for k in ("batch_size", "fits", "peak_mem_bytes", "median_step_s", "reason")}
                   for t in trials],
    }


# ------------------------------------------------------------------------------------------------ plan


def settings_for(profile, device=None, mem_limit=None, cap=None, rounds=None):
    """The resolved settings of a profile (a deep-ish copy with the overrides applied)."""
    p = PROFILES[profile]
    mb = dict(p["max_batch"])
    mb["mem_limit_bytes"] = parse_bytes(mem_limit if mem_limit else mb["mem_limit"])
    if cap:
        mb["cap"] = int(cap)
    timing = dict(p["timing"])
    if rounds:
        timing["rounds"] = int(rounds)
    return {"profile": profile, "device": device or p["device"], "timing": timing, "max_batch": mb}


def rel(path):
    """A path as the children see it (they run in the repository root): relative to it when inside."""
    path = pathlib.Path(path).resolve()
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def model_arg(model, out):
    """What --model gets: the built-in name, or the config file under OUT/configs/."""
    return model if isinstance(model, str) else rel(out / "configs" / f"{model['name']}.json")


def shown(argv):
    """A command line as recorded: the interpreter as `python`, paths inside the repository relative to it."""
    return ["python" if x == sys.executable else (rel(x) if x.startswith(str(ROOT) + os.sep) else x) for x in argv]


def write_configs(settings, out):
    models = [settings["timing"]["model"]] + list(settings["max_batch"]["models"])
    for m in models:
        if not isinstance(m, str):
            path = ROOT / model_arg(m, out)
            path.parent.mkdir(parents=True, exist_ok=True)
            text = json.dumps(m["config"], indent=1) + "\n"
            if not path.exists() or path.read_text() != text:
                path.write_text(text)


def plan(settings, out):
    """Every run of the settings: dicts with kind (timing / max_batch), side, mode, untie, model, label, path."""
    jobs = []
    t = settings["timing"]
    for side, mode, untie in TIMING_RUNS:
        stem = timing_stem(side, mode, untie, t["model"], t["batch_size"], t["seq_len"])
        jobs.append({"kind": "timing", "side": side, "mode": mode, "untie": untie, "model": t["model"],
                     "label": run_label(side, mode, untie), "stem": stem, "path": out / "timing" / f"{stem}.json"})
    m = settings["max_batch"]
    for model in m["models"]:
        for side, mode, untie in MAX_BATCH_METHODS:
            stem = max_batch_stem(side, mode, untie, model, m["seq_len"])
            jobs.append({"kind": "max_batch", "side": side, "mode": mode, "untie": untie, "model": model,
                         "label": run_label(side, mode, untie), "stem": stem,
                         "path": out / "max_batch" / f"{stem}.json"})
    return jobs


def command(job, settings, out, dpft, reference):
    """The command line of a timing run, or of a max-batch search (for python: the trial command without
    --batch-size; this script does the search)."""
    device, model = settings["device"], model_arg(job["model"], out)
    exe = [str(dpft), "bench"] if job["side"] == "dpft" else [sys.executable, str(reference)]
    untie = ["--untie-lm-head"] if job["untie"] else []
    if job["kind"] == "timing":
        t = settings["timing"]
        return exe + ["--model", model, "--batch-size", str(t["batch_size"]), "--seq-len", str(t["seq_len"]),
                      "--mode", job["mode"], "--steps", str(t["steps"]), "--warmup", str(t["warmup"]),
                      "--device", device, "--json"] + untie
    m = settings["max_batch"]
    if job["side"] == "dpft":
        return exe + ["--model", model, "--seq-len", str(m["seq_len"]), "--mode", job["mode"], "--max-batch",
                      "--mem-limit", str(m["mem_limit_bytes"]), "--max-batch-cap", str(m["cap"]), "--device",
                      device, "--json"] + untie
    return exe + ["--model", model, "--seq-len", str(m["seq_len"]), "--mode", job["mode"], "--steps", "1",
                  "--warmup", "1", "--device", device, "--json"] + untie


def host_info():
    info = {"cpu_count": os.cpu_count(), "cpu_model": None, "mem_total_bytes": None, "platform": platform.platform(),
            "gpus": None}
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        info["mem_total_bytes"] = proc_meminfo_total()
    except OSError:
        pass
    if shutil.which("nvidia-smi"):
        try:
            r = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=30)
            info["gpus"] = [line.strip() for line in r.stdout.splitlines() if line.strip()] or None
        except (OSError, subprocess.SubprocessError):
            pass
    return info


def proc_meminfo_total():
    for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return None


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def write_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    tmp.replace(path)


def execute(job, settings, out, dpft, reference, runner, write=True):
    """Runs one job; returns its record (the program's JSON + runner, or an error record), written to the job's
    file unless `write` is false."""
    env = child_env()
    argv = command(job, settings, out, dpft, reference)
    runner = {**runner, "label": job["label"], "side": job["side"], "untie_lm_head": job["untie"],
              "model_label": model_label(job["model"]), "argv": shown(argv), "env": env_summary(env),
              "started": now()}
    t0 = time.perf_counter()
    base = {"impl": job["side"], "mode": job["mode"], "model": model_arg(job["model"], out)}
    try:
        if job["kind"] == "max_batch" and job["side"] == "python":
            m = settings["max_batch"]
            record = python_max_batch(argv, m["mem_limit_bytes"], m["cap"], settings["device"], env=env,
                                      log=lambda s: print("      " + s, flush=True))
        else:
            rc, stdout, stderr = run_child(argv, env=env, echo="      " if job["kind"] == "max_batch" else None)
            if rc != 0:
                raise TrialFailed(f"exit status {rc}: {tail(stderr)}")
            record = parse_report(stdout)
    except (TrialFailed, ValueError, OSError) as e:
        record = {**base, "error": str(e)}
    runner["finished"] = now()
    runner["wall_s"] = round(time.perf_counter() - t0, 3)
    record["runner"] = runner
    if write:
        write_json(job["path"], record)
    return record


def combine_rounds(records):
    """One timing run's record over its rounds: the first failed round's record if a round failed; else the
    record of the round with the median step time (the lower middle for an even count: its step times, phases and
    runner), with peak_mem_bytes the median over rounds and "rounds" listing each round's median step time, peak
    memory, phases and start."""
    bad = next((r for r in records if not ok(r)), None)
    if bad is not None:
        return bad
    middle = (len(records) - 1) // 2
    by_time = sorted(records, key=lambda r: r["median_step_s"])
    peaks = sorted(r.get("peak_mem_bytes") for r in records if r.get("peak_mem_bytes") is not None)
    out = dict(by_time[middle])
    if peaks:
        out["peak_mem_bytes"] = peaks[(len(peaks) - 1) // 2]
    out["rounds"] = [{"median_step_s": r.get("median_step_s"), "peak_mem_bytes": r.get("peak_mem_bytes"),
                      "phase_median_s": r.get("phase_median_s"), "started": (r.get("runner") or {}).get("started")}
                     for r in records]
    return out


def error_line(error, n=300):
    """The telling line of an error message: the last that says "error" (a Python traceback ends with it, clap and
    anyhow start with it), else the first."""
    lines = [x.strip() for x in error.strip().splitlines() if x.strip()] or ["error"]
    said = [x for x in lines if "error" in x.lower()]
    line = said[-1] if said else lines[0]
    return line if len(line) <= n else line[:n] + "..."


def summary_line(record):
    if "error" in record:
        return "FAILED: " + error_line(record["error"])
    if record.get("median_step_s") is None and "max_batch_size" not in record:
        return "no median_step_s in the report"
    if "max_batch_size" in record:
        eps = record.get("examples_per_s")
        return (f"largest batch {record['max_batch_size']}"
                + (f", {eps:.2f} examples/s" if eps else "") + f" ({len(record.get('trials') or [])} trials)")
    peak = record.get("peak_mem_bytes")
    return (f"{record['median_step_s']:.3f} s/step, {fmt(record.get('examples_per_s'), '.2f')} examples/s, peak "
            f"{human_bytes(peak) if peak is not None else 'unavailable'}")


# ---------------------------------------------------------------------------------------------- render


def read_json(path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def collect(settings, out):
    """The entries of the profile's runs with their records from OUT (record None where no file)."""
    entries = {"timing": [], "max_batch": []}
    for job in plan(settings, out):
        entries[job["kind"]].append({**{k: job[k] for k in ("side", "mode", "untie", "label", "stem")},
                                     "model": model_label(job["model"]),
                                     "parameters": gpt2_parameters(model_config(job["model"])),
                                     "record": read_json(job["path"])})
    return entries


def ok(record):
    return record is not None and "error" not in record


def fmt(x, spec, missing="—"):
    return missing if x is None else format(x, spec)


def gib(b):
    return None if b is None else b / 2**30


def ratio(a, b):
    return a / b if a is not None and b else None


def targets(timing):
    """The issue's checks on the timing entries: [{check, ratio, target, result}], result PASS / MISS, context (no
    target), NOT RUN (a run has no file) or RUN FAILED."""
    by = {(e["side"], e["mode"], e["untie"]): e["record"] for e in timing}

    def val(key, field):
        r = by.get(key)
        return r.get(field) if ok(r) else None

    def per_round(num, den, field):
        """The ratio within each round both runs have (the runs of one round ran minutes apart, so a machine
        whose speed drifts over a run of the bench moves both alike); one round for records without rounds."""
        a, b = by.get(num), by.get(den)
        if not (ok(a) and ok(b)):
            return []
        ra, rb_ = a.get("rounds") or [a], b.get("rounds") or [b]
        return [x for x in (ratio(p.get(field), q.get(field)) for p, q in zip(ra, rb_)) if x is not None]

    def missing(*keys):
        return "RUN FAILED" if any(by.get(k) is not None and not ok(by.get(k)) for k in keys) else "NOT RUN"

    rows = []
    for check, num, den, field, op, bound in [
        ("dpft bk time / dpft nonprivate time", BK, NONPRIVATE, "median_step_s", "≤", TARGET_BK_TIME),
        ("dpft bk peak memory / dpft nonprivate peak memory", BK, NONPRIVATE, "peak_mem_bytes", "≤",
         TARGET_BK_MEMORY),
        ("Opacus ghost clipping time / dpft bk (untied lm_head) time", OPACUS_GHOST, BK_UNTIED, "median_step_s", "≥",
         TARGET_OPACUS_GHOST),
        ("PyTorch nonprivate time / dpft nonprivate time", TORCH_NONPRIVATE, NONPRIVATE, "median_step_s", None, None),
    ]:
        rounds = per_round(num, den, field)
        r = statistics.median(rounds) if rounds else ratio(val(num, field), val(den, field))
        if r is None:
            result = missing(num, den)
        elif op is None:
            result = "context"
        else:
            result = "PASS" if (r <= bound if op == "≤" else r >= bound) else "MISS"
        rows.append({"check": check, "ratio": r, "target": f"{op} {bound:.2f}" if op else "(context)",
                     "result": result, "per_round": rounds})
    return rows


def facts(entries):
    """Machine, versions, dates, commands and environment, from the records."""
    records = [e["record"] for kind in entries.values() for e in kind if e["record"]]
    good = [r for r in records if ok(r)]
    runners = [r.get("runner") or {} for r in records]
    f = {"host": next((ru["host"] for ru in runners if ru.get("host")), None), "devices": sorted(
        {r["device"] for r in good if r.get("device")}), "threads": {}, "versions": {}, "dpft_version": None,
        "invocations": [], "env": next((ru["env"] for ru in runners if ru.get("env")), None),
        "first": min((ru["started"] for ru in runners if ru.get("started")), default=None),
        "last": max((ru["finished"] for ru in runners if ru.get("finished")), default=None), "peak_kinds": {}}
    for r in good:
        side = (r.get("runner") or {}).get("side", r.get("impl"))
        if r.get("threads") is not None:
            f["threads"].setdefault(side, set()).add(r["threads"])
        if r.get("versions"):
            f["versions"] = r["versions"]
        if r.get("version") and side == "dpft":
            f["dpft_version"] = r["version"]
        if r.get("peak_mem_kind"):
            f["peak_kinds"].setdefault(side, set()).add(r["peak_mem_kind"])
    for ru in sorted(runners, key=lambda ru: ru.get("finished") or ""):
        inv = ru.get("invocation")
        if inv and inv not in f["invocations"]:
            f["invocations"].append(inv)
    f["threads"] = {k: sorted(v) for k, v in f["threads"].items()}
    f["peak_kinds"] = {k: sorted(v) for k, v in f["peak_kinds"].items()}
    return f


def params_text(n):
    if n is None:
        return ""
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k"


def markdown(settings, entries, figures=()):
    """bench.md for the settings and the entries collect() gives."""
    t, m = settings["timing"], settings["max_batch"]
    f = facts(entries)
    lines = [f"# dpft bench: private training steps next to PyTorch / Opacus (profile {settings['profile']})", ""]
    host = f["host"] or {}
    cpu = f"{host.get('cpu_count', '?')} CPUs" + (f" ({host['cpu_model']})" if host.get("cpu_model") else "")
    mem = f", {human_bytes(host['mem_total_bytes'])} memory" if host.get("mem_total_bytes") else ""
    gpus = f"; GPUs: {', '.join(host['gpus'])}" if host.get("gpus") else ""
    threads = ", ".join(f"{'dpft' if k == 'dpft' else 'Python'} {'/'.join(map(str, v))}"
                        for k, v in sorted(f["threads"].items())) or "—"
    env = f["env"] or {}
    env_text = ", ".join(f"{k}={v}" for k, v in env.items() if v is not None and k != "OMP_NUM_THREADS")
    omp = env.get("OMP_NUM_THREADS")
    versions = ", ".join(f"{k} {v}" for k, v in f["versions"].items())
    dates = f"{f['first']} to {f['last']}" if f["first"] else "—"
    lines += [
        "Written by `make bench` (python/bench/run_bench.py; its docstring explains the method). "
        f"Machine: {cpu}{mem}{gpus}; device {', '.join(f['devices']) or settings['device']}; threads: {threads}; "
        f"OMP_NUM_THREADS {omp if omp else 'unset'}; every process ran with {env_text or 'the default allocator'}.",
        "",
        f"Versions: dpft {f['dpft_version'] or '—'}; {versions or 'Python reference not run'}. Runs from {dates} "
        "(UTC).",
        "",
        "Command: " + ("; ".join(f"`{c}`" for c in f["invocations"]) or "—")
        + " (each run's own command line is in its JSON file, under runner.argv).",
        "",
        "## Step time and peak memory",
        "",
        f"Model {model_label(t['model'])} (random weights), batch {t['batch_size']} x {t['seq_len']} tokens, median "
        f"of {t['steps']} timed step{'s' if t['steps'] != 1 else ''} after {t['warmup']} warm-up"
        + (f"; every run {t['rounds']} times, in rounds (each round runs every run once, in the order below), and "
           "each row is the run's round with the median step time (peak memory: the median over its rounds)"
           if t.get("rounds", 1) > 1 else "") + ". A step is forward, "
        "backward, per-example clipping "
        "and noise (private modes), Adam update. Opacus ghost clipping unties lm_head from wte (Opacus refuses tied "
        "parameters): compare it with dpft bk (untied lm_head).",
        "",
        "| run | lm_head | median step (s) | examples/s | peak memory (GiB) | time / dpft nonprivate | "
        "memory / dpft nonprivate |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    base = next((e["record"] for e in entries["timing"] if (e["side"], e["mode"], e["untie"]) == NONPRIVATE), None)
    base = base if ok(base) else None
    failed = []
    for e in entries["timing"]:
        r = e["record"]
        if r is None:
            lines.append(f"| {e['label']} | | not run | | | | |")
            continue
        if not ok(r):
            lines.append(f"| {e['label']} | | failed | | | | |")
            failed.append((e, r))
            continue
        tied = r.get("lm_head_tied")
        tie = "tied" if tied else ("untied" if tied is False else "")
        tr = ratio(r.get("median_step_s"), base and base.get("median_step_s"))
        mr = ratio(r.get("peak_mem_bytes"), base and base.get("peak_mem_bytes"))
        lines.append(f"| {e['label']} | {tie} | {fmt(r.get('median_step_s'), '.3f')} | "
                     f"{fmt(r.get('examples_per_s'), '.2f')} | "
                     f"{fmt(gib(r.get('peak_mem_bytes')), '.2f')} | {fmt(tr, '.3f')} | {fmt(mr, '.3f')} |")
    kinds = sorted(f["peak_kinds"].items())
    if len({tuple(v) for _, v in kinds}) == 1:
        kinds = f"{', '.join(kinds[0][1])}, on both sides"
    else:
        kinds = "; ".join(f"{'dpft' if k == 'dpft' else 'Python'}: {', '.join(v)}" for k, v in kinds)
    if kinds:
        lines += ["", f"Peak memory: {kinds}."]
    lines += ["", "## Targets", "", "| check | ratio | target | result |", "|---|---:|---|---|"]
    rows = targets(entries["timing"])
    for row in rows:
        lines.append(f"| {row['check']} | {fmt(row['ratio'], '.3f', 'n/a')} | {row['target']} | {row['result']} |")
    if any(len(row["per_round"]) > 1 for row in rows):
        lines += ["", "Each ratio is the median over the rounds of the ratio within a round (runs of one round ran "
                  "minutes apart; on a machine whose speed drifts, ratios across rounds would mix speeds). Per round:"]
        lines += [f"- {row['check']}: {', '.join(format(x, '.3f') for x in row['per_round'])}"
                  for row in rows if row["per_round"]]
    lines += [
        "",
        f"## Largest batch within {human_bytes(m['mem_limit_bytes'])}",
        "",
        f"{m['seq_len']} tokens per example; batch sizes up to {m['cap']} searched by doubling then bisection, each "
        "candidate a warm-up and a timed step in its own process; on the CPU a watchdog stops a candidate whose "
        "resident memory passes the limit. examples/s: at that batch, from its one timed step.",
        "",
        "| model | parameters | method | max batch | examples/s | step (s) | peak memory (GiB) | trials |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for e in entries["max_batch"]:
        r = e["record"]
        head = f"| {e['model']} | {params_text(e['parameters'])} | {e['label']} |"
        if r is None:
            lines.append(f"{head} not run | | | | |")
        elif not ok(r):
            lines.append(f"{head} failed | | | | |")
            failed.append((e, r))
        else:
            best = r["max_batch_size"]
            cap = " (the cap)" if best == r.get("max_batch_cap", m["cap"]) else ""
            lines.append(f"{head} {best}{cap} | {fmt(r.get('examples_per_s'), '.2f')} | "
                         f"{fmt(r.get('median_step_s'), '.3f')} | {fmt(gib(r.get('peak_mem_bytes')), '.2f')} | "
                         f"{len(r.get('trials') or [])} |")
    if failed:
        lines += ["", "## Failed runs", ""]
        for e, r in failed:
            lines.append(f"- {e['stem']}: {error_line(r['error'])}")
    if figures:
        lines += ["", "## Figures", ""] + [f"![{p.stem}]({p.name})" for p in figures if p.suffix == ".png"]
    return "\n".join(lines) + "\n"


def figures(settings, entries, out):
    """timing.png and max_batch.png/.svg (those with data); returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    timing = [e for e in entries["timing"] if ok(e["record"])]
    if timing:
        t = settings["timing"]
        labels = [e["label"] for e in timing]
        fig, axes = plt.subplots(1, 2, figsize=(12, 0.45 * len(labels) + 1.6), sharey=True)
        colors = ["tab:blue" if e["side"] == "dpft" else "tab:orange" for e in timing]
        for ax, field, scale, title, spec in [(axes[0], "median_step_s", 1, "median step time (s)", ".3f"),
                                             (axes[1], "peak_mem_bytes", 2**-30, "peak memory (GiB)", ".2f")]:
            vals = [(e["record"].get(field) or 0) * scale for e in timing]
            ax.barh(range(len(vals)), vals, color=colors)
            for i, v in enumerate(vals):
                ax.text(v, i, " " + format(v, spec), va="center", fontsize=8)
            ax.set_xlabel(title)
            ax.set_xlim(0, max(vals + [1e-9]) * 1.2)
        axes[0].set_yticks(range(len(labels)), labels)
        axes[0].invert_yaxis()
        fig.suptitle(f"{model_label(t['model'])}, batch {t['batch_size']} x {t['seq_len']} tokens "
                     "(blue: dpft, orange: PyTorch / Opacus)")
        fig.tight_layout()
        path = out / "timing.png"
        fig.savefig(path, dpi=150)
        plt.close(fig)
        written.append(path)

    mb = entries["max_batch"]
    if any(ok(e["record"]) for e in mb):
        models = list(dict.fromkeys(e["model"] for e in mb))
        methods = list(dict.fromkeys(e["label"] for e in mb))
        params = {e["model"]: e["parameters"] for e in mb}
        cell = {(e["model"], e["label"]): e["record"] for e in mb}
        width = 0.8 / len(methods)
        fig, axes = plt.subplots(1, 2, figsize=(max(10, 2.2 * len(models) * 2), 4.8))
        cmap = plt.get_cmap("tab10")
        for ax, field, title in [(axes[0], "max_batch_size", "largest batch size"),
                                 (axes[1], "examples_per_s", "throughput at that batch (examples/s)")]:
            for j, method in enumerate(methods):
                xs, ys = [], []
                for i, model in enumerate(models):
                    r = cell.get((model, method))
                    if ok(r) and r.get(field) is not None:
                        xs.append(i - 0.4 + width * (j + 0.5))
                        ys.append(r[field])
                bars = ax.bar(xs, ys, width, label=method, color=cmap(j % 10))
                ax.bar_label(bars, fmt="%.3g", fontsize=6, padding=1)
            ax.set_xticks(range(len(models)),
                          [f"{mo}\n{params_text(params[mo])}" if params[mo] else mo for mo in models])
            ax.set_ylabel(title)
            ax.set_title(title)
        handles, names = axes[0].get_legend_handles_labels()
        fig.legend(handles, names, loc="lower center", ncol=min(4, len(names)), fontsize=8, frameon=False)
        m = settings["max_batch"]
        fig.suptitle(f"{m['seq_len']} tokens, memory limit {human_bytes(m['mem_limit_bytes'])} "
                     f"({settings['device']})")
        fig.tight_layout(rect=(0, 0.05 * ((len(names) + 3) // 4), 1, 1))
        for suffix in (".png", ".svg"):
            path = out / f"max_batch{suffix}"
            fig.savefig(path, dpi=150)
            written.append(path)
        plt.close(fig)
    return written


def render(settings, out):
    """Writes bench.md, bench.json and the figures from the files in OUT; returns the Markdown."""
    entries = collect(settings, out)
    written = figures(settings, entries, out)
    md = markdown(settings, entries, written)
    (out / "bench.md").write_text(md)
    jsonable = {"profile": settings["profile"], "rendered": now(), "device": settings["device"],
                "timing_settings": {**settings["timing"], "model": model_label(settings["timing"]["model"])},
                "max_batch_settings": {**settings["max_batch"],
                                       "models": [model_label(x) for x in settings["max_batch"]["models"]]},
                "facts": facts(entries), "targets": targets(entries["timing"]), "timing": entries["timing"],
                "max_batch": entries["max_batch"], "figures": [p.name for p in written]}
    write_json(out / "bench.json", jsonable)
    return md


# ------------------------------------------------------------------------------------------------- main


def parser():
    ap = argparse.ArgumentParser(
        description="dpft bench next to the PyTorch / Opacus reference: step time, peak memory and the largest "
                    "batch within a memory limit; writes OUT/bench.md, bench.json, figures and one JSON per run.")
    ap.add_argument("--profile", choices=sorted(PROFILES), default=os.environ.get("BENCH_PROFILE") or "cpu",
                    help="sizes (see the docstring): cpu, paper or smoke [$BENCH_PROFILE, else cpu]")
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path(os.environ.get("BENCH_OUT") or DEFAULT_OUT),
                    help="output folder [$BENCH_OUT, else results/bench]")
    ap.add_argument("--device", default=os.environ.get("BENCH_DEVICE") or None,
                    help="cpu, cuda or cuda:N for every run [$BENCH_DEVICE, else the profile's: cpu; paper: cuda]")
    ap.add_argument("--mem-limit", default=os.environ.get("BENCH_MEM_LIMIT") or None,
                    help="max-batch memory limit, bytes or with K/M/G/T (powers of 1024) [$BENCH_MEM_LIMIT, else "
                         "the profile's: cpu 3G, paper 40G]")
    ap.add_argument("--max-batch-cap", type=int, default=None, help="largest batch tried [cpu 256, paper 2048]")
    ap.add_argument("--skip-max-batch", "--only-timing", dest="skip_max_batch", action="store_true",
                    help="run the timing section only")
    ap.add_argument("--skip-timing", "--only-max-batch", dest="skip_timing", action="store_true",
                    help="run the max-batch section only")
    ap.add_argument("--rounds", type=int, default=None,
                    help="times every timing run is repeated, round-robin [cpu 3, paper 1, smoke 1]")
    ap.add_argument("--only", metavar="REGEX", default=None,
                    help="run only the runs whose file name (without .json) matches, e.g. 'opacus-ghost' or '^dpft-'")
    ap.add_argument("--no-build", action="store_true", help="do not run cargo build --release -p harness first")
    ap.add_argument("--dpft", type=pathlib.Path, default=None,
                    help="the dpft binary to run (implies --no-build) [target/release/dpft]")
    ap.add_argument("--reference", type=pathlib.Path, default=REFERENCE, help=argparse.SUPPRESS)
    ap.add_argument("--render-only", action="store_true",
                    help="only rewrite bench.md, bench.json and the figures from the JSON files in OUT")
    ap.add_argument("--from-json", type=pathlib.Path, metavar="DIR", default=None,
                    help="the same as --render-only --out DIR")
    return ap


def invocation(argv=None):
    """This script's command line as recorded: the BENCH_* variables it read, then its arguments."""
    env = [f"{k}={shlex.quote(os.environ[k])}"
           for k in ("BENCH_PROFILE", "BENCH_DEVICE", "BENCH_MEM_LIMIT", "BENCH_OUT") if os.environ.get(k)]
    args = sys.argv[1:] if argv is None else list(argv)
    return " ".join(env + ["python python/bench/run_bench.py"] + [shlex.quote(x) for x in args])


def main(argv=None):
    ap = parser()
    a = ap.parse_args(argv)
    if a.from_json is not None:
        a.render_only, a.out = True, a.from_json
    if a.profile not in PROFILES:  # from $BENCH_PROFILE (argparse checks choices on the command line only)
        ap.error(f"profile {a.profile!r} is not one of {', '.join(sorted(PROFILES))}")
    if a.device is not None and not re.fullmatch(r"cpu|cuda(:[0-9]+)?", a.device):
        ap.error(f"--device {a.device!r}: expected cpu, cuda or cuda:N")
    try:
        settings = settings_for(a.profile, a.device, a.mem_limit, a.max_batch_cap, a.rounds)
    except ValueError as e:
        ap.error(f"--mem-limit {e}")
    if a.max_batch_cap is not None and a.max_batch_cap < 1:
        ap.error("--max-batch-cap must be at least 1")
    if a.rounds is not None and a.rounds < 1:
        ap.error("--rounds must be at least 1")
    try:
        only = re.compile(a.only) if a.only else None
    except re.error as e:
        ap.error(f"--only: {e}")
    out = a.out.resolve()
    if a.render_only:
        if not out.is_dir():
            print(f"run_bench: error: {out} is not a folder", file=sys.stderr)
            return 2
        print(render(settings, out), end="")
        return 0

    out.mkdir(parents=True, exist_ok=True)
    write_configs(settings, out)
    dpft = a.dpft.resolve() if a.dpft else DPFT
    if not (a.no_build or a.dpft):
        print("[build] cargo build --release -p harness", flush=True)
        r = subprocess.run(["cargo", "build", "--release", "-p", "harness"], cwd=ROOT)
        if r.returncode != 0:
            print("run_bench: error: cargo build --release -p harness failed", file=sys.stderr)
            return 1
    jobs = [j for j in plan(settings, out)
            if not (a.skip_timing and j["kind"] == "timing") and not (a.skip_max_batch and j["kind"] == "max_batch")
            and (only is None or only.search(j["stem"]))]
    runner = {"profile": a.profile, "invocation": invocation(argv), "host": host_info()}
    failures = []
    # Timing runs round by round (every run once per round), then the max-batch searches.
    rounds = settings["timing"].get("rounds", 1)
    timing = [j for j in jobs if j["kind"] == "timing"]
    order = [(r, j) for r in range(rounds) for j in timing] + [(0, j) for j in jobs if j["kind"] != "timing"]
    done = {}
    for i, (r, job) in enumerate(order, 1):
        if job["kind"] == "timing":
            t = settings["timing"]
            what = f"timing     {job['label']}: {model_label(job['model'])}, batch {t['batch_size']} x {t['seq_len']}"
            what += f", round {r + 1} of {rounds}" if rounds > 1 else ""
            records = done.setdefault(job["stem"], [])
            if records and not ok(records[-1]):
                print(f"[{i}/{len(order)}] {what}: skipped (an earlier round failed)", flush=True)
                continue
        else:
            m = settings["max_batch"]
            what = (f"max batch  {job['label']}: {model_label(job['model'])}, {m['seq_len']} tokens, within "
                    f"{human_bytes(m['mem_limit_bytes'])}, at most {m['cap']}")
        print(f"[{i}/{len(order)}] {what} ({settings['device']})", flush=True)
        record = execute(job, settings, out, dpft, a.reference, runner, write=job["kind"] != "timing")
        print("      " + summary_line(record), flush=True)
        if job["kind"] == "timing":
            done[job["stem"]].append(record)
            write_json(job["path"], combine_rounds(done[job["stem"]]))
        if "error" in record:
            failures.append(job["stem"])
    md = render(settings, out)
    print()
    print(md, end="")
    print(f"\nwrote {out / 'bench.md'}, {out / 'bench.json'} and {len(jobs)} run files under {out}", flush=True)
    if failures:
        print(f"run_bench: {len(failures)} of {len(jobs)} runs failed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
