"""Checks of python/bench/run_bench.py (`make bench`) without running a real benchmark.

Run: python -m pytest -q python/tests/test_run_bench.py   (a few seconds; no GPU, no data, no dpft build)

- Rendering: hand-chosen results (GPT-2, batch 8 x 128: dpft nonprivate 1.0 s and 2 GiB, bk 1.1 s and 2.1 GiB, ...)
  written where the script would write them; bench.md must hold the exact table rows, ratios to dpft nonprivate
  (3 decimals) and PASS / MISS of the three targets (bk time / nonprivate <= 1.10, bk memory / nonprivate <= 1.10,
  Opacus ghost / dpft bk untied >= 1.6), NOT RUN and RUN FAILED where a run is absent or failed; the max-batch rows;
  timing.png, max_batch.png (PNG signature) and max_batch.svg (an XML <svg> document) written; bench.json readable.
- The max-batch search (the same as crates/harness/src/bench/max_batch.rs): with a synthetic peak a + b * batch
  it finds exactly the largest batch in 0..cap whose peak is within the limit (oracle: the closed form
  floor((limit - a) / b), clamped to [0, cap]), never tries a size twice, and takes at most 2 log2(cap) + 2 trials.
- One candidate (trial): tiny Python children that print a report, exceed the limit in their report, die with an
  out-of-memory message (does not fit), fail otherwise (the search stops with the child's error). The watchdog: a
  child that grows a buffer by 10 MB every 10 ms towards 300 MB under a 100 MB limit is killed within seconds
  (it would otherwise sleep 60 s) and counts as "does not fit", at a resident size between 100 and 300 MB.
- Rounds: a run's record is its median round (peak memory: the median over rounds), a failed round is the run's
  record, and each target is the median of the ratios within a round (hand-computed); main with --rounds 2 runs
  the timing runs round-robin and skips later rounds of a run that failed.
- The whole script (main) on fake programs: a fake dpft and a fake bench_reference.py that print plausible JSON
  (the fake dpft's naive timing run fails): every run file written, the failure recorded with "error", exit
  status 1, the allocator variables in every child's environment, a file of another run kept, --render-only
  rebuilding bench.md from the files alone.
"""

import importlib.util
import json
import math
import pathlib
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "python" / "bench" / "run_bench.py"
_spec = importlib.util.spec_from_file_location("run_bench", SCRIPT)
rb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rb)

GIB = 2**30
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def timing_record(side, mode, median, peak_gib, tied=True, batch=8):
    return {"impl": "dpft" if side == "dpft" else ("pytorch" if mode == "nonprivate" else "opacus"), "mode": mode,
            "model": "gpt2", "batch_size": batch, "seq_len": 128, "median_step_s": median,
            "examples_per_s": batch / median, "peak_mem_bytes": int(peak_gib * GIB),
            "peak_mem_kind": "process resident-set high-water mark (VmHWM)", "step_times_s": [median] * 3,
            "steps": 3, "warmup": 1, "device": "cpu", "threads": 2, "parameters": 124439808, "lm_head_tied": tied,
            **({"version": "0.1.0"} if side == "dpft" else
               {"versions": {"torch": "2.11.0", "transformers": "5.0", "opacus": "1.6.0"}}),
            "runner": {"side": side, "invocation": "python python/bench/run_bench.py",
                       "env": {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "8589934592",
                               "OMP_NUM_THREADS": None},
                       "host": {"cpu_count": 2, "cpu_model": "Test CPU", "mem_total_bytes": 16 * GIB},
                       "started": "2026-01-01T00:00:00+00:00", "finished": "2026-01-01T00:01:00+00:00"}}


# (median s, peak GiB, lm_head tied) per timing run.
PASSING = {
    ("dpft", "nonprivate", False): (1.0, 2.0, True),
    ("dpft", "bk", False): (1.1, 2.1, True),
    ("dpft", "ghost", False): (1.6, 2.05, True),
    ("dpft", "naive", False): (2.0, 4.0, True),
    ("dpft", "bk", True): (1.2, 2.2, False),
    ("python", "nonprivate", False): (0.9, 2.5, True),
    ("python", "opacus-ghost", False): (2.0, 3.0, False),
    ("python", "opacus-hooks", False): (4.0, 6.0, True),
}


def write_timing(out, settings, values, failed=()):
    for job in rb.plan(settings, out):
        key = (job["side"], job["mode"], job["untie"])
        if job["kind"] != "timing" or key not in values:
            continue
        if key in failed:
            rb.write_json(job["path"], {"impl": job["side"], "mode": job["mode"], "model": "gpt2",
                                        "error": "exit status 1: Traceback ...\nRuntimeError: something broke"})
        else:
            median, peak, tied = values[key]
            rb.write_json(job["path"], timing_record(job["side"], job["mode"], median, peak, tied))


def write_max_batch(out, settings):
    """Max batch 2**k + j for method j on model k; the dpft ghost search of the first model failed."""
    written = {}
    for job in rb.plan(settings, out):
        if job["kind"] != "max_batch":
            continue
        k = [rb.model_label(m) for m in settings["max_batch"]["models"]].index(rb.model_label(job["model"]))
        j = [rb.run_label(*m) for m in rb.MAX_BATCH_METHODS].index(job["label"])
        if k == 0 and (job["side"], job["mode"]) == ("dpft", "ghost"):
            rb.write_json(job["path"], {"impl": "dpft", "mode": "ghost", "error": "the trial with batch size 4 failed"})
            continue
        best = 2 ** (k + 3) + j
        rb.write_json(job["path"], {"impl": job["side"], "mode": job["mode"], "max_batch_size": best,
                                    "max_batch_cap": 256, "median_step_s": best / 10.0, "examples_per_s": 10.0,
                                    "peak_mem_bytes": int(1.5 * GIB), "device": "cpu", "trials": [{}] * (k + 5)})
        written[(k, job["label"])] = best
    return written


def row(md, first_cell):
    rows = [line for line in md.splitlines() if line.startswith(f"| {first_cell} |")]
    assert len(rows) == 1, (first_cell, rows)
    return rows[0]


def test_render_writes_tables_targets_and_figures(tmp_path):
    settings = rb.settings_for("cpu")
    write_timing(tmp_path, settings, PASSING)
    write_max_batch(tmp_path, settings)
    md = rb.render(settings, tmp_path)
    assert (tmp_path / "bench.md").read_text() == md

    # Timing rows: median, examples/s = 8 / median, GiB, time and memory ratios to dpft nonprivate (1.0 s, 2 GiB).
    assert row(md, "dpft nonprivate") == "| dpft nonprivate | tied | 1.000 | 8.00 | 2.00 | 1.000 | 1.000 |"
    assert row(md, "dpft bk") == "| dpft bk | tied | 1.100 | 7.27 | 2.10 | 1.100 | 1.050 |"
    assert row(md, "dpft naive") == "| dpft naive | tied | 2.000 | 4.00 | 4.00 | 2.000 | 2.000 |"
    assert (row(md, "dpft bk (untied lm_head)")
            == "| dpft bk (untied lm_head) | untied | 1.200 | 6.67 | 2.20 | 1.200 | 1.100 |")
    assert row(md, "PyTorch nonprivate") == "| PyTorch nonprivate | tied | 0.900 | 8.89 | 2.50 | 0.900 | 1.250 |"
    assert (row(md, "Opacus ghost clipping")
            == "| Opacus ghost clipping | untied | 2.000 | 4.00 | 3.00 | 2.000 | 1.500 |")
    assert row(md, "Opacus hooks") == "| Opacus hooks | tied | 4.000 | 2.00 | 6.00 | 4.000 | 3.000 |"

    # Targets: 1.1 <= 1.10, 2.1/2.0 = 1.05 <= 1.10, 2.0/1.2 = 1.667 >= 1.6; PyTorch/dpft nonprivate for context.
    assert (row(md, "dpft bk time / dpft nonprivate time")
            == "| dpft bk time / dpft nonprivate time | 1.100 | ≤ 1.10 | PASS |")
    assert (row(md, "dpft bk peak memory / dpft nonprivate peak memory")
            == "| dpft bk peak memory / dpft nonprivate peak memory | 1.050 | ≤ 1.10 | PASS |")
    assert (row(md, "Opacus ghost clipping time / dpft bk (untied lm_head) time")
            == "| Opacus ghost clipping time / dpft bk (untied lm_head) time | 1.667 | ≥ 1.60 | PASS |")
    assert (row(md, "PyTorch nonprivate time / dpft nonprivate time")
            == "| PyTorch nonprivate time / dpft nonprivate time | 0.900 | (context) | context |")

    # Max batch: one row per model and method; gpt2-2x128 has 7.0M parameters (wte 50257 x 128 + wpe + 2 blocks).
    cfg = rb.model_config(settings["max_batch"]["models"][0])
    assert rb.gpt2_parameters(cfg) == 50257 * 128 + 1024 * 128 + 2 * (12 * 128**2 + 13 * 128) + 2 * 128
    assert rb.gpt2_parameters(rb.BUILTIN["gpt2"]) == 124439808
    assert "| gpt2-2x128 | 7.0M | dpft nonprivate | 8 | 10.00 | 0.800 | 1.50 | 5 |" in md
    assert "| gpt2-4x256 | 16.3M | Opacus hooks | 22 | 10.00 | 2.200 | 1.50 | 6 |" in md
    assert "| gpt2-2x128 | 7.0M | dpft ghost | failed | | | | |" in md
    assert "- dpft-ghost-gpt2-2x128-t128: the trial with batch size 4 failed" in md
    assert "Largest batch within 3.00 GiB" in md
    # Facts from the records.
    assert "2 CPUs (Test CPU), 16.00 GiB memory; device cpu; threads: dpft 2, Python 2" in md
    assert "Versions: dpft 0.1.0; torch 2.11.0, transformers 5.0, opacus 1.6.0" in md
    assert "Command: `python python/bench/run_bench.py`" in md

    png = (tmp_path / "timing.png").read_bytes()
    assert png.startswith(PNG_SIGNATURE) and len(png) > 5000
    assert (tmp_path / "max_batch.png").read_bytes().startswith(PNG_SIGNATURE)
    svg = ET.parse(tmp_path / "max_batch.svg").getroot()
    assert svg.tag.endswith("svg")
    summary = json.loads((tmp_path / "bench.json").read_text())
    assert [t["result"] for t in summary["targets"]] == ["PASS", "PASS", "PASS", "context"]
    assert summary["figures"] == ["timing.png", "max_batch.png", "max_batch.svg"]


def test_targets_miss_not_run_and_failed(tmp_path):
    settings = rb.settings_for("cpu")
    slow = {**PASSING, ("dpft", "bk", False): (1.16, 2.21, True), ("python", "opacus-ghost", False): (1.67, 3.0, False)}
    write_timing(tmp_path, settings, slow)
    rows = rb.targets(rb.collect(settings, tmp_path)["timing"])
    assert [(r["result"], round(r["ratio"], 6)) for r in rows] == [("MISS", 1.16), ("MISS", 1.105), ("MISS", 1.391667),
                                                                   ("context", 0.9)]
    # The bounds themselves pass.
    edge = {**PASSING, ("dpft", "bk", False): (1.10, 2.2, True), ("dpft", "bk", True): (1.25, 2.2, False),
            ("python", "opacus-ghost", False): (2.0, 3.0, False)}
    write_timing(tmp_path, settings, edge)
    md = rb.render(settings, tmp_path)
    assert "| dpft bk time / dpft nonprivate time | 1.100 | ≤ 1.10 | PASS |" in md
    assert "| dpft bk peak memory / dpft nonprivate peak memory | 1.100 | ≤ 1.10 | PASS |" in md
    assert "| Opacus ghost clipping time / dpft bk (untied lm_head) time | 1.600 | ≥ 1.60 | PASS |" in md

    # No dpft bk untied file, a failed dpft nonprivate: NOT RUN / RUN FAILED, and no ratios to a failed base.
    other = tmp_path / "other"
    partial = {k: v for k, v in PASSING.items() if k != ("dpft", "bk", True)}
    write_timing(other, settings, partial, failed={("dpft", "nonprivate", False)})
    md = rb.markdown(settings, rb.collect(settings, other))
    assert row(md, "dpft nonprivate") == "| dpft nonprivate | | failed | | | | |"
    assert row(md, "dpft bk (untied lm_head)") == "| dpft bk (untied lm_head) | | not run | | | | |"
    assert row(md, "dpft bk") == "| dpft bk | tied | 1.100 | 7.27 | 2.10 | — | — |"
    assert "| dpft bk time / dpft nonprivate time | n/a | ≤ 1.10 | RUN FAILED |" in md
    assert "| Opacus ghost clipping time / dpft bk (untied lm_head) time | n/a | ≥ 1.60 | NOT RUN |" in md
    assert "- dpft-nonprivate-gpt2-b8-t128: RuntimeError: something broke" in md
    assert rb.figures(settings, {"timing": [], "max_batch": []}, other) == []


def test_search_finds_the_exact_largest_batch():
    for a, b, limit, cap in [(100, 7, 1000, 256), (0, 1, 0, 64), (50, 10, 55, 64), (5, 1, 10**6, 100),
                             (5, 1, 10**6, 64), (5, 1, 10**6, 1), (3, 2, 200, 1000), (1000, 1, 999, 16),
                             (400, 33, 4000, 4096), (0, 1, 127, 1000), (0, 1, 100, 1000), (0, 1, 13, 1000)]:
        tried = []

        def run_trial(batch):
            tried.append(batch)
            peak = a + b * batch
            return {"batch_size": batch, "fits": peak <= limit, "peak_mem_bytes": peak}

        best, trials = rb.search(cap, run_trial)
        expected = max(0, min(cap, (limit - a) // b)) if limit >= a else 0
        assert best == expected, (a, b, limit, cap, tried)
        assert [t["batch_size"] for t in trials] == tried
        assert len(set(tried)) == len(tried), tried
        assert len(tried) <= 2 * math.log2(max(cap, 2)) + 2, tried
        assert all(1 <= x <= cap for x in tried)
    # As dpft's own test: exact for 0, 1, 2, 3, 5, 8, 13, 64, 100, 127 with cap 1000, and the cap itself.
    for largest in (0, 1, 2, 3, 5, 8, 13, 64, 100, 127):
        assert rb.search(1000, lambda x: {"fits": x <= largest})[0] == largest
    assert rb.search(100, lambda x: {"fits": True})[0] == 100
    assert [t["b"] for t in rb.search(100, lambda x: {"fits": True, "b": x})[1]] == [1, 2, 4, 8, 16, 32, 64, 100]

    def broken(batch):
        if batch >= 4:
            raise rb.TrialFailed("broken")
        return {"fits": True}

    with pytest.raises(rb.TrialFailed):
        rb.search(100, broken)


def test_byte_counts_as_dpft_reads_them():
    assert rb.parse_bytes("1073741824") == 1 << 30
    assert rb.parse_bytes("8G") == rb.parse_bytes("8GiB") == 8 << 30
    assert rb.parse_bytes("512mb") == 512 << 20
    assert rb.parse_bytes("1.5K") == 1536
    for bad, message in [("8X", "unknown unit"), ("lots", "not a byte count"), ("0", "at least one byte")]:
        with pytest.raises(ValueError, match=message):
            rb.parse_bytes(bad)
    assert rb.human_bytes(3 << 29) == "1.50 GiB" and rb.human_bytes(12) == "12 B"


def child(code):
    """A command that runs `code` in a fresh interpreter (the trial appends --batch-size N to its argv)."""
    return [sys.executable, "-c", textwrap.dedent(code)]


REPORTER = """
    import json, sys
    b = int(sys.argv[sys.argv.index("--batch-size") + 1])
    peak = None if b == 99 else b * 2**30
    print(json.dumps({"impl": "opacus", "mode": "opacus-ghost", "model": "m", "seq_len": 16, "batch_size": b,
                      "median_step_s": 0.5 * b, "examples_per_s": 2.0, "peak_mem_bytes": peak,
                      "peak_mem_kind": "VmHWM", "device": "cpu", "threads": 1, "parameters": 5,
                      "lm_head_tied": False, "versions": {"torch": "x"}}))
"""


def test_trial_outcomes():
    fits = rb.trial(child(REPORTER), 3, 3 * 2**30)
    assert {k: fits[k] for k in ("batch_size", "fits", "peak_mem_bytes", "median_step_s", "reason")} == {
        "batch_size": 3, "fits": True, "peak_mem_bytes": 3 * 2**30, "median_step_s": 1.5, "reason": None}
    over = rb.trial(child(REPORTER), 4, 3 * 2**30)
    assert not over["fits"] and over["reason"] == "peak 4.00 GiB above the limit"
    oom = rb.trial(child("import sys; sys.exit('RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB')"), 8,
                   10**9)
    assert oom == {"batch_size": 8, "fits": False, "peak_mem_bytes": None, "median_step_s": None,
                   "reason": "ran out of memory"}
    with pytest.raises(rb.TrialFailed, match="batch size 2 failed .*Opacus refused the model"):
        rb.trial(child("import sys; sys.exit('bench_reference: error: Opacus refused the model')"), 2, 10**9)
    with pytest.raises(rb.TrialFailed, match="could not measure its peak memory"):
        rb.trial(child(REPORTER), 99, 10**9)
    with pytest.raises(rb.TrialFailed, match="reading the report"):
        rb.trial(child("print('no json here')"), 1, 10**9)


def test_watchdog_stops_a_growing_child():
    grow = child("""
        import time
        chunks = []
        for _ in range(30):
            chunks.append(b"x" * 10_000_000)  # written, so resident
            time.sleep(0.01)
        time.sleep(60)
        print("{}")
    """)
    t0 = time.monotonic()
    t = rb.trial(grow, 1, 100 * 10**6, watch_rss=True)
    elapsed = time.monotonic() - t0
    assert elapsed < 15, elapsed
    assert not t["fits"] and t["median_step_s"] is None
    assert 100 * 10**6 < t["peak_mem_bytes"] < 300 * 10**6, t
    assert t["reason"].startswith("stopped at ") and t["reason"].endswith("resident, above the limit")


def test_python_max_batch_reports_like_dpft():
    # Reported peak b GiB (the watchdog on, far from triggering): within 7.5 GiB the largest batch is 7 (cap 64).
    lines = []
    r = rb.python_max_batch(child(REPORTER), 15 * 2**29, 64, "cpu", log=lines.append)
    assert r["max_batch_size"] == r["batch_size"] == 7
    assert [t["batch_size"] for t in r["trials"]] == [1, 2, 4, 8, 6, 7]
    assert [t["fits"] for t in r["trials"]] == [True, True, True, False, True, True]
    assert r["median_step_s"] == 3.5 and r["examples_per_s"] == 2.0 and r["peak_mem_bytes"] == 7 * 2**30
    assert r["mem_limit_bytes"] == 15 * 2**29 and r["max_batch_cap"] == 64 and r["lm_head_tied"] is False
    assert set(r["trials"][0]) == {"batch_size", "fits", "peak_mem_bytes", "median_step_s", "reason"}
    assert len(lines) == 6 and "batch     8: does not fit (peak 8.00 GiB above the limit)" in lines


FAKE_DPFT = """
import json, os, sys
args = sys.argv[1:]
opt = lambda name: args[args.index(name) + 1] if name in args else None
assert args[0] == "bench" and opt("--device") == "cpu" and "--json" in args, args
mode, env = opt("--mode"), {k: os.environ.get(k) for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")}
if "--max-batch" in args:
    print(json.dumps({"impl": "dpft", "mode": mode, "model": opt("--model"), "seq_len": int(opt("--seq-len")),
                      "mem_limit_bytes": int(opt("--mem-limit")), "max_batch_size": 3,
                      "max_batch_cap": int(opt("--max-batch-cap")), "batch_size": 3, "median_step_s": 0.3,
                      "examples_per_s": 10.0, "peak_mem_bytes": 2**30, "device": "cpu", "env": env,
                      "trials": [{"batch_size": 1, "fits": True}]}))
    sys.exit(0)
if mode == "naive":
    sys.exit("Error: the naive step broke")
median = {"nonprivate": 1.0, "bk": 1.1, "ghost": 1.5}[mode] + (0.1 if "--untie-lm-head" in args else 0)
b = int(opt("--batch-size"))
print(json.dumps({"impl": "dpft", "version": "9.9.9", "mode": mode, "model": opt("--model"), "batch_size": b,
                  "seq_len": int(opt("--seq-len")), "median_step_s": median, "examples_per_s": b / median,
                  "peak_mem_bytes": 2**31, "peak_mem_kind": "VmHWM", "step_times_s": [median],
                  "steps": int(opt("--steps")), "warmup": int(opt("--warmup")), "device": "cpu", "threads": 2,
                  "parameters": 1, "lm_head_tied": "--untie-lm-head" not in args, "env": env}))
"""

FAKE_REFERENCE = """
import json, sys
args = sys.argv[1:]
opt = lambda name: args[args.index(name) + 1] if name in args else None
mode, b = opt("--mode"), int(opt("--batch-size"))
median = {"nonprivate": 0.9, "opacus-ghost": 1.8, "opacus-hooks": 2.5}[mode]
print(json.dumps({"impl": "opacus", "mode": mode, "model": opt("--model"), "batch_size": b,
                  "seq_len": int(opt("--seq-len")), "median_step_s": median, "examples_per_s": b / median,
                  "peak_mem_bytes": 100 * 2**20 + b * 600 * 2**20, "peak_mem_kind": "VmHWM", "step_times_s": [median],
                  "steps": int(opt("--steps")), "warmup": int(opt("--warmup")), "device": "cpu", "threads": 2,
                  "parameters": 1, "lm_head_tied": mode != "opacus-ghost", "versions": {"torch": "t", "opacus": "o"}}))
"""


def fake_programs(folder):
    """The fake dpft (executable) and the fake bench_reference.py, written into `folder`."""
    dpft = folder / "fake-dpft"
    dpft.write_text(f"#!{sys.executable}\n{FAKE_DPFT}")
    dpft.chmod(0o755)
    reference = folder / "fake_reference.py"
    reference.write_text(FAKE_REFERENCE)
    return dpft, reference


def test_main_on_fake_programs(tmp_path, capsys):
    dpft, reference = fake_programs(tmp_path)
    out = tmp_path / "out"
    kept = out / "timing" / "dpft-bk-gpt2-b64-t512.json"  # a file of another run
    rb.write_json(kept, {"impl": "dpft"})

    rc = rb.main(["--profile", "smoke", "--out", str(out), "--dpft", str(dpft), "--reference", str(reference)])
    assert rc == 1
    stdout = capsys.readouterr().out
    assert "[1/15] timing     dpft nonprivate: gpt2-2x32-tiny, batch 2 x 16 (cpu)" in stdout
    assert "[15/15] max batch  Opacus hooks: gpt2-2x32-tiny, 16 tokens, within 2.00 GiB, at most 4 (cpu)" in stdout
    assert "FAILED: exit status 1: Error: the naive step broke" in stdout

    assert kept.exists()
    assert (out / "configs" / "gpt2-2x32-tiny.json").is_file()
    timing = {p.stem: json.loads(p.read_text()) for p in (out / "timing").glob("*-b2-t16.json")}
    assert set(timing) == {"dpft-nonprivate-gpt2-2x32-tiny-b2-t16", "dpft-bk-gpt2-2x32-tiny-b2-t16",
                           "dpft-ghost-gpt2-2x32-tiny-b2-t16", "dpft-naive-gpt2-2x32-tiny-b2-t16",
                           "dpft-bk-untied-gpt2-2x32-tiny-b2-t16", "python-nonprivate-gpt2-2x32-tiny-b2-t16",
                           "python-opacus-ghost-gpt2-2x32-tiny-b2-t16", "python-opacus-hooks-gpt2-2x32-tiny-b2-t16"}
    assert "the naive step broke" in timing["dpft-naive-gpt2-2x32-tiny-b2-t16"]["error"]
    bk = timing["dpft-bk-gpt2-2x32-tiny-b2-t16"]
    assert bk["env"] == {"MALLOC_MMAP_THRESHOLD_": str(4 << 30), "MALLOC_TRIM_THRESHOLD_": str(8 << 30)}
    assert bk["runner"]["argv"][1:] == ["bench", "--model", rb.model_arg(rb.SMOKE_MODEL, out), "--batch-size", "2",
                                        "--seq-len", "16", "--mode", "bk", "--steps", "1", "--warmup", "1",
                                        "--device", "cpu", "--json"]
    assert timing["dpft-bk-untied-gpt2-2x32-tiny-b2-t16"]["runner"]["argv"][-1] == "--untie-lm-head"
    assert timing["python-opacus-ghost-gpt2-2x32-tiny-b2-t16"]["runner"]["argv"][0] == "python"

    ghost = json.loads((out / "max_batch" / "python-opacus-ghost-gpt2-2x32-tiny-t16.json").read_text())
    # peak 100 MiB + 600 MiB b within 2 GiB: 3 (trials 1, 2, 4, 3).
    assert ghost["max_batch_size"] == 3 and [t["batch_size"] for t in ghost["trials"]] == [1, 2, 4, 3]
    dpft_mb = json.loads((out / "max_batch" / "dpft-bk-gpt2-2x32-tiny-t16.json").read_text())
    assert dpft_mb["mem_limit_bytes"] == 2 << 30 and dpft_mb["max_batch_cap"] == 4
    assert "--max-batch" in dpft_mb["runner"]["argv"] and dpft_mb["env"]["MALLOC_MMAP_THRESHOLD_"] == str(4 << 30)

    md = (out / "bench.md").read_text()
    assert "| dpft bk time / dpft nonprivate time | 1.100 | ≤ 1.10 | PASS |" in md
    assert "| Opacus ghost clipping time / dpft bk (untied lm_head) time | 1.500 | ≥ 1.60 | MISS |" in md
    assert "| dpft naive | | failed | | | | |" in md
    assert "| gpt2-2x32-tiny | 31.6k | Opacus ghost clipping | 3 | 1.67 | 1.800 | 1.86 | 4 |" in md
    assert "Command: `python python/bench/run_bench.py --profile smoke --out" in md

    (out / "bench.md").unlink()
    assert rb.main(["--render-only", "--profile", "smoke", "--out", str(out)]) == 0
    assert (out / "bench.md").read_text() == md
    assert capsys.readouterr().out == md


def test_rounds_report_the_median_round_and_ratios_within_rounds(tmp_path):
    # Round 2 is slow for every run (a machine whose speed drifts): the ratio within each round is what counts.
    np_rounds = [timing_record("dpft", "nonprivate", t, p) for t, p in [(1.0, 2.0), (2.0, 2.0), (1.2, 2.1)]]
    bk_rounds = [timing_record("dpft", "bk", t, p) for t, p in [(1.12, 2.2), (2.1, 2.1), (1.25, 2.3)]]
    for r, started in zip(np_rounds + bk_rounds, ["a", "b", "c"] * 2):
        r["runner"] = {**r["runner"], "started": started}
    np_, bk = rb.combine_rounds(np_rounds), rb.combine_rounds(bk_rounds)
    assert np_["median_step_s"] == 1.2 and np_["runner"]["started"] == "c"  # the median round's own record
    assert np_["peak_mem_bytes"] == int(2.0 * GIB)  # the median over rounds
    assert [x["median_step_s"] for x in np_["rounds"]] == [1.0, 2.0, 1.2]
    assert [x["started"] for x in bk["rounds"]] == ["a", "b", "c"]
    # The even case takes the lower middle; a failed round makes the run's record that failure.
    assert rb.combine_rounds(np_rounds[:2])["median_step_s"] == 1.0
    failed = {"impl": "dpft", "mode": "bk", "model": "gpt2", "error": "exit status 1: boom"}
    assert rb.combine_rounds([bk_rounds[0], failed]) is failed

    settings = rb.settings_for("cpu")
    write_timing(tmp_path, settings, PASSING)
    for job in rb.plan(settings, tmp_path):
        key = (job["side"], job["mode"], job["untie"])
        if job["kind"] != "timing":
            continue
        if key == rb.NONPRIVATE:
            rb.write_json(job["path"], np_)
        elif key == rb.BK:
            rb.write_json(job["path"], bk)
    rows = rb.targets(rb.collect(settings, tmp_path)["timing"])
    want = sorted([1.12, 2.1 / 2.0, 1.25 / 1.2])
    assert rows[0]["per_round"] == pytest.approx([1.12, 1.05, 1.25 / 1.2], abs=1e-12)
    assert rows[0]["ratio"] == pytest.approx(want[1], abs=1e-12) and rows[0]["result"] == "PASS"
    # Memory: per round 1.1, 1.05, 2.3 / 2.1 = 1.095.
    assert rows[1]["ratio"] == pytest.approx(2.3 / 2.1, abs=1e-9) and rows[1]["result"] == "PASS"
    md = rb.render(settings, tmp_path)
    assert "| dpft bk time / dpft nonprivate time | 1.050 | ≤ 1.10 | PASS |" in md
    assert "- dpft bk time / dpft nonprivate time: 1.120, 1.050, 1.042" in md
    assert "every run 3 times, in rounds" in md
    # A run without rounds (one round) against one with three: the one round both have.
    assert rows[2]["per_round"] == pytest.approx([2.0 / 1.2]) and len(rows[3]["per_round"]) == 1


def test_main_runs_timing_in_rounds(tmp_path, capsys):
    dpft, reference = fake_programs(tmp_path)
    out = tmp_path / "out"
    rc = rb.main(["--profile", "smoke", "--rounds", "2", "--skip-max-batch", "--out", str(out), "--dpft", str(dpft),
                  "--reference", str(reference)])
    assert rc == 1  # the fake naive run fails
    stdout = capsys.readouterr().out
    assert "[1/16] timing     dpft nonprivate: gpt2-2x32-tiny, batch 2 x 16, round 1 of 2 (cpu)" in stdout
    assert "[9/16] timing     dpft nonprivate: gpt2-2x32-tiny, batch 2 x 16, round 2 of 2 (cpu)" in stdout
    assert "[12/16] timing     dpft naive: gpt2-2x32-tiny, batch 2 x 16, round 2 of 2: skipped (an earlier round failed)" in stdout
    bk = json.loads((out / "timing" / "dpft-bk-gpt2-2x32-tiny-b2-t16.json").read_text())
    assert len(bk["rounds"]) == 2 and all(r["median_step_s"] == bk["median_step_s"] for r in bk["rounds"])
    naive = json.loads((out / "timing" / "dpft-naive-gpt2-2x32-tiny-b2-t16.json").read_text())
    assert "the naive step broke" in naive["error"] and "rounds" not in naive
    assert "| dpft bk time / dpft nonprivate time | 1.100 | ≤ 1.10 | PASS |" in (out / "bench.md").read_text()


def test_bad_arguments(tmp_path, monkeypatch, capsys):
    for args in (["--profile", "huge"], ["--mem-limit", "8X"], ["--device", "tpu"], ["--max-batch-cap", "0"]):
        with pytest.raises(SystemExit) as e:
            rb.main(args + ["--render-only", "--out", str(tmp_path)])
        assert e.value.code == 2, args
    monkeypatch.setenv("BENCH_PROFILE", "nope")
    with pytest.raises(SystemExit):
        rb.main(["--render-only", "--out", str(tmp_path)])
    assert "profile 'nope' is not one of" in capsys.readouterr().err
    assert rb.main(["--render-only", "--profile", "cpu", "--out", str(tmp_path / "missing")]) == 2
