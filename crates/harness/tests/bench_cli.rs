//! `dpft bench` as a user runs it: every mode on tiny GPT-2 and RoBERTa configs, the JSON report's
//! contract, the largest-batch search, and refusals of bad input.

mod support;

use std::path::Path;

use serde_json::Value;
use support::{command, stderr, stdout};

/// A tiny GPT-2 (vocabulary `vocab`, width 32, 2 blocks, 64 positions).
fn gpt2_config(dir: &Path, vocab: i64) -> String {
    let path = dir.join(format!("gpt2-{vocab}.json"));
    let config = serde_json::json!({
        "model_type": "gpt2", "vocab_size": vocab, "n_positions": 64, "n_embd": 32, "n_layer": 2, "n_head": 2,
        "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5, "bos_token_id": 0, "eos_token_id": 0,
    });
    std::fs::write(&path, config.to_string()).unwrap();
    path.to_string_lossy().into_owned()
}

/// Trainable parameters of that GPT-2, counted from the architecture (tied head).
fn gpt2_parameters(vocab: i64) -> i64 {
    let (d, positions, layers) = (32, 64, 2);
    let block = 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + 2 * d + (d * 4 * d + 4 * d) + (4 * d * d + d);
    vocab * d + positions * d + layers * block + 2 * d
}

fn roberta_config(dir: &Path) -> String {
    let path = dir.join("roberta.json");
    let config = serde_json::json!({
        "model_type": "roberta", "vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 40, "type_vocab_size": 1,
        "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, "layer_norm_eps": 1e-5,
    });
    std::fs::write(&path, config.to_string()).unwrap();
    path.to_string_lossy().into_owned()
}

/// A scratch folder removed at the end of the test.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("dpft-bench-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bench(args: &[&str]) -> std::process::Output {
    // One thread: the test binaries share two cores.
    command().env("OMP_NUM_THREADS", "1").arg("bench").args(args).output().expect("run dpft")
}

fn report(args: &[&str]) -> Value {
    let out = bench(args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    serde_json::from_str(stdout(&out).trim()).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

fn median(xs: &[f64]) -> f64 {
    let mut s = xs.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn check_contract(r: &Value, mode: &str, model: &str, batch: i64, seq: i64, steps: usize) {
    assert_eq!(r["impl"], "dpft");
    assert_eq!(r["mode"], mode);
    assert_eq!(r["model"], model);
    assert_eq!(r["batch_size"], batch);
    assert_eq!(r["seq_len"], seq);
    let times: Vec<f64> = r["step_times_s"].as_array().unwrap().iter().map(|t| t.as_f64().unwrap()).collect();
    assert_eq!(times.len(), steps);
    assert!(times.iter().all(|&t| t > 0.0 && t.is_finite()), "{times:?}");
    let med = r["median_step_s"].as_f64().unwrap();
    assert_eq!(med, median(&times));
    let rate = r["examples_per_s"].as_f64().unwrap();
    assert!((rate - batch as f64 / med).abs() <= 1e-12 * rate, "{rate} vs {batch}/{med}");
    // The process holds at least libtorch and the model: tens of MB, far below the machine's memory.
    let peak = r["peak_mem_bytes"].as_u64().unwrap();
    assert!(peak > 20 << 20 && peak < 8 << 30, "{peak}");
    assert!(r["peak_mem_kind"].as_str().unwrap().contains("VmHWM"));
}

#[test]
fn every_mode_reports_the_contract_on_gpt2_and_roberta() {
    let dir = Scratch::new("modes");
    let gpt2 = gpt2_config(dir.path(), 128);
    for mode in ["nonprivate", "bk", "ghost", "naive"] {
        let r = report(&[
            "--model",
            &gpt2,
            "--batch-size",
            "4",
            "--seq-len",
            "16",
            "--mode",
            mode,
            "--steps",
            "3",
            "--warmup",
            "1",
            "--json",
        ]);
        check_contract(&r, mode, &gpt2, 4, 16, 3);
        assert_eq!(r["parameters"], gpt2_parameters(128), "{mode}");
        assert_eq!(r["weights"], "random (config file)");
    }
    let roberta = roberta_config(dir.path());
    for mode in ["nonprivate", "bk"] {
        let r = report(&[
            "--model",
            &roberta,
            "--batch-size",
            "3",
            "--seq-len",
            "37",
            "--mode",
            mode,
            "--steps",
            "2",
            "--json",
        ]);
        check_contract(&r, mode, &roberta, 3, 37, 2);
    }
    // Without --json: a readable summary on stdout; --out keeps the JSON.
    let file = dir.path().join("r.json");
    let out = bench(&[
        "--model",
        &gpt2,
        "--batch-size",
        "2",
        "--seq-len",
        "8",
        "--mode",
        "bk",
        "--steps",
        "1",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("median step") && text.contains("examples/s") && text.contains("peak memory"), "{text}");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    check_contract(&saved, "bk", &gpt2, 2, 8, 1);
}

#[test]
fn max_batch_finds_the_largest_batch_under_the_limit() {
    // A vocabulary of 32768 makes the logits (and their gradients) grow by ~50 MB per example, so the
    // limit separates batch sizes far above the process's noise (~10 MB between identical runs).
    let dir = Scratch::new("maxbatch");
    let gpt2 = gpt2_config(dir.path(), 32768);
    let one =
        report(&["--model", &gpt2, "--batch-size", "1", "--seq-len", "64", "--mode", "bk", "--steps", "1", "--json"]);
    let base = one["peak_mem_bytes"].as_u64().unwrap();
    let limit = base + (400 << 20);
    let r = report(&[
        "--model",
        &gpt2,
        "--seq-len",
        "64",
        "--mode",
        "bk",
        "--max-batch",
        "--mem-limit",
        &limit.to_string(),
        "--max-batch-cap",
        "64",
        "--json",
    ]);
    let best = r["max_batch_size"].as_i64().unwrap();
    assert_eq!(r["batch_size"], best);
    assert_eq!(r["mem_limit_bytes"], limit);
    assert!((2..64).contains(&best), "largest batch {best} (limit = batch-1 peak + 400 MiB): {r}");
    let trials = r["trials"].as_array().unwrap();
    let trial = |b: i64| trials.iter().find(|t| t["batch_size"] == b).unwrap_or_else(|| panic!("no trial at {b}: {r}"));
    // The answer fits, the next size was tried and did not: the search is exact.
    assert_eq!(trial(best)["fits"], true);
    assert!(trial(best)["peak_mem_bytes"].as_u64().unwrap() <= limit);
    assert_eq!(trial(best + 1)["fits"], false);
    assert!(trial(best + 1)["peak_mem_bytes"].as_u64().unwrap() > limit, "{r}");
    assert_eq!(r["peak_mem_bytes"], trial(best)["peak_mem_bytes"]);
    assert!(r["examples_per_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn bad_input_exits_2_naming_what_to_fix() {
    let dir = Scratch::new("bad");
    let gpt2 = gpt2_config(dir.path(), 128);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--model", "gpt5", "--batch-size", "2", "--seq-len", "8", "--mode", "bk"], "gpt2, gpt2-medium"),
        (vec!["--model", &gpt2, "--batch-size", "2", "--seq-len", "65", "--mode", "bk"], "exceeds the 64 positions"),
        (vec!["--model", &gpt2, "--batch-size", "0", "--seq-len", "8", "--mode", "bk"], "--batch-size 0"),
        (vec!["--model", &gpt2, "--batch-size", "2", "--seq-len", "8", "--mode", "fast"], "invalid value 'fast'"),
        (vec!["--model", &gpt2, "--seq-len", "8", "--mode", "bk", "--max-batch"], "--mem-limit"),
        (vec!["--model", &gpt2, "--seq-len", "8", "--mode", "bk", "--max-batch", "--mem-limit", "8X"], "unknown unit"),
        (vec!["--model", &gpt2, "--seq-len", "8", "--mode", "bk"], "--batch-size"),
        // With --max-batch the model is built in the candidates' processes: their refusal is still exit 2.
        (
            vec!["--model", "gpt5", "--seq-len", "8", "--mode", "bk", "--max-batch", "--mem-limit", "4G"],
            "gpt2, gpt2-medium",
        ),
        (
            vec!["--model", &gpt2, "--batch-size", "2", "--seq-len", "8", "--mode", "bk", "--max-grad-norm", "0"],
            "--max-grad-norm",
        ),
    ];
    for (args, needle) in cases {
        let out = bench(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: want {needle:?} in {}", stderr(&out));
    }
    // A config file that is not a model config, and a folder without config.json.
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{\"model_type\": \"t5\"}").unwrap();
    for (spec, needle) in [(junk.to_str().unwrap(), "t5"), (dir.path().to_str().unwrap(), "no config.json")] {
        let out = bench(&["--model", spec, "--batch-size", "2", "--seq-len", "8", "--mode", "bk"]);
        assert_eq!(out.status.code(), Some(2), "{spec}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{}", stderr(&out));
    }
}
