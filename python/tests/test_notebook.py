"""Runs notebooks/figures.ipynb on synthetic run stores and checks what it builds.

The notebook is run as Jupyter would run it from notebooks/, without Jupyter: its code cells, joined in order, are
executed in one namespace with matplotlib's Agg backend, DPFT_RESULTS pointing at a results tree written here and
DPFT_FIGURES at a folder for the PNGs. The tree has the shape `dpft sweep` and `dpft train` give it
(crates/harness/src/sweep/runner.rs, crates/harness/src/train/mod.rs): a sweep folder with sweep.json, and per run
config.yaml, summary.json (metrics as e2e-metrics prints them, fractions in [0, 1]) and metrics.jsonl.

- Table 2's sweep: full and LoRA on E2E at ε 3, ε 8 and non-private, seeds 0 and 1 (12 runs), one more run folder
  with config.yaml and metrics.jsonl but no summary.json (still running), and a sweep.json entry of a run that
  failed before its folder was made. Figures (a) and (b) are written; (c) and (d) are skipped with a note.
- The same sweep one level deeper, beside a batch size × learning rate sweep (full, ε 3, worse than Table 2's
  setting, so the table keeps Table 2's), a model-size sweep (full, ε 3 and non-private, two more models) and SST-2
  runs (accuracy): all four figures, and the table of both tasks.

Oracle: the means and sample standard deviations over seeds of the numbers written, by Python's statistics module,
×100 for BLEU, METEOR, ROUGE-L and accuracy; tolerance 1e-9 absolute (the notebook sums in another order).
"""

import hashlib
import json
import math
import pathlib
import statistics

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "figures.ipynb"
TOL = 1e-9

# E2E BLEU per (method, target ε or None for non-private) and seed, on e2e-metrics' scale.
BLEU = {
    ("full", 3): (0.612, 0.618),
    ("full", 8): (0.630, 0.635),
    ("full", None): (0.693, 0.697),
    ("lora", 3): (0.580, 0.586),
    ("lora", 8): (0.631, 0.637),
    ("lora", None): (0.696, 0.698),
}
STEPS = 30


def e2e_metrics(bleu, method, epsilon):
    """The five E2E metrics and the eval loss, derived from BLEU; METEOR is null for LoRA non-private (as when
    its jar is not run), which the table must show as missing."""
    meteor = None if (method, epsilon) == ("lora", None) else round(0.30 + bleu / 4, 6)
    return {
        "BLEU": bleu,
        "NIST": round(4 + 5 * bleu, 6),
        "METEOR": meteor,
        "ROUGE_L": round(0.2 + bleu * 0.7, 6),
        "CIDEr": round(3 * bleu, 6),
        "loss": round(3.2 - 2 * bleu, 6),
    }


def privacy_section(epsilon):
    if epsilon is None:
        return "none"
    return {
        "target_epsilon": epsilon,
        "delta": 1.0e-4,
        "max_grad_norm": 0.1,
        "clipping_mode": "bk",
        "accountant": "rdp",
        "sampler": "poisson",
        "noise_seed": "secure",
    }


def run_config(task, method, epsilon, seed, model="results/pretrain-mini/model", batch_size=128, lr=2e-3):
    """config.yaml as `dpft train` saves it (every section filled in)."""
    return {
        "model": {"path": model, "config": None, "tokenizer": None, "dtype": "f32", "untie_lm_head": False},
        "task": {"name": task, "max_length": 100, "max_train_examples": 4000, "max_eval_examples": 100,
                 "eval_split": "test", "train_split": "train", "head": "prompt"},
        "method": {"name": method} | ({"rank": 4, "alpha": 8} if method == "lora" else {}),
        "optimization": {"optimizer": "adam", "learning_rate": lr, "batch_size": batch_size,
                         "physical_batch_size": 64, "epochs": None, "steps": STEPS, "warmup_steps": 0,
                         "schedule": "constant", "weight_decay": 0.0, "seed": seed, "eval_every": 0,
                         "checkpoint_every": 10},
        "privacy": privacy_section(epsilon),
        "generation": {"num_beams": 5, "max_new_tokens": 60, "min_new_tokens": 5, "batch_size": 8, "meteor": True},
    }


def run_id(overrides):
    """`<slug>-<8 hex digits>` as crates/harness/src/sweep/spec.rs names run folders."""
    compact = {k: json.dumps(v, separators=(",", ":")) for k, v in overrides.items()}
    digest = hashlib.sha256("".join(f"{k}={compact[k]}\n" for k in sorted(compact)).encode()).hexdigest()[:8]
    parts = []
    for k, v in overrides.items():
        text = v.rsplit("/", 1)[-1] if isinstance(v, str) else compact[k]  # a path gives its last component
        parts.append("-".join("".join(c if c.isalnum() or c == "." else " " for c in text).split()))
    return f"{'_'.join(p for p in parts if p)[:48]}-{digest}"


def write_run(folder, config, metrics, trainable):
    """A finished run folder: config.yaml, metrics.jsonl (training curve, final eval line), summary.json."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    private = config["privacy"] != "none"
    epsilon = config["privacy"]["target_epsilon"] * 0.999 if private else None
    seed, lr = config["optimization"]["seed"], config["optimization"]["learning_rate"]
    lines = []
    for step in range(1, STEPS + 1):
        noise = 1 / config["privacy"]["target_epsilon"] if private else 0  # more noise, higher loss
        line = {"examples": 128, "loss": 1.5 + 2.5 * math.exp(-step / 8) + 0.05 * seed + noise,
                "lr": lr, "step": step, "step_s": 1.9}
        if private:
            line["epsilon_rdp"] = epsilon * step / STEPS
            line["clipping"] = {"examples": 128, "norm_mean": 0.8, "norm_median": 0.7, "norm_max": 2.1,
                                "clipped_fraction": 1.0, "noise_to_signal": 0.4}
        lines.append(line)
    lines.append({"step": STEPS, "eval": metrics})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    summary = {
        "status": "finished",
        "stop_reason": None,
        "steps": STEPS,
        "planned_steps": STEPS,
        "sample_rate": 0.032,
        "sampler": "poisson",
        "dataset_size": 4000,
        "expected_batch_size": 128.0,
        "noise_multiplier": 1.2 if private else None,
        "delta": 1e-4 if private else None,
        "epsilon": {"rdp": epsilon, "prv": {"upper": epsilon, "lower": epsilon * 0.9, "estimate": epsilon * 0.95},
                    "gdp_approximation": epsilon * 0.8} if private else None,
        "budget_accountant": "rdp" if private else None,
        "trainable_parameters": trainable,
        "gradient_parameters": trainable,
        "metrics": metrics,
        "wall_time_s": 60.0,
        "peak_memory_bytes": 1 << 30,
        "peak_memory_kind": "process resident-set high-water mark (VmHWM)",
    }
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))


def write_sweep(folder, name, entries):
    """sweep.json; `entries` are (id, overrides, status, metrics or None, error or None)."""
    folder.mkdir(parents=True, exist_ok=True)
    runs = [
        {"id": i, "label": ", ".join(f"{k}={json.dumps(v)}" for k, v in o.items()), "overrides": o,
         "status": status, "error": error, "wall_time_s": 60.0, "steps": STEPS if metrics else None,
         "epsilon_rdp": None, "metrics": metrics or {}}
        for i, o, status, metrics, error in entries
    ]
    sweep = {"name": name, "profile": "mini", "sweep": f"experiments/{name}.yaml", "runs": runs}
    (folder / "sweep.json").write_text(json.dumps(sweep, indent=2))


def table2_sweep(folder):
    """Table 2's sweep: 2 methods × 3 ε × 2 seeds, a running run and a run that failed before starting."""
    entries = []
    for (method, epsilon), seeds in BLEU.items():
        for seed, bleu in enumerate(seeds):
            o = {"method.name": method, "privacy": "none" if epsilon is None else {"target_epsilon": epsilon},
                 "optimization.seed": seed}
            metrics = e2e_metrics(bleu, method, epsilon)
            trainable = 11_200_000 if method == "full" else 147_456
            write_run(folder / run_id(o), run_config("e2e", method, epsilon, seed), metrics, trainable)
            entries.append((run_id(o), o, "finished", metrics, None))
    running = {"method.name": "prefix", "privacy": {"target_epsilon": 3}, "optimization.seed": 0}
    (folder / run_id(running)).mkdir()
    (folder / run_id(running) / "config.yaml").write_text(yaml.safe_dump(run_config("e2e", "prefix", 3, 0)))
    (folder / run_id(running) / "metrics.jsonl").write_text('{"step": 1, "loss": 4.0}\n{"step": 2, "lo')
    entries.append((run_id(running), running, "running", None, None))
    failed = {"method.name": "rgp", "privacy": {"target_epsilon": 3}, "optimization.seed": 0}
    entries.append((run_id(failed), failed, "failed", None, "error: method.rank must be at least 1"))
    write_sweep(folder, "table2", entries)
    # What `dpft sweep` leaves beside the runs, which is not a run.
    (folder / "configs").mkdir()
    (folder / "configs" / f"{run_id(failed)}.yaml").write_text(yaml.safe_dump(run_config("e2e", "rgp", 3, 0)))
    return {run_id(running): "running", run_id(failed): "failed"}


# Extra sweeps of the second tree: (batch size, learning rate) -> BLEU of full at ε 3, seed 0; model -> (trainable
# parameters, BLEU at ε 3 per seed, BLEU non-private per seed); SST-2 accuracy per (ε, seed).
HPARAMS = {(256, 1e-3): 0.55, (256, 5e-4): 0.52, (512, 1e-3): 0.58, (512, 5e-4): 0.50}
SIZES = {"gpt2-mini-small": (3_100_000, (0.570, 0.574), (0.660, 0.664)),
         "gpt2-mini-large": (42_000_000, (0.641, 0.645), (0.712, 0.716))}
SST2 = {3: (0.912, 0.918), None: (0.941, 0.945)}


def extra_sweeps(results):
    entries = []
    for (batch_size, lr), bleu in HPARAMS.items():
        o = {"optimization.batch_size": batch_size, "optimization.learning_rate": lr}
        config = run_config("e2e", "full", 3, 0, batch_size=batch_size, lr=lr)
        write_run(results / "hparams" / run_id(o), config, e2e_metrics(bleu, "full", 3), 11_200_000)
        entries.append((run_id(o), o, "finished", None, None))
    write_sweep(results / "hparams", "hparams", entries)
    entries = []
    for model, (trainable, private, nonprivate) in SIZES.items():
        for epsilon, seeds in ((3, private), (None, nonprivate)):
            for seed, bleu in enumerate(seeds):
                o = {"model.path": f"${{MODEL_DIR}}/{model}",
                     "privacy": "none" if epsilon is None else {"target_epsilon": epsilon}, "optimization.seed": seed}
                config = run_config("e2e", "full", epsilon, seed, model=f"/models/{model}")
                write_run(results / "sizes" / run_id(o), config, e2e_metrics(bleu, "full", epsilon), trainable)
                entries.append((run_id(o), o, "finished", None, None))
    write_sweep(results / "sizes", "figure1", entries)
    for epsilon, seeds in SST2.items():
        for seed, accuracy in enumerate(seeds):
            folder = results / "sst2" / f"run-{'np' if epsilon is None else epsilon}-{seed}"
            config = run_config("sst2", "full", epsilon, seed, model="/models/roberta-base")
            write_run(folder, config, {"accuracy": accuracy, "examples": 872, "loss": 0.3}, 124_000_000)


def run_notebook(results, figures, monkeypatch):
    """Executes the notebook's code cells in one namespace and returns it."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    nb = json.loads(NOTEBOOK.read_text())
    code = "\n\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    monkeypatch.setenv("DPFT_RESULTS", str(results))
    monkeypatch.setenv("DPFT_FIGURES", str(figures))
    monkeypatch.chdir(NOTEBOOK.parent)
    namespace = {"__name__": "__main__"}
    exec(compile(code, str(NOTEBOOK), "exec"), namespace)
    plt.close("all")
    return namespace


def assert_pngs(figures, names):
    assert sorted(p.name for p in figures.iterdir()) == sorted(f"{n}.png" for n in names)
    for name in names:
        data = (figures / f"{name}.png").read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000, name


def expect(values, scale=100.0):
    """(mean, sample std) of `values` on the shown scale."""
    shown = [v * scale for v in values]
    return statistics.mean(shown), statistics.stdev(shown)


def test_notebook_is_clean_nbformat_4():
    nb = json.loads(NOTEBOOK.read_text())
    assert nb["nbformat"] == 4
    assert nb["cells"][0]["cell_type"] == "markdown" and "only reads files" in "".join(nb["cells"][0]["source"])
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code), "outputs are stored"
    parameters = [c for c in code if "parameters" in c["metadata"].get("tags", [])]
    assert len(parameters) == 1
    source = "".join(parameters[0]["source"])
    assert 'RESULTS = os.environ.get("DPFT_RESULTS", "../results/table2/mini")' in source
    assert 'OUT = os.environ.get("DPFT_FIGURES", None)' in source


def test_table2_sweep(tmp_path, monkeypatch, capsys):
    results = tmp_path / "results" / "table2" / "mini"
    not_runs = table2_sweep(results)
    ns = run_notebook(results, tmp_path / "figs", monkeypatch)
    out = capsys.readouterr().out

    runs, table = ns["runs"], ns["table"]
    assert len(runs) == 12 and set(runs["method"]) == {"full", "lora"}
    assert set(runs["epsilon_label"]) == {"3", "8", "non-private"}
    assert set(runs["model"]) == {"pretrain-mini/model"} and set(runs["task"]) == {"e2e"}
    assert not set(runs["run"]) & set(not_runs)
    skipped = dict(ns["skipped"])
    assert set(skipped) == set(not_runs)  # configs/ is not a run, nor unreadable
    assert "running" in skipped[next(k for k, v in not_runs.items() if v == "running")]
    assert "method.rank" in skipped[next(k for k, v in not_runs.items() if v == "failed")]
    # Curves: 30 training steps per run, the unfinished run's lines left out.
    assert len(ns["curves"]) == 12 * STEPS and set(ns["curves"]["run"]) == set(runs["run"])

    # Runs hold summary.json's numbers as stored.
    row = runs[(runs["method"] == "lora") & (runs["epsilon_label"] == "8") & (runs["seed"] == 1)].iloc[0]
    assert row["BLEU"] == BLEU[("lora", 8)][1] and row["trainable_parameters"] == 147_456
    assert row["batch_size"] == 128 and row["learning_rate"] == 2e-3 and row["status"] == "finished"
    assert runs[(runs["method"] == "lora") & (runs["epsilon_label"] == "non-private")]["METEOR"].isna().all()

    # The table: rows (task, model, metric, ε), columns (mean | std | n, method); BLEU ×100, NIST as stored.
    assert list(table["mean"].columns) == ["full", "lora"]
    metrics = list(dict.fromkeys(table.index.get_level_values("metric")))
    assert metrics == ["BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr"]
    assert [i[3] for i in table.index if i[2] == "BLEU"] == ["3", "8", "non-private"]
    for (method, epsilon), seeds in BLEU.items():
        label = "non-private" if epsilon is None else str(epsilon)
        mean, std = expect(seeds)
        cell = ("e2e", "pretrain-mini/model", "BLEU", label)
        assert table["mean"].loc[cell, method] == pytest.approx(mean, abs=TOL)
        assert table["std"].loc[cell, method] == pytest.approx(std, abs=TOL)
        assert table["n"].loc[cell, method] == 2
        nist_mean, _ = expect([e2e_metrics(b, method, epsilon)["NIST"] for b in seeds], scale=1.0)
        assert table["mean"].loc[("e2e", "pretrain-mini/model", "NIST", label), method] == pytest.approx(
            nist_mean, abs=TOL
        )
    assert math.isnan(table["mean"].loc[("e2e", "pretrain-mini/model", "METEOR", "non-private"), "lora"])
    shown = ns["shown"]
    mean, std = expect(BLEU[("full", 3)])
    assert shown.loc[("E2E", "pretrain-mini/model", "BLEU", "3"), "full"] == f"{mean:.2f} ± {std:.2f}"
    assert shown.loc[("E2E", "pretrain-mini/model", "METEOR", "non-private"), "LoRA"] == "—"

    assert_pngs(tmp_path / "figs", ["metric-vs-epsilon-e2e", "loss-e2e"])
    assert "(c) E2E: one batch size and one learning rate" in out
    assert "(d) E2E: no method and ε run on two or more models" in out


def test_nested_sweeps_draw_every_figure(tmp_path, monkeypatch, capsys):
    results = tmp_path / "results"
    table2_sweep(results / "table2" / "mini")
    extra_sweeps(results)
    ns = run_notebook(results, tmp_path / "figs", monkeypatch)
    out = capsys.readouterr().out

    runs, table = ns["runs"], ns["table"]
    assert len(runs) == 12 + len(HPARAMS) + 8 + 4
    assert runs["run"].str.startswith(("table2/mini/", "hparams/", "sizes/", "sst2/")).all()
    # Five settings of full at ε 3 on the mini model; Table 2's (the best BLEU) is the one in the table.
    assert "E2E pretrain-mini/model full ε 3: 5 settings" in out
    mean, std = expect(BLEU[("full", 3)])
    assert table["mean"].loc[("e2e", "pretrain-mini/model", "BLEU", "3"), "full"] == pytest.approx(mean, abs=TOL)
    assert table["std"].loc[("e2e", "pretrain-mini/model", "BLEU", "3"), "full"] == pytest.approx(std, abs=TOL)
    for model, (_, private, nonprivate) in SIZES.items():
        for label, seeds in (("3", private), ("non-private", nonprivate)):
            mean, _ = expect(seeds)
            assert table["mean"].loc[("e2e", model, "BLEU", label), "full"] == pytest.approx(mean, abs=TOL)
    # The heatmap reads every setting: a 3 × 3 grid of batch size × learning rate with 5 cells run.
    agg = ns["agg"]
    grid = agg[(agg["metric"] == "BLEU") & (agg["method"] == "full") & (agg["epsilon"] == 3)
               & (agg["model"] == "pretrain-mini/model")]
    assert len(grid) == 5 and grid["batch_size"].nunique() == 3 and grid["learning_rate"].nunique() == 3
    low = grid[(grid["batch_size"] == 512) & (grid["learning_rate"] == 5e-4)]
    assert low["mean"].item() == pytest.approx(100 * HPARAMS[(512, 5e-4)], abs=TOL) and low["n"].item() == 1
    # SST-2: accuracy ×100 in the table, after E2E.
    for epsilon, seeds in SST2.items():
        mean, std = expect(seeds)
        cell = ("sst2", "roberta-base", "accuracy", "non-private" if epsilon is None else str(epsilon))
        assert table["mean"].loc[cell, "full"] == pytest.approx(mean, abs=TOL)
        assert table["std"].loc[cell, "full"] == pytest.approx(std, abs=TOL)
    assert list(dict.fromkeys(table.index.get_level_values("task"))) == ["e2e", "sst2"]

    assert_pngs(
        tmp_path / "figs",
        ["metric-vs-epsilon-e2e", "loss-e2e", "heatmap-e2e", "metric-vs-size-e2e", "metric-vs-epsilon-sst2",
         "loss-sst2"],
    )
    assert "(c) SST-2" in out and "(d) SST-2" in out
