//! The integrity of a run folder across a resume, end to end with a tiny random GPT-2 on E2E rows: the
//! training data cannot change under a resume (its fingerprint), a planted link cannot redirect a write
//! outside `--out` or make a resume load another run's checkpoint, and `--resume` of a finished run
//! changes nothing. The cost in summary.json covers every segment.

#[path = "../../models/tests/common/mod.rs"]
mod common;

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use support::{read_json, stderr, stdout};

fn dpft_with(data: &Path, args: &[&str]) -> Output {
    support::command()
        .args(["--device", "cpu", "--data-dir", data.to_str().unwrap()])
        .args(args)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .expect("run dpft")
}

fn tmp(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join("run-folder").join(name);
    let _ = std::fs::remove_dir_all(&p);
    let _ = std::fs::remove_file(&p);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    p
}

/// The data directory, the tiny GPT-2 and a 4-step private config (checkpoints every 2 steps) written to
/// `name.yaml`.
fn setup(name: &str) -> Option<(PathBuf, PathBuf)> {
    let data = models::DataDir::for_tests("e2e")?.root().to_path_buf();
    let model = common::tiny_models()?.join("gpt2-tied");
    let cfg = tmp(&format!("{name}.yaml"));
    std::fs::write(
        &cfg,
        format!(
            "model: {{path: {}, untie_lm_head: true, add_pad_token: true}}
task: {{name: e2e, max_length: 60, max_train_examples: 48, max_eval_examples: 4}}
optimization: {{learning_rate: 1e-3, batch_size: 16, physical_batch_size: 8, steps: 4, checkpoint_every: 2, seed: 3}}
privacy: {{noise_multiplier: 1.0, delta: 1e-5, max_grad_norm: 0.5, noise_seed: fixed}}
generation: {{num_beams: 1, max_new_tokens: 6, min_new_tokens: 2, meteor: false}}
",
            model.display()
        ),
    )
    .unwrap();
    Some((data, cfg))
}

/// Trains `cfg` into `out` and stops after step 3 (the latest checkpoint is step 2).
fn interrupted(data: &Path, cfg: &Path, out: &Path) {
    let o =
        dpft_with(data, &["train", cfg.to_str().unwrap(), "--out", out.to_str().unwrap(), "--stop-after-steps", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

fn resume(data: &Path, cfg: &Path, out: &Path) -> Output {
    dpft_with(data, &["train", cfg.to_str().unwrap(), "--out", out.to_str().unwrap(), "--resume"])
}

/// A data directory whose E2E training file has as many rows as the real one's first 100 but different
/// ones (the first row dropped, so the first 48 that the config keeps are shifted by one).
fn other_data(real: &Path) -> PathBuf {
    let root = tmp("other-data");
    std::fs::create_dir_all(root.join("e2e")).unwrap();
    let train = std::fs::read_to_string(real.join("e2e/trainset.csv")).unwrap();
    let mut lines = train.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.skip(1).take(100).collect();
    std::fs::write(root.join("e2e/trainset.csv"), format!("{header}\n{}\n", rows.join("\n"))).unwrap();
    for f in ["devset.csv", "testset_w_refs.csv"] {
        std::os::unix::fs::symlink(real.join("e2e").join(f), root.join("e2e").join(f)).unwrap();
    }
    root
}

#[test]
fn a_resume_on_other_data_of_the_same_size_is_refused_naming_the_file() {
    let Some((data, cfg)) = setup("fingerprint") else { return };
    let out = tmp("fingerprint-run");
    interrupted(&data, &cfg, &out);
    let other = other_data(&data);
    let before = std::fs::read(out.join("metrics.jsonl")).unwrap();
    let o = resume(&other, &cfg, &out);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let msg = stderr(&o);
    assert!(msg.contains("training data differs") && msg.contains("trainset.csv"), "{msg}");
    assert!(msg.contains(other.join("e2e/trainset.csv").to_str().unwrap()), "names the file read: {msg}");
    assert_eq!(std::fs::read(out.join("metrics.jsonl")).unwrap(), before, "nothing rewritten");
    assert!(!out.join("summary.json").exists());
    // The same data resumes, and summary.json records the fingerprint, two segments and their cost.
    let o = resume(&data, &cfg, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary = read_json(&out.join("summary.json"));
    let state = read_json(&out.join("checkpoints/step-4/state.json"));
    assert_eq!(summary["data_fingerprint"].as_str().unwrap().len(), 64);
    assert_eq!(summary["data_fingerprint"], state["data_fingerprint"]);
    assert_eq!(summary["segments"], 2, "{summary}");
    assert_eq!(state["segments"], 2, "{state}");
    let first = read_json(&out.join("checkpoints/step-4/state.json"))["elapsed_s"].as_f64().unwrap();
    assert!(summary["wall_time_s"].as_f64().unwrap() >= first, "{summary}");
}

#[test]
fn resuming_a_finished_run_changes_nothing() {
    let Some((data, cfg)) = setup("finished") else { return };
    let out = tmp("finished-run");
    let o = dpft_with(&data, &["train", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let files = ["summary.json", "privacy.json", "metrics.jsonl", "predictions.txt", "config.yaml"];
    let before: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(out.join(f)).unwrap()).collect();
    let modified = std::fs::metadata(out.join("model/model.safetensors")).unwrap().modified().unwrap();
    let o = resume(&data, &cfg, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("has finished; nothing to do"), "{}", stderr(&o));
    assert!(stdout(&o).contains("status:     finished after 4 steps"), "{}", stdout(&o));
    let after: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(out.join(f)).unwrap()).collect();
    assert!(before == after, "a finished run's files are left as they are");
    assert_eq!(std::fs::metadata(out.join("model/model.safetensors")).unwrap().modified().unwrap(), modified);
    assert_eq!(read_json(&out.join("summary.json"))["segments"], 1);
}

#[test]
fn planted_links_do_not_redirect_writes_outside_the_run_folder() {
    use std::os::unix::fs::symlink;
    let Some((data, cfg)) = setup("links") else { return };
    let out = tmp("links-run");
    let outside = tmp("links-outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("victim"), "keep").unwrap();
    interrupted(&data, &cfg, &out);
    // Links at every temporary and final name dpft writes, old temporary names included; dangling ones
    // would create their targets if followed.
    let plants = [
        ("summary.json.tmp", "created-1"),
        (".summary.json.tmp", "created-2"),
        ("summary.json", "victim"),
        (".privacy.json.tmp", "created-3"),
        ("checkpoints/latest.tmp", "created-4"),
        ("checkpoints/.latest.tmp", "created-5"),
        ("checkpoints/step-4.tmp", "created-dir"),
        (".predictions.txt.tmp", "created-6"),
        ("model", "created-model"),
        ("model.tmp", "created-model-tmp"),
    ];
    for (name, target) in plants {
        symlink(outside.join(target), out.join(name)).unwrap();
    }
    let o = resume(&data, &cfg, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let left: Vec<String> =
        std::fs::read_dir(&outside).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(left, ["victim"], "files created outside --out");
    assert_eq!(std::fs::read_to_string(outside.join("victim")).unwrap(), "keep");
    for name in ["summary.json", "model", "checkpoints/latest"] {
        let m = std::fs::symlink_metadata(out.join(name)).unwrap();
        assert!(!m.file_type().is_symlink(), "{name} is still a link");
    }
    assert_eq!(read_json(&out.join("summary.json"))["status"], "finished");
}

#[test]
fn a_latest_pointer_outside_the_run_folder_is_refused() {
    let Some((data, cfg)) = setup("latest") else { return };
    let (out, other) = (tmp("latest-run"), tmp("latest-other"));
    interrupted(&data, &cfg, &out);
    interrupted(&data, &cfg, &other);
    let before = std::fs::read(out.join("metrics.jsonl")).unwrap();
    let pointers = [
        other.join("checkpoints/step-2").to_string_lossy().into_owned(),
        "../../latest-other/checkpoints/step-2".to_string(),
        "step-2/../step-2".to_string(),
    ];
    for pointer in pointers {
        std::fs::write(out.join("checkpoints/latest"), &pointer).unwrap();
        let o = resume(&data, &cfg, &out);
        assert_eq!(o.status.code(), Some(2), "{pointer}: {}", stderr(&o));
        assert!(stderr(&o).contains("not a checkpoint folder of this run"), "{}", stderr(&o));
    }
    // `latest` as a link to another run's pointer is refused too.
    std::fs::remove_file(out.join("checkpoints/latest")).unwrap();
    std::os::unix::fs::symlink(other.join("checkpoints/latest"), out.join("checkpoints/latest")).unwrap();
    let o = resume(&data, &cfg, &out);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("is a symbolic link"), "{}", stderr(&o));
    assert_eq!(std::fs::read(out.join("metrics.jsonl")).unwrap(), before, "nothing rewritten");
}

#[test]
fn a_delta_of_at_least_one_over_n_trains_only_when_allowed_and_is_marked() {
    let Some((data, cfg)) = setup("large-delta") else { return };
    let results = tmp("large-delta-results");
    let out = results.join("run");
    let train = |extra: &[&str]| {
        let args = [
            &["train", cfg.to_str().unwrap(), "--out", out.to_str().unwrap(), "--set", "privacy.delta=0.1"][..],
            extra,
        ];
        dpft_with(&data, &args.concat())
    };
    // n = 48: δ = 0.1 ≥ 1/48 permits releasing whole examples.
    let o = train(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("allow_large_delta"), "{}", stderr(&o));
    assert!(!out.join("metrics.jsonl").exists(), "refused before step 1");
    let o = train(&["--set", "privacy.allow_large_delta=true"]);
    assert!(o.status.success(), "{}", stderr(&o));
    for file in ["privacy.json", "summary.json"] {
        let v = read_json(&out.join(file));
        assert!(v["delta_warning"].as_str().is_some_and(|w| w.contains("1/n")), "{file}: {v}");
    }
    let o =
        dpft_with(&data, &["report", results.to_str().unwrap(), "--out", tmp("large-delta-report").to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let said = stdout(&o) + &stderr(&o);
    assert!(said.contains("δ ≥ 1/n") && said.contains("run"), "{said}");
}
