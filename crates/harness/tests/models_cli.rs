//! `dpft score`, `dpft generate` and `dpft clip-check` as a user runs them, on the tiny checkpoints of
//! `python/oracles/tiny_models.py`: outputs against transformers' references (score: 1e-5 in f32 against
//! transformers' log-softmax; generate: the same ids as `generate`; clip-check --dump: Opacus to 1e-9 in
//! f64) and the exit codes of bad input.

#[path = "../../models/tests/common/mod.rs"]
mod common;

mod support;

use std::path::Path;

use models::{HeadKind, LoadOptions};
use tch::{Device, Kind, Tensor};

use support::{run as dpft, stderr};

fn tmp(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

#[test]
fn score_matches_transformers_log_probabilities() {
    let Some(root) = common::tiny_models() else { return };
    let dir = root.join("gpt2-tied");
    let r = common::read(&dir.join("reference.safetensors"));
    let text = "The cat sat on the mat."; // SENTENCES[0] of tiny_models.py, the reference's first row
    let out = dpft(&[
        "--device",
        "cpu",
        "score",
        "--model",
        dir.to_str().unwrap(),
        "--text",
        text,
        "--text",
        "Hi there",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = &json[0];
    assert_eq!(first["text"], text);
    let tokens: Vec<i64> = first["tokens"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    let row: Vec<i64> = Vec::try_from(r["input_ids"].get(0)).unwrap();
    assert_eq!(tokens, row[..tokens.len()]);
    let logprobs: Vec<f64> = first["logprobs"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(logprobs.len(), tokens.len() - 1);
    let lp = r["logits_f64"].get(0).log_softmax(-1, Kind::Double);
    for (t, got) in logprobs.iter().enumerate() {
        let want = lp.double_value(&[t as i64, tokens[t + 1]]);
        assert!((got - want).abs() <= 1e-5 * want.abs().max(1.0), "token {t}: {got} vs {want}");
    }
    let nll = first["nll"].as_f64().unwrap();
    assert!((nll + logprobs.iter().sum::<f64>()).abs() < 1e-9);
    assert_eq!(json.as_array().unwrap().len(), 2);
}

#[test]
fn generate_writes_transformers_continuations() {
    let Some(root) = common::tiny_models() else { return };
    let dir = root.join("gpt2-untied");
    let records: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("generate.json")).unwrap()).unwrap();
    let beam5 = records.as_array().unwrap().iter().find(|r| r["name"] == "beam5").expect("beam5 record");
    let (_, tokenizer) = models::load_gpt2(&dir, &LoadOptions { device: Device::Cpu, kind: Kind::Float }).unwrap();
    let prompts: Vec<String> = beam5["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let ids: Vec<i64> = p.as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
            tokenizer.decode(&ids, false).unwrap()
        })
        .collect();
    let input = tmp("generate-prompts.txt");
    std::fs::write(&input, prompts.join("\n") + "\n").unwrap();
    let out_file = tmp("generate-out.txt");
    let _ = std::fs::remove_file(&out_file);
    let out = dpft(&[
        "--device",
        "cpu",
        "generate",
        "--model",
        dir.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--num-beams",
        "5",
        "--max-new-tokens",
        "12",
        "--min-length",
        "0",
        "--batch-size",
        "2",
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<String> = std::fs::read_to_string(&out_file).unwrap().lines().map(String::from).collect();
    let want: Vec<String> = beam5["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let ids: Vec<i64> = o.as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
            tokenizer.decode(&ids, true).unwrap().replace(['\n', '\r'], " ").trim().to_string()
        })
        .collect();
    assert_eq!(lines, want);
}

#[test]
fn clip_check_passes_and_its_dump_equals_opacus() {
    let Some(root) = common::tiny_models() else { return };
    let dir = root.join("gpt2-untied");
    let r = common::read(&dir.join("opacus.safetensors"));
    // The Opacus texts (OPACUS_TEXTS of tiny_models.py), one per line.
    let texts = [
        "A short one.",
        "The quick brown fox jumps over the lazy dog near the river bank.",
        "Private training clips each gradient.",
        "Noise is added to the sum of the clipped gradients before every step.",
    ];
    let data = tmp("clip-check.txt");
    std::fs::write(&data, texts.join("\n") + "\n").unwrap();
    let dump = tmp("clip-check-dump.safetensors");
    let c = r["max_grad_norm"].double_value(&[0]).to_string();
    for mode in ["bk", "ghost", "naive"] {
        let out = dpft(&[
            "--device",
            "cpu",
            "clip-check",
            "--model",
            dir.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--max-grad-norm",
            &c,
            "--mode",
            mode,
            "--dtype",
            "f64",
            "--json",
            "--dump",
            dump.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{mode}: {}", stderr(&out));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["passed"], true);
        assert!(json["max_rel_diff_norms"].as_f64().unwrap() <= 1e-9);
        assert!(json["max_rel_diff_grad"].as_f64().unwrap() <= 1e-9);
        let got = common::read(&dump);
        let norms = &got["per_example_norms"];
        let rel = ((norms - &r["per_example_norms"]).abs() / r["per_example_norms"].abs()).max().double_value(&[]);
        assert!(rel <= 1e-9, "{mode}: norms vs opacus {rel:e}");
        for (name, want) in r.iter().filter(|(n, _)| n.contains("weight") || n.contains("bias")) {
            let g = got.get(name).unwrap_or_else(|| panic!("dump lacks {name}"));
            let e = (g - want).norm().double_value(&[]) / want.norm().double_value(&[]).max(1e-12);
            assert!(e <= 1e-9 || (g - want).norm().double_value(&[]) < 1e-15, "{mode}: {name} {e:e}");
        }
    }
    // f32 passes its own tolerance.
    let out = dpft(&[
        "--device",
        "cpu",
        "clip-check",
        "--model",
        dir.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--dtype",
        "f32",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("PASSED"));
}

#[test]
fn bad_input_exits_2_and_names_the_problem() {
    let Some(root) = common::tiny_models() else { return };
    let gpt2 = root.join("gpt2-tied");
    let gpt2 = gpt2.to_str().unwrap();
    let bert = root.join("bert-mlm");
    let prompts = tmp("prompts-with-gap.txt");
    std::fs::write(&prompts, "first\n\nthird\n").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["score", "--model", "/nonexistent/model", "--text", "x"], "not a model folder"),
        (vec!["generate", "--model", gpt2, "--input", prompts.to_str().unwrap()], "prompts-with-gap.txt:2: empty line"),
        (vec!["generate", "--model", gpt2, "--input", "/nonexistent/prompts.txt"], "cannot read the prompt file"),
        (vec!["score", "--model", bert.to_str().unwrap(), "--text", "x"], "not a causal language model"),
        (vec!["score", "--model", gpt2, "--text", "x", "--dtype", "bf16"], "CUDA only"),
        (
            vec!["clip-check", "--model", gpt2, "--data", prompts.to_str().unwrap(), "--max-grad-norm", "0"],
            "--max-grad-norm 0 must be a positive",
        ),
    ];
    for (args, expect) in cases {
        let mut full = vec!["--device", "cpu"];
        full.extend(args.iter().copied());
        let out = dpft(&full);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(expect), "{args:?}: expected {expect:?} in {}", stderr(&out));
    }
    // An existing --out file is kept when generation fails after the model is loaded (here: 100 new tokens
    // do not fit the tiny model's 64 positions).
    let fine = tmp("fine-prompts.txt");
    std::fs::write(&fine, "The weather today is\n").unwrap();
    let keep = tmp("kept.txt");
    std::fs::write(&keep, "old results\n").unwrap();
    let args = [
        "--device",
        "cpu",
        "generate",
        "--model",
        gpt2,
        "--input",
        fine.to_str().unwrap(),
        "--out",
        keep.to_str().unwrap(),
    ];
    let out = dpft(&args);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("fine-prompts.txt:1: the prompt has 4 tokens"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&keep).unwrap(), "old results\n");
}

/// Loading through the library gives the same model the CLI uses (a smoke check of the public API).
#[test]
fn encoders_load_through_the_public_api() {
    let Some(root) = common::tiny_models() else { return };
    let opts = LoadOptions { device: Device::Cpu, kind: Kind::Float };
    let (model, tok) =
        models::load_encoder(&root.join("roberta-cls"), HeadKind::SequenceClassification, &opts).unwrap();
    let ids = Tensor::from_slice(&tok.encode("fine", true).unwrap()).unsqueeze(0);
    let logits = tch::no_grad(|| {
        let tape = &mut dp_core::engine::Tape::off();
        let h = model.encode(models::Inputs::ids(&ids), false, tape).unwrap();
        model.classification_logits(&h, None, false, tape).unwrap()
    });
    assert_eq!(logits.size(), [1, 3]);
}
