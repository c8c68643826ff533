//! `dpft train` end to end on CPU with a tiny random GPT-2 (`python/oracles/tiny_models.py`) on E2E rows:
//! the ledger's ε equals `dpft privacy epsilon` for the same σ, q, T and sampler; a killed and resumed run
//! ends with bit-identical parameters and an identical ledger; the budget stop; bad configs.

#[path = "../../models/tests/common/mod.rs"]
mod common;

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

fn dpft(args: &[&str]) -> Output {
    let data = models::DataDir::for_tests("e2e").expect("checked by the caller");
    support::command()
        .args(["--device", "cpu", "--data-dir", data.root().to_str().unwrap()])
        .args(args)
        // Tests run two at a time on CI's 2 cores: one libtorch thread per run avoids oversubscription.
        .env("OMP_NUM_THREADS", "1")
        .output()
        .expect("run dpft")
}

use support::{read_json, stderr};

fn tmp(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join("train").join(name);
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    p
}

/// A config for the tiny GPT-2 on 48 E2E rows: 4 steps of expected batch 16, micro-batches of 8.
fn config(model: &Path, privacy: &str) -> String {
    format!(
        "model: {{path: {}, untie_lm_head: true, add_pad_token: true}}
task: {{name: e2e, max_length: 60, max_train_examples: 48, max_eval_examples: 8}}
optimization: {{learning_rate: 1e-3, batch_size: 16, physical_batch_size: 8, steps: 4, checkpoint_every: 2, seed: 3}}
privacy: {privacy}
generation: {{num_beams: 2, max_new_tokens: 12, min_new_tokens: 2, meteor: false}}
",
        model.display()
    )
}

fn setup() -> Option<PathBuf> {
    models::DataDir::for_tests("e2e")?;
    common::tiny_models().map(|d| d.join("gpt2-tied"))
}

/// The finished run in `out` (σ = 1.0, 4 steps, q = 16/48, δ = 1e-5) reports the ε of `dpft privacy`.
fn check_epsilon_against_dpft_privacy(out: &Path) {
    let summary = read_json(&out.join("summary.json"));
    assert_eq!(summary["status"], "finished");
    assert_eq!(summary["steps"], 4);
    let q = summary["sample_rate"].as_f64().unwrap();
    assert!((q - 16.0 / 48.0).abs() < 1e-12);
    let e = dpft(&[
        "privacy",
        "epsilon",
        "--noise-multiplier",
        "1.0",
        "--sample-rate",
        &q.to_string(),
        "--steps",
        "4",
        "--delta",
        "1e-5",
        "--accountant",
        "rdp",
        "--json",
    ]);
    assert!(e.status.success(), "{}", stderr(&e));
    let reference: Value = serde_json::from_slice(&e.stdout).unwrap();
    let ours = summary["epsilon"]["rdp"].as_f64().unwrap();
    let theirs = reference["rdp"]["epsilon"].as_f64().unwrap();
    assert!((ours - theirs).abs() <= 1e-12 * theirs, "{ours} vs {theirs}");
    let privacy = read_json(&out.join("privacy.json"));
    assert_eq!(
        privacy["history"]["events"].as_array().unwrap().len(),
        1,
        "one event of 4 steps: {}",
        privacy["history"]
    );
    assert!(privacy["randomness"].as_str().unwrap().starts_with("fixed (research only)"), "{privacy}");
    assert!(summary["epsilon"]["gdp_approximation"].is_number());
    assert_eq!(privacy["noise_multiplier"], 1.0);
    let lines = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().filter(|l| l.contains("\"loss\"") && !l.contains("eval")).count(), 4);
    // The per-step statistics of a private run are computed without noise: each line says ε does not cover it.
    for line in lines.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).filter(|v| v.get("lr").is_some()) {
        assert_eq!(line["covered_by_epsilon"], false, "{line}");
    }
    assert!(privacy["scope"].as_str().unwrap().contains("covered_by_epsilon false"), "{privacy}");
    assert!(summary["metrics"]["loss"].as_f64().unwrap().is_finite());
    for key in ["BLEU", "NIST", "ROUGE_L", "CIDEr"] {
        assert!(summary["metrics"][key].is_number(), "{key} in {}", summary["metrics"]);
    }
    assert!(out.join("predictions.txt").is_file() && out.join("references.txt").is_file());
}

#[test]
fn private_runs_report_dpft_privacy_epsilon_and_resume_exactly() {
    let Some(model) = setup() else { return };
    let cfg = tmp("resume.yaml");
    std::fs::write(&cfg, config(&model, "{noise_multiplier: 1.0, delta: 1e-5, max_grad_norm: 0.5, noise_seed: fixed}"))
        .unwrap();
    let (whole, parts) = (tmp("whole"), tmp("parts"));
    let o = dpft(&["train", cfg.to_str().unwrap(), "--out", whole.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    check_epsilon_against_dpft_privacy(&whole);
    // Killed after step 3: the latest checkpoint is step 2; resuming replays step 3 and finishes.
    let o = dpft(&["train", cfg.to_str().unwrap(), "--out", parts.to_str().unwrap(), "--stop-after-steps", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!parts.join("summary.json").exists());
    assert_eq!(std::fs::read_to_string(parts.join("checkpoints/latest")).unwrap(), "step-2");
    let again = dpft(&["train", cfg.to_str().unwrap(), "--out", parts.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2), "an existing run needs --resume");
    let o = dpft(&["train", cfg.to_str().unwrap(), "--out", parts.to_str().unwrap(), "--resume"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let a = common::read(&whole.join("checkpoints/step-4/model.safetensors"));
    let b = common::read(&parts.join("checkpoints/step-4/model.safetensors"));
    assert_eq!(a.len(), b.len());
    for (name, t) in &a {
        assert!(t.equal(&b[name]), "{name} differs after resume");
    }
    assert_eq!(read_json(&whole.join("privacy.json"))["history"], read_json(&parts.join("privacy.json"))["history"]);
    let strip = |p: &Path| -> Vec<Value> {
        std::fs::read_to_string(p.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let mut v: Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("step_s");
                v
            })
            .collect()
    };
    assert_eq!(strip(&whole), strip(&parts), "metrics.jsonl after resume");
}

/// Batch sizes of the steps of a finished run (its `examples` per step line).
fn batch_sizes(out: &Path) -> Vec<u64> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).unwrap()["examples"].as_u64())
        .collect()
}

/// Every file under `dir` except `secrets.json`, as bytes.
fn shareable_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n != "secrets.json") {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

#[test]
fn fixed_seed_runs_of_a_sweep_draw_their_own_batches_and_write_no_seed() {
    let Some(model) = setup() else { return };
    // Two runs with the same seed (3) that differ only in the learning rate: before keys were derived from
    // the config too, they drew the same batches and the same noise.
    let privacy = "{noise_multiplier: 1.0, delta: 1e-5, max_grad_norm: 0.5, noise_seed: fixed}";
    let mut sizes = Vec::new();
    for (name, lr) in [("fixed-a", "1e-3"), ("fixed-b", "2e-3")] {
        let cfg = tmp(&format!("{name}.yaml"));
        std::fs::write(&cfg, config(&model, privacy).replace("learning_rate: 1e-3", &format!("learning_rate: {lr}")))
            .unwrap();
        let out = tmp(name);
        let o = dpft(&["train", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        sizes.push(batch_sizes(&out));
        for file in ["privacy.json", "summary.json"] {
            let text = std::fs::read_to_string(out.join(file)).unwrap();
            assert!(!text.contains("seed 3") && !text.contains("\"seed\""), "{file} names the seed: {text}");
        }
        assert!(!out.join("secrets.json").exists(), "fixed-seed runs keep no secrets file");
    }
    assert_eq!(sizes[0].len(), 4);
    assert_ne!(sizes[0], sizes[1], "two configs, one seed: the batches must differ");
}

#[test]
fn secure_runs_keep_the_sampler_key_in_secrets_json_only_and_resume_from_it() {
    let Some(model) = setup() else { return };
    let cfg = tmp("secure.yaml");
    std::fs::write(&cfg, config(&model, "{noise_multiplier: 1.0, delta: 1e-5, max_grad_norm: 0.5}")).unwrap();
    let out = tmp("secure-run");
    let o = dpft(&["train", cfg.to_str().unwrap(), "--out", out.to_str().unwrap(), "--stop-after-steps", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let secrets = read_json(&out.join("secrets.json"));
    let key = secrets["sampler_key"].as_str().unwrap().to_string();
    assert_eq!(key.len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join("secrets.json")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "secrets.json is owner-only: {mode:o}");
    }
    let state = read_json(&out.join("checkpoints/step-2/state.json"));
    assert!(state.get("sampler_seed").is_none() && state.get("sampler_key").is_none(), "{state}");
    let o = dpft(&["train", cfg.to_str().unwrap(), "--out", out.to_str().unwrap(), "--resume"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read_json(&out.join("summary.json"))["steps"], 4);
    // The key (as hex, or as its raw bytes) is in no other file of the run folder.
    let raw: Vec<u8> = (0..32).map(|i| u8::from_str_radix(&key[2 * i..2 * i + 2], 16).unwrap()).collect();
    for (path, bytes) in shareable_files(&out) {
        let hex_found = String::from_utf8_lossy(&bytes).contains(&key);
        let raw_found = bytes.windows(32).any(|w| w == raw.as_slice());
        assert!(!hex_found && !raw_found, "{} holds the sampler key", path.display());
    }
    // Without its secrets file a secure run cannot continue its batches: refused, naming the file.
    let o = dpft(&["train", cfg.to_str().unwrap(), "--out", out.to_str().unwrap(), "--stop-after-steps", "1"]);
    assert_eq!(o.status.code(), Some(2), "an existing run needs --resume");
    std::fs::remove_file(out.join("summary.json")).unwrap();
    std::fs::remove_file(out.join("secrets.json")).unwrap();
    let o = dpft(&["train", cfg.to_str().unwrap(), "--out", out.to_str().unwrap(), "--resume"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("secrets.json"), "{}", stderr(&o));
}

#[test]
fn the_budget_stops_training_before_it_is_exceeded() {
    let Some(model) = setup() else { return };
    let cfg = tmp("budget.yaml");
    // σ = 1 with q = 1/3 at δ = 1e-5 (RDP): ε = 3.41, 4.46, 5.20, 5.82 after steps 1..4, so a target of 5
    // allows two steps and refuses the third before it is released.
    std::fs::write(&cfg, config(&model, "{noise_multiplier: 1.0, target_epsilon: 5, delta: 1e-5, max_grad_norm: 0.5}"))
        .unwrap();
    let out = tmp("budget-run");
    let o = dpft(&["train", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary = read_json(&out.join("summary.json"));
    assert_eq!(summary["status"], "stopped_at_budget", "{summary}");
    assert_eq!(summary["steps"], 2);
    let privacy = read_json(&out.join("privacy.json"));
    assert_eq!(privacy["history"]["events"][0]["steps"], 2, "{privacy}");
    assert!(privacy["randomness"].as_str().unwrap().starts_with("secure"), "the default: {privacy}");
    let log = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(log.lines().filter(|l| l.contains("\"lr\"")).count(), 2);
    let eps = summary["epsilon"]["rdp"].as_f64().unwrap();
    assert!((eps - 4.460865176064045).abs() < 1e-6, "{eps}");
    assert!(summary["stop_reason"].as_str().unwrap().contains("before step 3"), "{summary}");
}

#[test]
fn bad_configs_exit_2_and_keep_earlier_runs() {
    let Some(model) = setup() else { return };
    let out = tmp("kept-run");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("summary.json"), "{\"earlier\": true}").unwrap();
    let good = config(&model, "{target_epsilon: 3, max_grad_norm: 0.1}");
    let cases = [
        (good.replace("learning_rate", "learnig_rate"), "learnig_rate"),
        (good.replace("target_epsilon: 3", "target_epsilon: 0"), "target_epsilon = 0"),
        (good.replace("max_grad_norm: 0.1", "max_grad_norm: -1"), "max_grad_norm = -1"),
        (good.replace("seed: 3}", "seed: 3, ema_decay: 1.0}"), "optimization.ema_decay = 1"),
        (good.replace(&model.display().to_string(), "/nonexistent/model"), "not a model folder"),
        (good.replace("name: e2e", "name: text, text_files: [nowhere.txt]"), "nowhere.txt"),
    ];
    for (i, (text, expect)) in cases.iter().enumerate() {
        let cfg = tmp(&format!("bad-{i}.yaml"));
        std::fs::write(&cfg, text).unwrap();
        let o = dpft(&["train", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "case {i}: {}", stderr(&o));
        assert!(stderr(&o).contains(expect), "case {i}: expected {expect:?} in {}", stderr(&o));
        assert!(stderr(&o).contains(&format!("bad-{i}.yaml")) || i >= 3, "case {i} names the file: {}", stderr(&o));
    }
    // A good config on a folder with an earlier run is refused too (no --resume): nothing is overwritten.
    let cfg = tmp("good.yaml");
    std::fs::write(&cfg, &good).unwrap();
    let o = dpft(&["train", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(out.join("summary.json")).unwrap(), "{\"earlier\": true}");
}

#[test]
fn non_private_language_modelling_on_text_lowers_the_loss() {
    let Some(model) = setup() else { return };
    let text = tmp("corpus.txt");
    let line = "the quick brown fox jumps over the lazy dog while the cat sleeps in the warm sun. ";
    std::fs::write(&text, line.repeat(40)).unwrap();
    let cfg = tmp("text.yaml");
    std::fs::write(
        &cfg,
        format!(
            "model: {{path: {}}}
task: {{name: text, text_files: [{}], max_length: 32}}
optimization: {{optimizer: adamw, learning_rate: 1e-2, batch_size: 8, physical_batch_size: 8, steps: 12, seed: 1}}
privacy: none
",
            model.display(),
            text.display()
        ),
    )
    .unwrap();
    let out = tmp("text-run");
    let o = dpft(&["train", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let losses: Vec<f64> = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok()?["loss"].as_f64())
        .collect();
    assert_eq!(losses.len(), 12);
    assert!(losses[11] < 0.5 * losses[0], "training loss {losses:?}");
    let summary = read_json(&out.join("summary.json"));
    assert!(summary["epsilon"].is_null() && summary["noise_multiplier"].is_null());
    assert_eq!(read_json(&out.join("privacy.json"))["private"], false);
}

#[test]
fn prompt_based_and_head_classification_train_and_report_accuracy() {
    let Some(gpt2) = setup() else { return };
    models::DataDir::for_tests("sst2").expect("sst2 data");
    let root = gpt2.parent().unwrap();
    for (model, head) in [("roberta-mlm", "prompt"), ("bert-cls", "classifier"), ("bert-cls", "mean_pooled")] {
        let cfg = tmp(&format!("sst2-{head}.yaml"));
        std::fs::write(
            &cfg,
            format!(
                "model: {{path: {}}}
task: {{name: sst2, head: {head}, max_length: 60, max_train_examples: 32, max_eval_examples: 16}}
optimization: {{learning_rate: 1e-3, batch_size: 8, physical_batch_size: 8, steps: 3}}
privacy: {{target_epsilon: 8, delta: 1e-5, max_grad_norm: 0.1}}
",
                root.join(model).display()
            ),
        )
        .unwrap();
        let out = tmp(&format!("sst2-{head}-run"));
        let o = dpft(&["train", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        assert!(o.status.success(), "{head}: {}", stderr(&o));
        let summary = read_json(&out.join("summary.json"));
        let acc = summary["metrics"]["accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc), "{summary}");
        assert_eq!(summary["metrics"]["examples"], 16);
        let eps = summary["epsilon"]["rdp"].as_f64().unwrap();
        assert!(eps <= 8.0 && eps > 7.0, "calibrated σ spends the target: {eps}");
    }
}

#[test]
fn a_small_bpe_vocabulary_trains_a_tiny_gpt2_on_e2e() {
    if setup().is_none() {
        return;
    }
    let data = models::DataDir::for_tests("e2e").unwrap();
    let tok = tmp("bpe");
    let o = dpft(&[
        "train-tokenizer",
        "--file",
        "data:e2e/devset.csv",
        "--vocab-size",
        "600",
        "--out",
        tok.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let again = dpft(&["train-tokenizer", "--file", "data:e2e/devset.csv", "--out", tok.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2), "an existing tokenizer is not overwritten");
    let config = tmp("tiny-600.json");
    std::fs::write(
        &config,
        r#"{"model_type": "gpt2", "vocab_size": 600, "n_positions": 128, "n_embd": 32, "n_layer": 1, "n_head": 2}"#,
    )
    .unwrap();
    let cfg = tmp("bpe-e2e.yaml");
    std::fs::write(
        &cfg,
        format!(
            "model: {{config: {}, tokenizer: {}}}
task: {{name: e2e, max_length: 120, max_train_examples: 32, max_eval_examples: 4}}
optimization: {{learning_rate: 1e-3, batch_size: 8, physical_batch_size: 8, steps: 2}}
privacy: {{noise_multiplier: 1.0, max_grad_norm: 1.0}}
generation: {{num_beams: 2, max_new_tokens: 8, min_new_tokens: 1, meteor: false}}
",
            config.display(),
            tok.display()
        ),
    )
    .unwrap();
    let out = tmp("bpe-e2e-run");
    let o = dpft(&["train", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary = read_json(&out.join("summary.json"));
    assert_eq!(summary["steps"], 2);
    assert!(summary["metrics"]["BLEU"].is_number());
    let _ = data;
}

#[test]
fn top_k_training_leaves_frozen_parameters_bit_identical() {
    let Some(model) = setup() else { return };
    let cfg = tmp("topk.yaml");
    std::fs::write(
        &cfg,
        config(&model, "{noise_multiplier: 1.0, max_grad_norm: 0.5}")
            .replace("optimization:", "method: {name: topk, top_k: 1}\noptimization:"),
    )
    .unwrap();
    let out = tmp("topk-run");
    let o = dpft(&["train", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let before = common::read(&model.join("model.safetensors"));
    let after = common::read(&out.join("checkpoints/step-4/model.safetensors"));
    assert!(after["transformer.wpe.weight"].equal(&before["transformer.wpe.weight"]));
    assert!(after["transformer.h.0.attn.c_attn.weight"].equal(&before["transformer.h.0.attn.c_attn.weight"]));
    assert!(
        !after["transformer.h.1.attn.c_attn.weight"].equal(&before["transformer.h.1.attn.c_attn.weight"]),
        "the top block trains"
    );
    let summary = read_json(&out.join("summary.json"));
    // Top block of the tiny model (d = 32, inner 128) plus ln_f: 12,704 + 64.
    assert_eq!(summary["trainable_parameters"], 12_704 + 64);
}

#[test]
fn retrain_starts_from_a_fresh_initialisation_of_the_same_architecture() {
    let Some(model) = setup() else { return };
    let cfg = tmp("retrain.yaml");
    let text = config(&model, "none").replace("optimization:", "method: {name: retrain}\noptimization:");
    std::fs::write(&cfg, text.replace("steps: 4, checkpoint_every: 2", "steps: 1")).unwrap();
    let out = tmp("retrain-run");
    let o = dpft(&["train", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let before = common::read(&model.join("model.safetensors"));
    let after = common::read(&out.join("checkpoints/step-1/model.safetensors"));
    let (a, b) = (&after["transformer.wpe.weight"], &before["transformer.wpe.weight"]);
    assert_eq!(a.size(), b.size());
    // One step at lr 1e-3 moves a fine-tuned copy by ~1e-3 per entry; a fresh draw differs by O(its scale).
    let diff = (a - b).norm().double_value(&[]);
    assert!(diff > 0.5 * b.norm().double_value(&[]), "retrained weights are a fresh draw, not the checkpoint: {diff}");
    // All parameters train: tied wte/wpe/blocks/ln_f plus the [PAD] row and the untied head.
    let full = before.values().map(|t| t.numel() as i64).sum::<i64>() + 32 + 50258 * 32;
    assert_eq!(read_json(&out.join("summary.json"))["trainable_parameters"], full);
    // The trained model is written as a Hugging Face folder that dpft (and transformers) load: the
    // checkpoint's tensors, the [PAD] token in the tokenizer, the untied head in the config.
    let saved = common::read(&out.join("model/model.safetensors"));
    for (name, t) in &after {
        assert!(t.equal(&saved[name]), "{name}");
    }
    let config = read_json(&out.join("model/config.json"));
    assert_eq!((config["vocab_size"].as_i64(), config["tie_word_embeddings"].as_bool()), (Some(50258), Some(false)));
    let o = dpft(&["score", "--model", out.join("model").to_str().unwrap(), "--text", "name : Aromi [PAD]", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn lora_training_updates_only_the_low_rank_factors() {
    let Some(model) = setup() else { return };
    let cfg = tmp("lora.yaml");
    let text = config(&model, "{noise_multiplier: 1.0, max_grad_norm: 0.5}")
        .replace("optimization:", "method: {name: lora, rank: 4}\noptimization:");
    std::fs::write(&cfg, text).unwrap();
    let out = tmp("lora-run");
    let o = dpft(&["train", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Two blocks of the tiny model (d = 32): A 4·32 + B 96·4 each.
    assert_eq!(read_json(&out.join("summary.json"))["trainable_parameters"], 2 * (4 * 32 + 96 * 4));
    let before = common::read(&model.join("model.safetensors"));
    let after = common::read(&out.join("checkpoints/step-4/model.safetensors"));
    assert!(after["transformer.h.1.attn.c_attn.weight"].equal(&before["transformer.h.1.attn.c_attn.weight"]));
    let b = &after["transformer.h.1.attn.c_attn.lora_B.weight"];
    assert!(b.abs().max().double_value(&[]) > 0.0, "B moved from its zero initialisation");
}

#[test]
fn prefix_tuning_trains_only_the_prefix_and_generates() {
    let Some(model) = setup() else { return };
    let cfg = tmp("prefix.yaml");
    let text = config(&model, "{noise_multiplier: 1.0, max_grad_norm: 0.5}")
        .replace("optimization:", "method: {name: prefix, prefix_length: 3, mid_dim: 16}\noptimization:");
    std::fs::write(&cfg, text).unwrap();
    let out = tmp("prefix-run");
    let o = dpft(&["train", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Tiny model (d = 32, 2 blocks): prefix.wte 3·32 + control_trans.0 32·16 + 16 + control_trans.2
    // 16·(2·2·32) + 128 = 96 + 528 + 2,176.
    let summary = read_json(&out.join("summary.json"));
    assert_eq!(summary["trainable_parameters"], 3 * 32 + (32 * 16 + 16) + (16 * 128 + 128));
    assert_eq!(summary["trainable_parameters"], summary["gradient_parameters"]);
    assert!(summary["metrics"]["BLEU"].is_number(), "generation ran with the prefix: {summary}");
    let predictions = std::fs::read_to_string(out.join("predictions.txt")).unwrap();
    assert!(predictions.lines().count() > 0 && predictions.lines().all(|l| !l.trim().is_empty()));
    let before = common::read(&model.join("model.safetensors"));
    let after = common::read(&out.join("checkpoints/step-4/model.safetensors"));
    assert!(after["transformer.h.1.attn.c_attn.weight"].equal(&before["transformer.h.1.attn.c_attn.weight"]));
    assert!(after.contains_key("prefix.control_trans.2.weight"));
    assert!(!out.join("model").exists(), "a prefix model is not written as a plain GPT-2 folder");
}

#[test]
fn rgp_updates_the_weight_matrices_and_resumes_exactly() {
    let Some(model) = setup() else { return };
    let cfg = tmp("rgp.yaml");
    let text = config(&model, "{noise_multiplier: 1.0, max_grad_norm: 0.5, noise_seed: fixed}")
        .replace("optimization:", "method: {name: rgp}\noptimization:");
    std::fs::write(&cfg, text).unwrap();
    let (whole, parts) = (tmp("rgp-whole"), tmp("rgp-parts"));
    let o = dpft(&["train", cfg.to_str().unwrap(), "--out", whole.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Rank 1 (default) on the tiny model's 4 matrices per block (d = 32, inner 128): carriers (96 + 32) +
    // (32 + 32) + (128 + 32) + (32 + 128) = 512 per block; matrices 32·96 + 32·32 + 32·128 + 128·32 = 12,288.
    let summary = read_json(&whole.join("summary.json"));
    assert_eq!(summary["gradient_parameters"], 2 * 512);
    assert_eq!(summary["trainable_parameters"], 2 * 12_288);
    let log = stderr(&o);
    assert!(log.contains("24576 trainable parameters") && log.contains("a space of 1024 parameters"), "{log}");
    let before = common::read(&model.join("model.safetensors"));
    let a = common::read(&whole.join("checkpoints/step-4/model.safetensors"));
    assert!(!a["transformer.h.0.mlp.c_fc.weight"].equal(&before["transformer.h.0.mlp.c_fc.weight"]));
    assert!(a["transformer.h.0.mlp.c_fc.bias"].equal(&before["transformer.h.0.mlp.c_fc.bias"]));
    assert!(a["transformer.wte.weight"].narrow(0, 0, 50257).equal(&before["transformer.wte.weight"]));
    // Killed after step 3 and resumed from step 2: the carriers' history (W − W₀) carries over.
    let o = dpft(&["train", cfg.to_str().unwrap(), "--out", parts.to_str().unwrap(), "--stop-after-steps", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = dpft(&["train", cfg.to_str().unwrap(), "--out", parts.to_str().unwrap(), "--resume"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let b = common::read(&parts.join("checkpoints/step-4/model.safetensors"));
    for (name, t) in &a {
        assert!(t.equal(&b[name]), "{name} differs after resume");
    }
}

/// `optimization.ema_decay`: the checkpoint keeps the last iterate and the average beside it, the saved
/// model is the average (not the last iterate), and a killed and resumed run ends with the same average.
#[test]
fn the_iterate_average_is_evaluated_saved_and_resumed_exactly() {
    let Some(model) = setup() else { return };
    let cfg = tmp("ema.yaml");
    let text = config(&model, "{noise_multiplier: 1.0, max_grad_norm: 0.5, noise_seed: fixed}")
        .replace("seed: 3}", "seed: 3, ema_decay: 0.5}");
    std::fs::write(&cfg, text).unwrap();
    let (whole, parts) = (tmp("ema-whole"), tmp("ema-parts"));
    let o = dpft(&["train", cfg.to_str().unwrap(), "--out", whole.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("average of the iterates"), "{}", stderr(&o));
    let last = common::read(&whole.join("checkpoints/step-4/model.safetensors"));
    let average = common::read(&whole.join("checkpoints/step-4/average.safetensors"));
    let saved = common::read(&whole.join("model/model.safetensors"));
    let key = "transformer.h.1.attn.c_attn.weight";
    let avg = &average[&format!("ema.{key}")];
    assert!(saved[key].equal(avg), "the saved model is the average");
    assert!(!avg.equal(&last[key]), "the average differs from the last iterate");
    let o = dpft(&["train", cfg.to_str().unwrap(), "--out", parts.to_str().unwrap(), "--stop-after-steps", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = dpft(&["train", cfg.to_str().unwrap(), "--out", parts.to_str().unwrap(), "--resume"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let resumed = common::read(&parts.join("checkpoints/step-4/average.safetensors"));
    assert_eq!(resumed.len(), average.len());
    for (name, t) in &average {
        assert!(t.equal(&resumed[name]), "{name} differs after resume");
    }
    let a = read_json(&whole.join("summary.json"));
    let b = read_json(&parts.join("summary.json"));
    assert_eq!(a["metrics"]["loss"], b["metrics"]["loss"], "the final evaluation sees the same average");
}

#[test]
fn keys_of_another_method_are_refused() {
    let Some(model) = setup() else { return };
    let cfg = tmp("wrong-key.yaml");
    let text = config(&model, "none").replace("optimization:", "method: {name: full, rank: 4}\noptimization:");
    std::fs::write(&cfg, text).unwrap();
    let o = dpft(&["train", cfg.to_str().unwrap(), "--out", tmp("wrong-key-run").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("method.rank applies to method.name = lora or rgp only"), "{}", stderr(&o));
}

#[test]
fn head_learning_rate_moves_the_classification_head_only_and_needs_one() {
    let Some(gpt2) = setup() else { return };
    models::DataDir::for_tests("sst2").expect("sst2 data");
    let root = gpt2.parent().unwrap();
    let run = |model: &str, head: &str, head_lr: Option<f64>| {
        let tag = format!("{model}-{head}-{}", head_lr.map_or("none".into(), |h| h.to_string()));
        let cfg = tmp(&format!("head-lr-{tag}.yaml"));
        let head_lr = head_lr.map_or(String::new(), |h| format!(", head_learning_rate: {h}"));
        std::fs::write(
            &cfg,
            format!(
                "model: {{path: {}}}
task: {{name: sst2, head: {head}, max_length: 60, max_train_examples: 16, max_eval_examples: 8}}
optimization: {{learning_rate: 1e-3{head_lr}, batch_size: 16, physical_batch_size: 16, steps: 1}}
privacy: none
",
                root.join(model).display()
            ),
        )
        .unwrap();
        let out = tmp(&format!("head-lr-{tag}-run"));
        (dpft(&["train", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()]), out)
    };
    // A head lr equal to the lr changes nothing; a larger one changes the head's step and nothing else (one
    // step: the body's gradient does not depend on the head's update). The batch is the whole training set
    // (q = 1), so that the runs, whose config hashes differ, see the same examples.
    let weights = |out: &PathBuf| common::read(&out.join("checkpoints/step-1/model.safetensors"));
    let (o, plain) = run("bert-cls", "mean_pooled", None);
    assert!(o.status.success(), "{}", stderr(&o));
    let (o, same) = run("bert-cls", "mean_pooled", Some(1e-3));
    assert!(o.status.success(), "{}", stderr(&o));
    let (o, fast) = run("bert-cls", "mean_pooled", Some(1e-1));
    assert!(o.status.success(), "{}", stderr(&o));
    let (plain, same, fast) = (weights(&plain), weights(&same), weights(&fast));
    assert_eq!(plain.len(), fast.len());
    let mut heads = 0;
    for (name, w) in &plain {
        assert!(w.equal(&same[name]), "{name}: head_learning_rate = learning_rate is the plain run");
        if name.starts_with("classifier.") {
            heads += 1;
            assert!(!w.equal(&fast[name]), "{name}: the head moved at the head's rate");
        } else {
            assert!(w.equal(&fast[name]), "{name}: the body is untouched by the head's rate");
        }
    }
    assert_eq!(heads, 2, "classifier.weight and classifier.bias");
    // The prompt head is the pretrained MLM head: there is no fresh head to apply the key to.
    let (o, out) = run("roberta-mlm", "prompt", Some(1e-2));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("optimization.head_learning_rate"), "{}", stderr(&o));
    assert!(!out.join("summary.json").exists(), "nothing trained");
}

#[test]
fn encoder_methods_train_on_classification() {
    let Some(gpt2) = setup() else { return };
    models::DataDir::for_tests("sst2").expect("sst2 data");
    let root = gpt2.parent().unwrap();
    // Tiny encoders (d = 32, 2 layers, FFN 64). LoRA r = 2 on query and value: 2 layers × 2 × (2·32 + 32·2)
    // = 512 (prompt-based: nothing else trains); top-1 with the RoBERTa classification head: one layer
    // 4·(32·32 + 32) + 2·32 + (32·64 + 64) + (64·32 + 32) + 2·32 = 8,544, head (32·32 + 32) + (32·3 + 3) = 1,155.
    // roberta-cls has a 3-label head: MNLI (the data directory's labelled subset); a 2-label head on MNLI is
    // refused, naming the task's label count.
    let cases = [
        ("roberta-mlm", "prompt", "{name: lora, rank: 2}", Some(512), "sst2"),
        ("roberta-cls", "classifier", "{name: topk, top_k: 1}", Some(8_544 + 1_155), "mnli"),
        ("bert-cls", "classifier", "{name: retrain}", None, "sst2"),
        ("roberta-mlm", "prompt", "{name: prefix}", None, "sst2"),
        ("bert-cls", "classifier", "{name: full}", None, "mnli"),
    ];
    for (model, head, method, count, task) in cases {
        let splits = if task == "mnli" { ", train_split: subset-train, eval_split: subset-dev" } else { "" };
        let cfg = tmp(&format!("{task}-{model}-{head}-method.yaml"));
        std::fs::write(
            &cfg,
            format!(
                "model: {{path: {}}}
task: {{name: {task}, head: {head}, max_length: 60, max_train_examples: 16, max_eval_examples: 8{splits}}}
method: {method}
optimization: {{learning_rate: 1e-3, batch_size: 8, physical_batch_size: 8, steps: 2}}
privacy: {{noise_multiplier: 1.0, delta: 1e-5, max_grad_norm: 0.1}}
",
                root.join(model).display()
            ),
        )
        .unwrap();
        let out = tmp(&format!("{task}-{model}-{head}-method-run"));
        let o = dpft(&["train", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        if model == "bert-cls" && task == "mnli" {
            assert_eq!(o.status.code(), Some(2), "a 2-label head on MNLI: {}", stderr(&o));
            assert!(stderr(&o).contains("task mnli has 3 labels"), "{}", stderr(&o));
            continue;
        }
        if method.contains("prefix") {
            assert_eq!(o.status.code(), Some(2), "prefix on an encoder is refused");
            assert!(stderr(&o).contains("GPT-2"), "{}", stderr(&o));
            assert!(!out.join("config.yaml").exists(), "nothing written");
            continue;
        }
        assert!(o.status.success(), "{model} {method}: {}", stderr(&o));
        let summary = read_json(&out.join("summary.json"));
        assert!(summary["metrics"]["accuracy"].is_number(), "{summary}");
        if let Some(c) = count {
            assert_eq!(summary["trainable_parameters"], c, "{model} {method}");
        }
        if method.contains("retrain") {
            let before = common::read(&root.join(model).join("model.safetensors"));
            let after = common::read(&out.join("checkpoints/step-2/model.safetensors"));
            let key = "bert.embeddings.position_embeddings.weight";
            let diff = (&after[key] - &before[key]).norm().double_value(&[]);
            assert!(diff > 0.5 * before[key].norm().double_value(&[]), "a fresh draw: {diff}");
        }
    }
}

#[test]
fn a_folder_left_with_only_its_config_is_started_again() {
    // A start that fails before its first step leaves config.yaml alone; the next start may use the folder
    // (a sweep's --resume relies on it), while a folder with anything else stays refused.
    let Some(model) = setup() else { return };
    let cfg = tmp("restart.yaml");
    std::fs::write(&cfg, config(&model, "none").replace("steps: 4, checkpoint_every: 2", "steps: 1")).unwrap();
    let out = tmp("restart-run");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("config.yaml"), "left over\n").unwrap();
    let o = dpft(&["train", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.join("summary.json").is_file());
    let other = tmp("restart-foreign");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "mine\n").unwrap();
    let o = dpft(&["train", cfg.to_str().unwrap(), "--out", other.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(other.join("notes.txt")).unwrap(), "mine\n");
}

#[test]
fn a_second_writer_of_a_run_folder_is_refused_naming_the_holder() {
    let Some(model) = setup() else { return };
    let cfg = tmp("locked.yaml");
    std::fs::write(&cfg, config(&model, "{noise_multiplier: 1.0, max_grad_norm: 0.5}")).unwrap();
    let out = tmp("locked-run");
    std::fs::create_dir_all(&out).unwrap();
    // Another process's lock (held here, as a running `dpft train` holds it), with its pid in the file.
    let mut holder =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(out.join(".dpft.lock")).unwrap();
    holder.try_lock().unwrap();
    std::io::Write::write_all(&mut holder, b"424242").unwrap();
    for extra in [&[][..], &["--resume"][..]] {
        let o = dpft(&[&["train", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()][..], extra].concat());
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("in use by dpft process 424242"), "{}", stderr(&o));
    }
    assert!(!out.join("config.yaml").exists() && !out.join("metrics.jsonl").exists(), "nothing written");
    // Released (the holder exited): the run starts.
    drop(holder);
    let o = dpft(&["train", cfg.to_str().unwrap(), "--out", out.to_str().unwrap(), "--stop-after-steps", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
}
