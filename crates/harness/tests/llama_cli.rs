//! The Llama family through the CLI: `dpft train` (E2E with private LoRA on a tiny random Llama, plain
//! text with full fine-tuning on a tiny Qwen2), the run's PEFT adapter read back by `dpft score
//! --adapter`, `dpft generate`, `dpft clip-check` exact in f64, `dpft bench` on a folder; and the real
//! SmolLM2-135M-Instruct: ten private LoRA steps on E2E lower its evaluation loss.

#[path = "../../models/tests/common/mod.rs"]
mod common;

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use support::{read_json, stderr, stdout};

fn dpft(args: &[&str]) -> Output {
    let data = models::DataDir::for_tests("e2e").expect("checked by the caller");
    support::command()
        .args(["--device", "cpu", "--data-dir", data.root().to_str().unwrap()])
        .args(args)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .expect("run dpft")
}

fn tmp(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join("llama-cli").join(name);
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    p
}

fn tiny(name: &str) -> Option<PathBuf> {
    models::DataDir::for_tests("e2e")?;
    common::tiny_llamas().map(|d| d.join(name))
}

/// A private E2E config for `model`, `method` a YAML mapping.
fn e2e_config(model: &Path, method: &str, extra: &str) -> String {
    format!(
        "model: {{path: {}, add_pad_token: true}}
method: {method}
task: {{name: e2e, max_length: 60, max_train_examples: 32, max_eval_examples: 4}}
optimization: {{learning_rate: 5.0e-3, batch_size: 16, physical_batch_size: 8, steps: 3, checkpoint_every: 2, seed: 1{extra}}}
privacy: {{noise_multiplier: 1.0, delta: 1.0e-5, max_grad_norm: 0.5, noise_seed: fixed}}
generation: {{num_beams: 2, max_new_tokens: 6, min_new_tokens: 1, meteor: false}}
",
        model.display()
    )
}

#[test]
fn private_lora_on_a_tiny_llama_trains_and_its_adapter_scores() {
    let Some(model) = tiny("llama-tied") else { return };
    let cfg = tmp("lora.yaml");
    std::fs::write(&cfg, e2e_config(&model, "{name: lora, rank: 2, alpha: 4}", "")).unwrap();
    let out = tmp("lora-run");
    let o = dpft(&["train", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary = read_json(&out.join("summary.json"));
    assert_eq!(summary["status"], "finished");
    assert!(summary["epsilon"]["rdp"].as_f64().unwrap() > 0.0);
    assert!(summary["metrics"]["BLEU"].is_number(), "{summary}");
    // LoRA on q_proj and v_proj of 2 layers, rank 2: (32·2 + 2·32) + (32·2 + 2·16) per layer.
    assert_eq!(summary["trainable_parameters"], 2 * (128 + 96));
    let adapter = read_json(&out.join("adapter/adapter_config.json"));
    assert_eq!(adapter["target_modules"], serde_json::json!(["q_proj", "v_proj"]));
    let text = "name : The Eagle | Type : coffee shop";
    let scored = |extra: &[&str]| -> Vec<f64> {
        let args = [&["score", "--model", model.to_str().unwrap(), "--text", text, "--json"][..], extra].concat();
        let o = dpft(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        v[0]["logprobs"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
    };
    let (base, tuned) = (scored(&[]), scored(&["--adapter", out.join("adapter").to_str().unwrap()]));
    assert_eq!(base.len(), tuned.len());
    assert!(base.iter().zip(&tuned).any(|(a, b)| (a - b).abs() > 1e-6), "the adapter changes the model");
}

#[test]
fn full_fine_tuning_of_a_tiny_qwen2_on_text_and_the_other_commands() {
    let Some(model) = tiny("qwen2") else { return };
    let text_file = tmp("text.txt");
    std::fs::write(&text_file, "Differential privacy bounds what a model reveals about one example. ".repeat(40))
        .unwrap();
    let cfg = tmp("text.yaml");
    std::fs::write(
        &cfg,
        format!(
            "model: {{path: {}}}
task: {{name: text, text_files: [{}], max_length: 16}}
optimization: {{learning_rate: 1.0e-3, batch_size: 4, physical_batch_size: 4, steps: 2, seed: 2}}
privacy: {{noise_multiplier: 1.0, max_grad_norm: 1.0, noise_seed: fixed, sampler: fixed_size}}
",
            model.display(),
            text_file.display()
        ),
    )
    .unwrap();
    let out = tmp("text-run");
    let o = dpft(&["train", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read_json(&out.join("summary.json"))["steps"], 2);
    let saved = read_json(&out.join("model/config.json"));
    assert_eq!(saved["model_type"], "qwen2");
    // The saved folder loads again and generates.
    let prompts = tmp("prompts.txt");
    std::fs::write(&prompts, "Differential privacy\nA model\n").unwrap();
    let o = dpft(&[
        "generate",
        "--model",
        out.join("model").to_str().unwrap(),
        "--input",
        prompts.to_str().unwrap(),
        "--num-beams",
        "2",
        "--max-new-tokens",
        "4",
        "--min-length",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 2);
    let texts = tmp("clip.txt");
    std::fs::write(&texts, "A short one.\nThe quick brown fox jumps over the lazy dog.\nNoise is added.\n").unwrap();
    let o = dpft(&[
        "clip-check",
        "--model",
        model.to_str().unwrap(),
        "--data",
        texts.to_str().unwrap(),
        "--dtype",
        "f64",
        "--mode",
        "ghost",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["passed"], true, "{report}");
    let o = dpft(&[
        "bench",
        "--model",
        model.to_str().unwrap(),
        "--batch-size",
        "2",
        "--seq-len",
        "16",
        "--steps",
        "1",
        "--mode",
        "bk",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bench: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(bench["median_step_s"].as_f64().unwrap() > 0.0, "{bench}");
}

#[test]
fn ten_private_lora_steps_lower_smollm2s_loss_on_e2e() {
    let Some(model) = common::smollm2_dir() else { return };
    if models::DataDir::for_tests("e2e").is_none() {
        return;
    }
    let cfg = tmp("smollm2.yaml");
    let config = e2e_config(&model, "{name: lora, rank: 8, alpha: 16}", ", eval_every: 10")
        .replace("steps: 3, checkpoint_every: 2", "steps: 10, checkpoint_every: 0")
        .replace("max_train_examples: 32", "max_train_examples: 256")
        .replace("batch_size: 16, physical_batch_size: 8", "batch_size: 8, physical_batch_size: 8")
        .replace("add_pad_token: true", "add_pad_token: false")
        .replace("noise_multiplier: 1.0", "noise_multiplier: 0.5")
        .replace("num_beams: 2, max_new_tokens: 6", "num_beams: 1, max_new_tokens: 2");
    std::fs::write(&cfg, config).unwrap();
    let out = tmp("smollm2-run");
    let o = dpft(&["train", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let evals: Vec<(u64, f64)> = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter_map(|v| Some((v["step"].as_u64()?, v["eval"]["loss"].as_f64()?)))
        .collect();
    let (first, last) = (evals.first().unwrap(), evals.last().unwrap());
    eprintln!("SmolLM2 E2E eval loss: step {} {:.4} → step {} {:.4}", first.0, first.1, last.0, last.1);
    assert_eq!((first.0, last.0), (0, 10), "{evals:?}");
    assert!(last.1 < first.1, "ten private LoRA steps did not lower the loss: {evals:?}");
}

#[test]
fn models_by_name_come_from_the_local_hugging_face_cache() {
    let Some(model) = tiny("llama-untied") else { return };
    // The cache layout transformers writes: blobs, a snapshot of links to them, refs naming the commit.
    let home = tmp("hf-home");
    let repo = home.join("hub/models--tiny-org--tiny-llama");
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let (blobs, snapshot) = (repo.join("blobs"), repo.join("snapshots").join(commit));
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::create_dir_all(&snapshot).unwrap();
    for (i, file) in ["config.json", "model.safetensors", "tokenizer.json"].iter().enumerate() {
        std::fs::copy(model.join(file), blobs.join(format!("blob{i}"))).unwrap();
        std::os::unix::fs::symlink(format!("../../blobs/blob{i}"), snapshot.join(file)).unwrap();
    }
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    std::fs::write(repo.join("refs/v1"), commit).unwrap();
    let with_home = |args: &[&str]| {
        let data = models::DataDir::for_tests("e2e").unwrap();
        support::command()
            .args(["--device", "cpu", "--data-dir", data.root().to_str().unwrap()])
            .args(args)
            .env("HF_HOME", &home)
            .env("OMP_NUM_THREADS", "1")
            .env_remove("HF_HUB_CACHE")
            .output()
            .unwrap()
    };
    let score = |name: &str| with_home(&["score", "--model", name, "--text", "The cat sat on the mat.", "--json"]);
    let by_path = dpft(&["score", "--model", model.to_str().unwrap(), "--text", "The cat sat on the mat.", "--json"]);
    assert!(by_path.status.success(), "{}", stderr(&by_path));
    for name in ["tiny-org/tiny-llama", "tiny-org/tiny-llama@v1", &format!("tiny-org/tiny-llama@{commit}")] {
        let o = score(name);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        assert_eq!(o.stdout, by_path.stdout, "{name}: the cached snapshot is the same model");
    }
    let o = score("tiny-org/absent");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("models--tiny-org--absent") && stderr(&o).contains("HF_HOME"), "{}", stderr(&o));
    // model.path in a run config, the same way.
    let cfg = tmp("by-name.yaml");
    std::fs::write(
        &cfg,
        e2e_config(Path::new("tiny-org/tiny-llama@v1"), "{name: full}", "").replace("steps: 3", "steps: 1"),
    )
    .unwrap();
    let out = tmp("by-name-run");
    let o = with_home(&["train", cfg.to_str().unwrap(), "--out", out.to_str().unwrap(), "--stop-after-steps", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
}
