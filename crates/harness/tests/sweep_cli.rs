//! `dpft sweep`: expansion (grid, zip, exclude, profiles), stable run ids, config errors before any run,
//! and small CPU sweeps end to end: a failing run recorded while the others finish, `--resume` after an
//! interruption, and `dpft report` on the result.

#[path = "../../models/tests/common/mod.rs"]
mod common;

mod support;

use support::read_json;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

fn dpft(args: &[&str]) -> Output {
    let mut cmd = support::command();
    if let Some(data) = models::DataDir::for_tests("e2e") {
        cmd.args(["--data-dir", data.root().to_str().unwrap()]);
    }
    cmd.args(["--device", "cpu"]).args(args).env("OMP_NUM_THREADS", "1").output().expect("run dpft")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn tmp(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sweep").join(name);
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// A tiny base config: `model` is a GPT-2 folder (any path for the expansion tests).
fn base(model: &Path) -> String {
    format!(
        "model: {{path: {}, untie_lm_head: true, add_pad_token: true}}
task: {{name: e2e, max_length: 60, max_train_examples: 16, max_eval_examples: 4}}
optimization: {{learning_rate: 1e-3, batch_size: 8, physical_batch_size: 8, steps: 3, checkpoint_every: 2, seed: 3}}
privacy: {{target_epsilon: 8, delta: 1e-5, max_grad_norm: 0.5, noise_seed: fixed}}
generation: {{num_beams: 1, max_new_tokens: 4, min_new_tokens: 1, meteor: false}}
",
        model.display()
    )
}

#[test]
fn expansion_ids_and_dry_run() {
    let dir = tmp("expand");
    std::fs::write(dir.join("base.yaml"), base(Path::new("/nonexistent/gpt2"))).unwrap();
    let sweep = dir.join("grid.yaml");
    std::fs::write(
        &sweep,
        "name: demo
base: base.yaml
profiles:
  mini: {optimization.steps: 2}
  paper: {optimization.steps: 100}
grid:
  method.name: [full, lora]
  privacy: [{target_epsilon: 3}, {target_epsilon: 8}, none]
zip:
  - {optimization.batch_size: [8, 16], optimization.learning_rate: [1e-3, 2e-3]}
exclude:
  - {method.name: lora, privacy: none}
",
    )
    .unwrap();
    let o = dpft(&["sweep", sweep.to_str().unwrap(), "--dry-run", "--out", dir.join("out").to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    // 2 methods × 3 privacy × 2 zip levels = 12, minus lora/none × 2 = 10.
    assert!(out.starts_with("10 runs from"), "{out}");
    assert!(out.contains("(profile mini)"), "the first profile is the default: {out}");
    assert!(!dir.join("out").exists(), "a dry run writes nothing");
    let lines: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(lines.len(), 10);
    assert!(lines.iter().all(|l| !(l.contains("method.name=\"lora\"") && l.contains("privacy=\"none\""))));
    // zip keeps batch size and learning rate together.
    assert!(lines.iter().all(|l| l.contains("batch_size=8  optimization.learning_rate=0.001")
        || l.contains("batch_size=16  optimization.learning_rate=0.002")));
    // Ids: a slug of the values and the first 8 hex digits of SHA-256 over the sorted `key=JSON` lines,
    // e.g. python3 -c 'import hashlib; print(hashlib.sha256(b"method.name=\"full\"\nprivacy=\"none\"\n").hexdigest()[:8])'
    // gives 2c497794. Checked through a sweep with exactly these two keys:
    std::fs::write(
        dir.join("two.yaml"),
        "base: base.yaml\ngrid:\n  method.name: [full, lora]\n  privacy: [none, {target_epsilon: 3}]\n",
    )
    .unwrap();
    let o = dpft(&["sweep", dir.join("two.yaml").to_str().unwrap(), "--dry-run"]);
    assert!(o.status.success(), "{}", text(&o));
    let listing = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(listing.contains("full_none-2c497794 "), "{listing}");
    assert!(listing.contains("lora_target-epsilon-3-16a5bb5c "), "{listing}");
    assert_eq!(listing.lines().count(), 5, "{listing}");
    assert!(listing.contains("into results/two"), "default output folder: {listing}");
    // The same sweep gives the same ids again; another profile changes the configs, not the ids.
    let again = dpft(&["sweep", sweep.to_str().unwrap(), "--dry-run", "--out", dir.join("out").to_str().unwrap()]);
    assert_eq!(String::from_utf8_lossy(&again.stdout), out);
    let paper = dpft(&["sweep", sweep.to_str().unwrap(), "--dry-run", "--profile", "paper", "--out", "x"]);
    let ids = |s: &str| s.lines().skip(1).map(|l| l.split_whitespace().next().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(ids(&String::from_utf8_lossy(&paper.stdout)), ids(&out));
}

#[test]
fn config_errors_name_the_key_and_file_before_any_run() {
    let dir = tmp("errors");
    std::fs::write(dir.join("base.yaml"), base(Path::new("/nonexistent/gpt2"))).unwrap();
    let cases = [
        ("base: base.yaml\ngrid: {optimization.learning_rat: [1e-3, 1e-2]}\n", "learning_rat"),
        ("base: base.yaml\ngrid: {method.name: [full, lorra]}\n", "method.name"),
        ("base: base.yaml\ngird: {method.name: [full]}\n", "unknown key `\"gird\"`"),
        ("base: base.yaml\ngrid: {method.name: full}\n", "grid.method.name: give a non-empty list"),
        ("base: base.yaml\nzip: [{optimization.seed: [1, 2], optimization.steps: [1]}]\n", "different lengths"),
        ("base: base.yaml\ngrid: {method.name: [full]}\nexclude: [{method.nam: full}]\n", "exclude[0].method.nam"),
        ("base: missing.yaml\ngrid: {method.name: [full]}\n", "missing.yaml"),
        ("base: base.yaml\ngrid: {method.name: [full]}\n", "--profile"),
        ("base: base.yaml\ngrid: {method.name: [full]}\nslurm: {partion: gpu}\n", "slurm: unknown field `partion`"),
        ("base: base.yaml\ngrid: {method.name: [full]}\nslurm: {time: 2h}\n", "slurm.time = \"2h\""),
        ("base: base.yaml\ngrid: {method.name: [full]}\nslurm: {gpus_per_run: -1}\n", "slurm: "),
    ];
    for (i, (sweep, needle)) in cases.iter().enumerate() {
        let file = dir.join(format!("bad{i}.yaml"));
        std::fs::write(&file, sweep).unwrap();
        let out = dir.join(format!("out{i}"));
        let mut args = vec!["sweep", file.to_str().unwrap(), "--out", out.to_str().unwrap()];
        if needle == &"--profile" {
            args.extend(["--profile", "paper"]);
        }
        let o = dpft(&args);
        assert_eq!(o.status.code(), Some(2), "case {i}: {}", text(&o));
        let msg = text(&o);
        assert!(msg.contains(needle) && msg.contains(&format!("bad{i}.yaml")), "case {i}: {msg}");
        assert!(!out.exists(), "case {i}: nothing is written before the configs are checked");
    }
}

/// The tiny GPT-2 fixture and E2E data, or None (SKIPPED) without a data directory.
fn setup() -> Option<PathBuf> {
    models::DataDir::for_tests("e2e")?;
    common::tiny_models().map(|d| d.join("gpt2-tied"))
}

#[test]
fn a_sweep_runs_records_failures_resumes_and_reports() {
    let Some(model) = setup() else { return };
    let dir = tmp("run");
    std::fs::write(dir.join("base.yaml"), base(&model)).unwrap();
    let sweep = dir.join("small.yaml");
    // Two good runs (ε 3 and non-private) and one whose model folder does not exist (fails at run time).
    std::fs::write(
        &sweep,
        format!(
            "name: small\nbase: base.yaml\ngrid:\n  model.path: [{}, /nonexistent/gpt2]\n  privacy: [{{target_epsilon: 3}}, none]\nexclude:\n  - {{model.path: /nonexistent/gpt2, privacy: none}}\n",
            model.display()
        ),
    )
    .unwrap();
    let out = dir.join("out");
    let o = dpft(&["sweep", sweep.to_str().unwrap(), "--out", out.to_str().unwrap(), "--jobs", "2"]);
    assert_eq!(o.status.code(), Some(1), "one run failed: {}", text(&o));
    let state = read_json(&out.join("sweep.json"));
    let runs = state["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    let by_status = |s: &str| runs.iter().filter(|r| r["status"] == s).count();
    assert_eq!((by_status("finished"), by_status("failed")), (2, 1), "{state}");
    let failed = runs.iter().find(|r| r["status"] == "failed").unwrap();
    assert!(failed["error"].as_str().unwrap().contains("/nonexistent/gpt2"), "{failed}");
    assert!(text(&o).contains("1 of 3 runs failed"), "{}", text(&o));
    // Each finished run folder is what `dpft train` writes.
    let good: Vec<String> =
        runs.iter().filter(|r| r["status"] == "finished").map(|r| r["id"].as_str().unwrap().to_string()).collect();
    for id in &good {
        for f in ["config.yaml", "metrics.jsonl", "summary.json", "privacy.json", "predictions.txt"] {
            assert!(out.join(id).join(f).is_file(), "{id}/{f}");
        }
    }
    let private = runs.iter().find(|r| r["status"] == "finished" && r["epsilon_rdp"].is_number()).unwrap();
    assert!(private["epsilon_rdp"].as_f64().unwrap() <= 3.0);

    // Without --resume the folder is refused; nothing changes.
    let o = dpft(&["sweep", sweep.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--resume"));

    // Interrupt the private run after its step-2 checkpoint (as a kill during step 3 leaves it) and resume:
    // the finished non-private run is skipped (its files untouched), the private one continues.
    let pid = private["id"].as_str().unwrap();
    let other = good.iter().find(|id| *id != pid).unwrap();
    let before = std::fs::read_to_string(out.join(pid).join("summary.json")).unwrap();
    let untouched = std::fs::metadata(out.join(other).join("summary.json")).unwrap().modified().unwrap();
    // The state a kill after step 2 leaves: the run folder with its step-2 checkpoint and no summary.
    std::fs::remove_dir_all(out.join(pid)).unwrap();
    let config = out.join("configs").join(format!("{pid}.yaml"));
    let o =
        dpft(&["train", config.to_str().unwrap(), "--out", out.join(pid).to_str().unwrap(), "--stop-after-steps", "2"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!out.join(pid).join("summary.json").exists());
    // Drop the failing run from the sweep so that the resumed sweep succeeds.
    std::fs::write(
        &sweep,
        format!(
            "name: small\nbase: base.yaml\ngrid:\n  model.path: [{}]\n  privacy: [{{target_epsilon: 3}}, none]\n",
            model.display()
        ),
    )
    .unwrap();
    let o = dpft(&["sweep", sweep.to_str().unwrap(), "--out", out.to_str().unwrap(), "--resume"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::metadata(out.join(other).join("summary.json")).unwrap().modified().unwrap(), untouched);
    let log = std::fs::read_to_string(out.join("logs").join(format!("{pid}.log"))).unwrap();
    assert!(log.contains("resuming from step 2"), "{log}");
    let after = read_json(&out.join(pid).join("summary.json"));
    let before: Value = serde_json::from_str(&before).unwrap();
    assert_eq!(after["epsilon"], before["epsilon"], "the resumed run ends where the uninterrupted one did");
    assert_eq!(after["metrics"], before["metrics"]);
    let table = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(table.contains(pid) && table.contains(other.as_str()), "{table}");

    // `dpft report` on the sweep: the tables hold the runs' numbers, the figures exist.
    let report = dir.join("report");
    let o = dpft(&["report", out.to_str().unwrap(), "--out", report.to_str().unwrap(), "--name", "table2"]);
    assert!(o.status.success(), "{}", text(&o));
    let mut reader = csv::Reader::from_path(report.join("table2.csv")).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    for (id, eps) in [(pid, "3"), (other.as_str(), "non-private")] {
        let summary = read_json(&out.join(id).join("summary.json"));
        for (metric, scale) in [("ROUGE_L", 100.0), ("NIST", 1.0)] {
            let want = summary["metrics"][metric].as_f64().unwrap() * scale;
            let row = rows.iter().find(|r| &r[3] == metric && &r[5] == eps).unwrap_or_else(|| panic!("{metric} {eps}"));
            let got: f64 = row[6].parse().unwrap();
            assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0), "{metric} ε {eps}: {got} vs {want}");
            assert_eq!(&row[8], "1");
        }
    }
    let md = std::fs::read_to_string(report.join("table2.md")).unwrap();
    assert!(md.contains("ROUGE-L") && md.contains("non-private"), "{md}");
    assert!(report.join("table2.tex").is_file());
    for stem in ["bleu-vs-epsilon-e2e", "training-loss-e2e"] {
        for ext in ["png", "svg"] {
            let f = report.join("figures").join(format!("{stem}.{ext}"));
            assert!(std::fs::metadata(&f).map(|m| m.len() > 2000).unwrap_or(false), "{}", f.display());
        }
    }
}

#[test]
fn a_random_search_runs_its_draw_keeps_it_on_resume_and_reports_the_selection_epsilon() {
    let Some(model) = setup() else { return };
    let dir = tmp("selection");
    std::fs::write(dir.join("base.yaml"), base(&model)).unwrap();
    // A grid that varies the privacy accounting cannot be a private selection: refused before any run.
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "base: base.yaml\nselection: {distribution: geometric, mean: 1.5}\ngrid:\n  privacy.target_epsilon: [3, 8]\n",
    )
    .unwrap();
    let o = dpft(&["sweep", bad.to_str().unwrap(), "--out", dir.join("bad-out").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("privacy.target_epsilon") && text(&o).contains("same mechanism"), "{}", text(&o));
    let sweep = dir.join("search.yaml");
    std::fs::write(
        &sweep,
        "base: base.yaml\nselection: {distribution: geometric, mean: 1.5}\ngrid:\n  optimization.learning_rate: [1e-3, 2e-3, 4e-3]\n",
    )
    .unwrap();
    let out = dir.join("out");
    let o = dpft(&["sweep", sweep.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let draw = read_json(&out.join("selection.json"));
    let k = draw["candidates"].as_array().unwrap().len();
    assert!(k >= 1 && draw["grid_size"] == 3, "{draw}");
    let runs = read_json(&out.join("sweep.json"))["runs"].as_array().unwrap().len();
    assert_eq!(runs, k, "one run per candidate");
    // --resume keeps the draw (and finds every candidate finished).
    let o = dpft(&["sweep", sweep.to_str().unwrap(), "--out", out.to_str().unwrap(), "--resume"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(read_json(&out.join("selection.json")), draw);
    let o = dpft(&["report", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let report = read_json(&out.join("report/report.json"));
    let sel = &report["selection"];
    let (one, best) = (sel["epsilon_one_run"].as_f64().unwrap(), sel["epsilon_best_of_k"].as_f64().unwrap());
    assert!((one - 8.0).abs() < 0.01 && best > one, "{sel}");
    assert!(report["notes"].as_array().unwrap().iter().any(|n| n.as_str().unwrap().starts_with("selection:")));
}

#[test]
fn a_second_sweep_into_one_folder_is_refused() {
    let Some(model) = setup() else { return };
    let dir = tmp("locked");
    std::fs::write(dir.join("base.yaml"), base(&model)).unwrap();
    let sweep = dir.join("s.yaml");
    std::fs::write(&sweep, "base: base.yaml\ngrid:\n  optimization.learning_rate: [1e-3]\n").unwrap();
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let holder = std::fs::File::create(out.join(".dpft.lock")).unwrap();
    holder.try_lock().unwrap();
    let o = dpft(&["sweep", sweep.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("sweep folder") && text(&o).contains("in use by"), "{}", text(&o));
    assert!(!out.join("sweep.json").exists());
}
