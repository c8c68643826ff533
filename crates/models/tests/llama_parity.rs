//! The Llama family (Llama with GQA, tied; Llama with head_dim ≠ d/H, biases and Llama 3 rope scaling,
//! untied; Qwen2 with one key/value head and q/k/v biases; Mistral without a sliding window) against Hugging Face transformers on tiny random
//! checkpoints written by `python/oracles/tiny_llama.py`, and the engine on them against the per-example
//! f64 loop for every method.
//!
//! Tolerances: logits within 1e-10 (f64) and 1e-5 (f32) of transformers', as the largest absolute
//! difference over real positions divided by max(1, largest |reference|); generation: equal token ids;
//! clipping: per-example norms and clipped sums within 1e-9 relative (f64), in bk, ghost and naive.

mod common;

use std::path::PathBuf;

use dp_core::engine::{ClipMode, ClipStyle, Clipper, NormMethod};
use models::clip_check::clip_check;
use models::generation::{generate, GenerationConfig};
use models::{load_causal, CausalMethod, CausalModel, Inputs, LoadOptions};
use tch::{Device, Kind, Tensor};

const NAMES: [&str; 4] = ["llama-tied", "llama-untied", "qwen2", "mistral"];

fn opts(kind: Kind) -> LoadOptions {
    LoadOptions { device: Device::Cpu, kind }
}

fn fixture(name: &str) -> Option<PathBuf> {
    common::tiny_llamas().map(|d| d.join(name))
}

/// max |a − b| over the positions where `mask` is 1, / max(1, max |b| there).
fn scaled_diff(a: &Tensor, b: &Tensor, mask: &Tensor) -> f64 {
    let m = mask.to_kind(Kind::Double).unsqueeze(-1);
    let (a, b) = (a.to_kind(Kind::Double), b.to_kind(Kind::Double));
    let diff = ((&a - &b).abs() * &m).max().double_value(&[]);
    diff / (b.abs() * m).max().double_value(&[]).max(1.0)
}

#[test]
fn logits_match_transformers() {
    for name in NAMES {
        let Some(dir) = fixture(name) else { return };
        let r = common::read(&dir.join("reference.safetensors"));
        let (ids, mask) = (&r["input_ids"], &r["attention_mask"]);
        let positions = Tensor::arange(ids.size()[1], (Kind::Int64, Device::Cpu)).unsqueeze(0).expand_as(ids);
        for (kind, key, tol) in [(Kind::Double, "logits_f64", 1e-10), (Kind::Float, "logits_f32", 1e-5)] {
            let (model, _) = load_causal(&dir, &opts(kind)).unwrap();
            let inputs = Inputs::ids(ids).with_mask(mask).with_positions(&positions);
            let logits = model.forward(inputs, None, false, &mut dp_core::engine::Tape::off()).unwrap();
            let d = scaled_diff(&logits, &r[key], mask);
            eprintln!("{name} {kind:?}: logits within {d:e} of transformers");
            assert!(d <= tol, "{name} {kind:?}: logits differ by {d:e} (tolerance {tol:e})");
        }
    }
}

#[derive(serde::Deserialize)]
struct Record {
    name: String,
    prompts: Vec<Vec<i64>>,
    outputs: Vec<Vec<i64>>,
    num_beams: usize,
    max_new_tokens: usize,
    #[serde(default)]
    length_penalty: Option<f64>,
}

#[test]
fn generation_equals_transformers_generate() {
    for name in NAMES {
        let Some(dir) = fixture(name) else { return };
        let records: Vec<Record> =
            serde_json::from_str(&std::fs::read_to_string(dir.join("generate.json")).unwrap()).unwrap();
        let (model, _) = load_causal(&dir, &opts(Kind::Float)).unwrap();
        for rec in &records {
            let config = GenerationConfig {
                num_beams: rec.num_beams,
                max_new_tokens: rec.max_new_tokens,
                min_new_tokens: 0,
                banned_token_ids: Vec::new(),
                eos_token_id: Some(50256),
                length_penalty: rec.length_penalty.unwrap_or(1.0),
                batch_size: 1,
            };
            let alone = generate(model.as_ref(), &rec.prompts, &config).unwrap();
            assert_eq!(alone, rec.outputs, "{name}/{}: one prompt at a time", rec.name);
            let batched = GenerationConfig { batch_size: rec.prompts.len(), ..config };
            assert_eq!(
                generate(model.as_ref(), &rec.prompts, &batched).unwrap(),
                rec.outputs,
                "{name}/{}: batched",
                rec.name
            );
        }
    }
}

/// Texts of different lengths (right-padded in the engine's batch), as token ids.
fn texts(model: &dyn CausalModel) -> Vec<Vec<i64>> {
    let v = model.vocab_size();
    [7usize, 12, 4, 9]
        .iter()
        .enumerate()
        .map(|(i, &n)| (0..n).map(|t| ((i * 977 + t * 131 + 5) as i64) % v).collect())
        .collect()
}

/// Moves every parameter off its initialisation (LoRA's B = 0, RGP's zero carriers' weights) so that a
/// dropped gradient path cannot pass.
fn jiggle(model: &dyn CausalModel) {
    tch::manual_seed(7);
    tch::no_grad(|| {
        for (_, t) in model.named_parameters() {
            let _ = t.shallow_clone().g_add_(&(t.randn_like() * 0.05));
        }
    });
}

#[test]
fn the_engine_equals_the_per_example_loop_for_every_method() {
    let methods = [
        ("full", CausalMethod::Full),
        ("lora", CausalMethod::Lora { rank: 2, alpha: 4.0, targets: Vec::new() }),
        (
            "lora-all",
            CausalMethod::Lora {
                rank: 2,
                alpha: 4.0,
                targets: vec!["k_proj".into(), "o_proj".into(), "down_proj".into()],
            },
        ),
        ("top1", CausalMethod::TopK(1)),
        ("prefix", CausalMethod::Prefix { length: 3, mid_dim: 8 }),
        ("rgp", CausalMethod::Rgp(1)),
    ];
    for name in NAMES {
        let Some(dir) = fixture(name) else { return };
        for (label, method) in &methods {
            let (mut model, _) = load_causal(&dir, &opts(Kind::Double)).unwrap();
            tch::manual_seed(0);
            model.apply_method(method).unwrap();
            jiggle(model.as_ref());
            model.prepare_step();
            let texts = texts(model.as_ref());
            for mode in [ClipMode::Bk, ClipMode::Ghost, ClipMode::Naive] {
                let clipper = Clipper {
                    max_grad_norm: 0.5,
                    stability: 1e-6,
                    mode,
                    norm_method: NormMethod::Auto,
                    style: ClipStyle::Flat,
                }
                .checked()
                .unwrap();
                let check = clip_check(model.as_ref(), &texts, 50256, &clipper, 1e-6).unwrap();
                assert!(
                    check.max_rel_diff_norms <= 1e-9,
                    "{name} {label} {mode:?}: norms {:e}",
                    check.max_rel_diff_norms
                );
                assert!(
                    check.max_rel_diff_grad <= 1e-9,
                    "{name} {label} {mode:?}: clipped sum {:e} at {}",
                    check.max_rel_diff_grad,
                    check.worst_tensor
                );
            }
        }
    }
}
