//! Our GPT-2, RoBERTa and BERT against Hugging Face transformers on tiny random checkpoints written by
//! `python/oracles/tiny_models.py` (../shared/docs/oracles.md, "Models"), and the engine on them against
//! Opacus per-sample gradients and the per-example loop.
//!
//! Tolerances: logits and hidden states within 1e-5 (f32) and 1e-10 (f64), as the largest absolute
//! difference over real (unpadded) positions divided by max(1, largest |reference|); generation: equal
//! token ids; clipping: 1e-9 relative (f64); the real MiniLM checkpoint: 1e-4 absolute on hidden states.

mod common;

use std::path::{Path, PathBuf};

use dp_core::engine::{ClipMode, ClipStyle, Clipper, NormMethod, Tape};
use models::clip_check::{causal_batch, clip_check};
use models::generation::{generate, GenerationConfig};
use models::{causal_lm_losses, load_encoder, load_gpt2, HeadKind, Inputs, LoadOptions, ModelError};
use tch::{Device, Kind, Tensor};

const F32_TOL: f64 = 1e-5;
const F64_TOL: f64 = 1e-10;

fn opts(kind: Kind) -> LoadOptions {
    LoadOptions { device: Device::Cpu, kind }
}

/// max |a − b| over positions where `mask` `[B, T]` is 1 (all when `None`), / max(1, max |b|).
fn scaled_diff(a: &Tensor, b: &Tensor, mask: Option<&Tensor>) -> f64 {
    let (a, b) = (a.to_kind(Kind::Double), b.to_kind(Kind::Double));
    let diff = (&a - &b).abs();
    let (diff, reference) = match mask {
        Some(m) => {
            let mut m = m.to_kind(Kind::Double);
            while m.dim() < diff.dim() {
                m = m.unsqueeze(-1);
            }
            (diff * &m, b.abs() * m)
        }
        None => (diff, b.abs()),
    };
    diff.max().double_value(&[]) / reference.max().double_value(&[]).max(1.0)
}

fn fixture(name: &str) -> Option<PathBuf> {
    common::tiny_models().map(|d| d.join(name))
}

#[test]
fn gpt2_logits_match_transformers() {
    let Some(root) = common::tiny_models() else { return };
    for name in ["gpt2-tied", "gpt2-untied"] {
        let dir = root.join(name);
        let r = common::read(&dir.join("reference.safetensors"));
        let (ids, mask) = (&r["input_ids"], &r["attention_mask"]);
        for (kind, key, tol) in [(Kind::Float, "logits_f32", F32_TOL), (Kind::Double, "logits_f64", F64_TOL)] {
            let (model, _) = load_gpt2(&dir, &opts(kind)).unwrap();
            assert_eq!(model.is_tied(), name == "gpt2-tied");
            let logits =
                tch::no_grad(|| model.forward(Inputs::ids(ids).with_mask(mask), None, false, &mut Tape::off()))
                    .unwrap();
            assert_eq!(logits.kind(), kind);
            let e = scaled_diff(&logits, &r[key], Some(mask));
            assert!(e <= tol, "{name} {key}: {e:e} > {tol:e}");
        }
    }
}

#[test]
fn encoder_outputs_match_transformers() {
    let Some(root) = common::tiny_models() else { return };
    for (name, head) in [
        ("roberta-mlm", HeadKind::MaskedLm),
        ("roberta-cls", HeadKind::SequenceClassification),
        ("bert-mlm", HeadKind::MaskedLm),
        ("bert-cls", HeadKind::SequenceClassification),
    ] {
        let dir = root.join(name);
        let r = common::read(&dir.join("reference.safetensors"));
        let (ids, mask) = (&r["input_ids"], &r["attention_mask"]);
        let types = r.get("token_type_ids");
        for (kind, suffix, tol) in [(Kind::Float, "f32", F32_TOL), (Kind::Double, "f64", F64_TOL)] {
            let (model, _) = load_encoder(&dir, head, &opts(kind)).unwrap();
            let (hidden, logits) = tch::no_grad(|| {
                let tape = &mut Tape::off();
                let inputs = Inputs::ids(ids).with_mask(mask);
                let inputs = match types {
                    Some(tt) => inputs.with_token_types(tt),
                    None => inputs,
                };
                let hidden = model.encode(inputs, false, tape).unwrap();
                let logits = match head {
                    HeadKind::MaskedLm => model.mlm_logits(&hidden, tape).unwrap(),
                    HeadKind::SequenceClassification => {
                        model.classification_logits(&hidden, Some(mask), false, tape).unwrap()
                    }
                    HeadKind::MeanPooledClassification => unreachable!("no Hugging Face class has this head"),
                };
                (hidden, logits)
            });
            let e = scaled_diff(&hidden, &r[&format!("hidden_{suffix}")], Some(mask));
            assert!(e <= tol, "{name} hidden_{suffix}: {e:e} > {tol:e}");
            let logit_mask = (head == HeadKind::MaskedLm).then_some(mask);
            let e = scaled_diff(&logits, &r[&format!("logits_{suffix}")], logit_mask);
            assert!(e <= tol, "{name} logits_{suffix}: {e:e} > {tol:e}");
        }
    }
}

#[derive(serde::Deserialize)]
struct GenerateRecord {
    name: String,
    num_beams: usize,
    max_new_tokens: usize,
    min_new_tokens: usize,
    suppress_tokens: Vec<i64>,
    eos_token_id: i64,
    length_penalty: Option<f64>,
    prompts: Vec<Vec<i64>>,
    outputs: Vec<Vec<i64>>,
}

#[test]
fn generation_equals_transformers_generate() {
    let Some(root) = common::tiny_models() else { return };
    for name in ["gpt2-tied", "gpt2-untied"] {
        let dir = root.join(name);
        let records: Vec<GenerateRecord> =
            serde_json::from_str(&std::fs::read_to_string(dir.join("generate.json")).unwrap()).unwrap();
        let (model, _) = load_gpt2(&dir, &opts(Kind::Float)).unwrap();
        for rec in &records {
            let config = GenerationConfig {
                num_beams: rec.num_beams,
                max_new_tokens: rec.max_new_tokens,
                min_new_tokens: rec.min_new_tokens,
                banned_token_ids: rec.suppress_tokens.clone(),
                eos_token_id: Some(rec.eos_token_id),
                length_penalty: rec.length_penalty.unwrap_or(1.0),
                batch_size: 1,
            };
            let alone = generate(&model, &rec.prompts, &config).unwrap();
            assert_eq!(alone, rec.outputs, "{name}/{}: one prompt at a time", rec.name);
            // Batched with left padding: the same ids, and again the same on a second call (deterministic).
            let batched = GenerationConfig { batch_size: rec.prompts.len(), ..config };
            let together = generate(&model, &rec.prompts, &batched).unwrap();
            assert_eq!(together, rec.outputs, "{name}/{}: prompts batched", rec.name);
            assert_eq!(generate(&model, &rec.prompts, &batched).unwrap(), together);
        }
    }
}

/// Rows of a right-padded batch, without the padding.
fn rows(ids: &Tensor, mask: &Tensor) -> Vec<Vec<i64>> {
    let ids: Vec<Vec<i64>> = Vec::try_from(ids).unwrap();
    let mask: Vec<Vec<i64>> = Vec::try_from(mask).unwrap();
    ids.into_iter()
        .zip(mask)
        .map(|(r, m)| r.into_iter().zip(m).filter(|(_, m)| *m == 1).map(|(t, _)| t).collect())
        .collect()
}

#[test]
fn clipped_gradients_equal_opacus_per_sample_gradients() {
    let Some(root) = common::tiny_models() else { return };
    let mut checked = 0;
    for name in ["gpt2-untied", "gpt2-tied"] {
        let path = root.join(name).join("opacus.safetensors");
        if !path.is_file() {
            assert_eq!(name, "gpt2-tied", "the untied reference must exist");
            continue;
        }
        let r = common::read(&path);
        let (model, _) = load_gpt2(&root.join(name), &opts(Kind::Double)).unwrap();
        let batch = rows(&r["input_ids"], &r["attention_mask"]);
        let c = r["max_grad_norm"].double_value(&[0]);
        let want_norms: Vec<f64> = Vec::try_from(&r["per_example_norms"]).unwrap();
        for mode in [ClipMode::Bk, ClipMode::Ghost, ClipMode::Naive] {
            let clipper = Clipper {
                max_grad_norm: c,
                stability: 0.0,
                mode,
                norm_method: NormMethod::Auto,
                style: ClipStyle::Flat,
            };
            let mut tape = Tape::on();
            let (ids, mask, labels) = causal_batch(&batch, 50256, Device::Cpu);
            let logits = model.forward(Inputs::ids(&ids).with_mask(&mask), None, false, &mut tape).unwrap();
            let losses = causal_lm_losses(&logits, &labels).unwrap();
            let out = clipper.clip(&losses, &tape, &model.trainable()).unwrap();
            let norms: Vec<f64> = Vec::try_from(&out.norms).unwrap();
            for (g, w) in norms.iter().zip(&want_norms) {
                assert!((g - w).abs() <= 1e-9 * w, "{name} {mode:?}: norm {g} vs opacus {w}");
            }
            assert!(norms.iter().any(|&n| n > c), "{name}: C = {c} should clip some example");
            let total =
                out.grads.iter().map(|(n, _)| r[n].square().sum(Kind::Double).double_value(&[])).sum::<f64>().sqrt();
            assert_eq!(out.grads.len() + 4, r.len(), "{name}: every trainable tensor is in the reference");
            for (n, g) in &out.grads {
                let want = r.get(n).unwrap_or_else(|| panic!("{name}: opacus reference lacks {n}"));
                let e = (g - want).norm().double_value(&[]) / want.norm().double_value(&[]).max(1e-6 * total);
                assert!(e <= 1e-9, "{name} {mode:?}: {n} relative error {e:e}");
            }
        }
        checked += 1;
    }
    assert!(checked >= 1);
}

#[test]
fn pad_token_and_untied_head_are_exact_under_the_engine() {
    let Some(dir) = fixture("gpt2-tied") else { return };
    let texts = [vec![464i64, 6193, 1909, 318, 257], vec![7454, 2402, 257], vec![5376, 25, 317, 398, 72, 930, 2057]];
    for untie in [false, true] {
        let (mut model, mut tokenizer) = load_gpt2(&dir, &opts(Kind::Double)).unwrap();
        let before = model.wte.weight.detach().copy();
        if untie {
            model.untie_lm_head();
            assert_ne!(model.lm_head.weight.data_ptr(), model.wte.weight.data_ptr());
        }
        let id = model.add_pad_token(&mut tokenizer).unwrap();
        assert_eq!(id, 50257);
        assert_eq!(tokenizer.token_to_id("[PAD]"), Some(id));
        assert!(model.wte.weight.requires_grad());
        assert!(model.add_pad_token(&mut tokenizer).is_err(), "a second [PAD] is refused");
        assert_eq!(tokenizer.encode("a [PAD]", false).unwrap().last(), Some(&id));
        let mean = before.mean_dim([0i64].as_slice(), false, Kind::Double);
        assert!(model.wte.weight.get(id).detach().allclose(&mean, 0.0, 1e-15, false), "the [PAD] row is the mean row");
        assert_eq!(model.is_tied(), !untie);
        if !untie {
            assert_eq!(model.lm_head.weight.data_ptr(), model.wte.weight.data_ptr());
        }
        // Padding with the new id, as the paper's recipe does.
        for mode in [ClipMode::Bk, ClipMode::Ghost, ClipMode::Naive] {
            let clipper = Clipper {
                max_grad_norm: 0.5,
                stability: 0.0,
                mode,
                norm_method: NormMethod::Auto,
                style: ClipStyle::Flat,
            };
            let check = clip_check(&model, &texts, id, &clipper, 1e-6).unwrap();
            assert!(check.max_rel_diff_norms <= 1e-9, "untie={untie} {mode:?}: norms {:e}", check.max_rel_diff_norms);
            assert!(
                check.max_rel_diff_grad <= 1e-9,
                "untie={untie} {mode:?}: {} {:e}",
                check.worst_tensor,
                check.max_rel_diff_grad
            );
        }
    }
}

#[test]
fn minilm_checkpoint_matches_transformers() {
    let Some(root) = common::tiny_models() else { return };
    let dir = common::minilm_dir();
    assert!(dir.is_dir(), "{} missing: `make setup` unpacks the MiniLM checkpoint there", dir.display());
    let r = common::read(&root.join("minilm-reference.safetensors"));
    let (model, tokenizer) = load_encoder(&dir, HeadKind::MaskedLm, &opts(Kind::Float)).unwrap();
    let hidden = tch::no_grad(|| {
        let inputs =
            Inputs::ids(&r["input_ids"]).with_mask(&r["attention_mask"]).with_token_types(&r["token_type_ids"]);
        model.encode(inputs, false, &mut Tape::off())
    })
    .unwrap();
    let mask = &r["attention_mask"];
    let diff = ((&hidden - &r["hidden_f32"]).abs() * mask.unsqueeze(-1).to_kind(Kind::Float)).max().double_value(&[]);
    assert!(diff <= 1e-4, "MiniLM hidden states differ by {diff:e}");
    // The tokenizer (tokenizer.json) gives transformers' ids.
    let first: Vec<i64> = Vec::try_from(r["input_ids"].get(0)).unwrap();
    let n = i64::try_from(mask.get(0).sum(Kind::Int64)).unwrap() as usize;
    assert_eq!(tokenizer.encode(common::MINILM_FIRST_SENTENCE, true).unwrap(), first[..n]);
    // The head was initialised as documented: decoder tied to the word embeddings.
    match &model.head {
        models::EncoderHead::MaskedLm { decoder, .. } => {
            assert_eq!(decoder.weight.data_ptr(), model.word_embeddings.weight.data_ptr())
        }
        _ => panic!("expected an MLM head"),
    }
}

// ----------------------------------------------------------------------------------------------- errors

/// A copy of fixture `name` in a fresh folder, with `edit` applied to its tensors and `files` kept.
fn variant(name: &str, tag: &str, files: &[&str], edit: impl Fn(&mut Vec<(String, Tensor)>)) -> Option<PathBuf> {
    let src = fixture(name)?;
    let dst = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("variant-{name}-{tag}"));
    let _ = std::fs::remove_dir_all(&dst);
    std::fs::create_dir_all(&dst).unwrap();
    for f in files {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    let mut tensors = Tensor::read_safetensors(src.join("model.safetensors")).unwrap();
    edit(&mut tensors);
    Tensor::write_safetensors(&tensors, dst.join("model.safetensors")).unwrap();
    Some(dst)
}

const GPT2_FILES: &[&str] = &["config.json", "tokenizer.json"];

fn load_err(dir: &Path) -> ModelError {
    load_gpt2(dir, &opts(Kind::Float)).err().expect("loading must fail")
}

#[test]
fn missing_and_misshaped_tensors_are_listed_together() {
    let Some(dir) = variant("gpt2-tied", "broken", GPT2_FILES, |t| {
        t.retain(|(n, _)| n != "transformer.h.1.ln_2.bias");
        for (n, x) in t.iter_mut() {
            if n == "transformer.wpe.weight" {
                *x = Tensor::zeros([10, 32], (Kind::Float, Device::Cpu));
            }
        }
        t.push(("transformer.h.7.mlp.c_fc.weight".into(), Tensor::zeros([2], (Kind::Float, Device::Cpu))));
    }) else {
        return;
    };
    let e = load_err(&dir);
    let msg = e.to_string();
    match &e {
        ModelError::Tensors { missing, unexpected, misshaped, .. } => {
            assert_eq!(missing, &["transformer.h.1.ln_2.bias"]);
            assert_eq!(unexpected, &["transformer.h.7.mlp.c_fc.weight"]);
            assert_eq!(misshaped.len(), 1);
            assert_eq!(misshaped[0].name, "transformer.wpe.weight");
            assert_eq!((misshaped[0].found.clone(), misshaped[0].expected.clone()), (vec![10, 32], vec![64, 32]));
        }
        other => panic!("expected a tensor listing, got {other:?}"),
    }
    for part in ["missing (1): transformer.h.1.ln_2.bias", "unexpected (1)", "wrong shape: transformer.wpe.weight"] {
        assert!(msg.contains(part), "message lacks {part:?}: {msg}");
    }
    assert!(e.is_input_error());
}

#[test]
fn unknown_model_type_missing_tokenizer_and_pickle_only_are_refused() {
    let Some(src) = fixture("gpt2-tied") else { return };
    // Unknown model type.
    let dir = variant("gpt2-tied", "gemma", &["tokenizer.json"], |_| {}).unwrap();
    let config = std::fs::read_to_string(src.join("config.json")).unwrap().replace("\"gpt2\"", "\"gemma\"");
    std::fs::write(dir.join("config.json"), config).unwrap();
    let msg = load_err(&dir).to_string();
    assert!(msg.contains("model_type \"gemma\" is not supported"), "{msg}");
    // No tokenizer files.
    let dir = variant("gpt2-tied", "notok", &["config.json"], |_| {}).unwrap();
    let e = load_err(&dir);
    assert!(matches!(e, ModelError::Tokenizer { .. }), "{e:?}");
    assert!(e.to_string().contains("no tokenizer files"), "{e}");
    // Only pytorch_model.bin.
    let dir = variant("gpt2-tied", "pickle", GPT2_FILES, |_| {}).unwrap();
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("pytorch_model.bin"), b"not read").unwrap();
    let e = load_err(&dir);
    assert!(matches!(e, ModelError::MissingWeights { .. }), "{e:?}");
    assert!(e.to_string().contains("save_pretrained"), "{e}");
    // Not a folder; a corrupt safetensors file.
    assert!(matches!(load_err(&dir.join("nope")), ModelError::NotAModel { .. }));
    std::fs::write(dir.join("model.safetensors"), b"garbage").unwrap();
    assert!(matches!(load_err(&dir), ModelError::BadWeights { .. }));
    // An encoder folder where GPT-2 is needed, and bf16 on the CPU.
    let e = load_gpt2(&fixture("bert-mlm").unwrap(), &opts(Kind::Float)).err().unwrap();
    assert!(e.to_string().contains("not a causal language model"), "{e}");
    let e = load_gpt2(&src, &opts(Kind::BFloat16)).err().unwrap();
    assert!(e.to_string().contains("CUDA only"), "{e}");
}

#[test]
fn vocab_and_merges_fallback_equals_tokenizer_json() {
    let Some(src) = fixture("gpt2-tied") else { return };
    let bpe = variant("gpt2-tied", "bpe", &["config.json", "vocab.json", "merges.txt"], |_| {}).unwrap();
    let (_, from_json) = load_gpt2(&src, &opts(Kind::Float)).unwrap();
    let (_, from_bpe) = load_gpt2(&bpe, &opts(Kind::Float)).unwrap();
    for text in ["Hello world, it's 2026!", " name : The Eagle | food : French <|endoftext|>", "naïve café  résumé"]
    {
        let (a, b) = (from_json.encode(text, false).unwrap(), from_bpe.encode(text, false).unwrap());
        assert_eq!(a, b, "{text:?}");
        assert_eq!(from_bpe.decode(&b, false).unwrap(), text);
    }
}

#[test]
fn encoder_tokenizers_give_transformers_ids() {
    let Some(root) = common::tiny_models() else { return };
    // roberta-mlm has vocab.json + merges.txt only (the BPE fallback); bert-mlm has tokenizer.json.
    for name in ["roberta-mlm", "bert-mlm"] {
        let dir = root.join(name);
        let r = common::read(&dir.join("reference.safetensors"));
        let (_, tokenizer) = load_encoder(&dir, HeadKind::MaskedLm, &opts(Kind::Float)).unwrap();
        let want = rows(&r["input_ids"], &r["attention_mask"]);
        for ((first, second), want) in common::ENCODER_EXAMPLES.iter().zip(&want) {
            let got = match second {
                None => tokenizer.encode(first, true).unwrap(),
                Some(s) => {
                    let (ids, types) = tokenizer.encode_pair(first, s).unwrap();
                    if let Some(tt) = r.get("token_type_ids") {
                        let want_types: Vec<i64> = Vec::try_from(tt.get(2)).unwrap();
                        assert_eq!(types, want_types[..types.len()], "{name}: token types");
                    }
                    ids
                }
            };
            assert_eq!(&got, want, "{name}: {first:?}");
        }
        let mask = if name == "roberta-mlm" { "<mask>" } else { "[MASK]" };
        let id = tokenizer.token_to_id(mask).unwrap();
        assert!(
            tokenizer.encode(&format!("It was {mask}."), false).unwrap().contains(&id),
            "{name}: {mask} is one token"
        );
    }
}

#[test]
fn wordpiece_vocab_txt_fallback_equals_tokenizer_json() {
    let Some(src) = fixture("bert-mlm") else { return };
    let files = ["config.json", "vocab.txt", "tokenizer_config.json"];
    let wp = variant("bert-mlm", "wordpiece", &files, |_| {}).unwrap();
    let (_, from_json) = load_encoder(&src, HeadKind::MaskedLm, &opts(Kind::Float)).unwrap();
    let (_, from_vocab) = load_encoder(&wp, HeadKind::MaskedLm, &opts(Kind::Float)).unwrap();
    assert_eq!(from_vocab.source().file_name().unwrap(), "vocab.txt");
    for text in ["Hello World, it's 2026!", "Is the restaurant near the river? [MASK]", "Naïve CAFÉ résumé"] {
        assert_eq!(from_json.encode(text, true).unwrap(), from_vocab.encode(text, true).unwrap(), "{text:?}");
    }
    let pair = ("Is the restaurant near the river?", "Yes, it is by the water.");
    assert_eq!(from_json.encode_pair(pair.0, pair.1).unwrap(), from_vocab.encode_pair(pair.0, pair.1).unwrap());
}

#[test]
fn legacy_layer_norm_names_and_extra_poolers_load() {
    let Some(src) = fixture("bert-mlm") else { return };
    // bert-base-uncased's own files name LayerNorm parameters gamma/beta.
    let legacy = variant("bert-mlm", "gamma", &["config.json", "tokenizer.json"], |t| {
        for (n, _) in t.iter_mut() {
            if let Some(stem) = n.strip_suffix("LayerNorm.weight") {
                *n = format!("{stem}LayerNorm.gamma");
            } else if let Some(stem) = n.strip_suffix("LayerNorm.bias") {
                *n = format!("{stem}LayerNorm.beta");
            }
        }
    })
    .unwrap();
    let encode = |dir: &Path| {
        let (model, tok) = load_encoder(dir, HeadKind::MaskedLm, &opts(Kind::Double)).unwrap();
        let ids = Tensor::from_slice(&tok.encode("The cat sat on the mat.", true).unwrap()).unsqueeze(0);
        tch::no_grad(|| model.encode(Inputs::ids(&ids), false, &mut Tape::off())).unwrap()
    };
    assert!(encode(&legacy).equal(&encode(&src)));
    // A RoBERTa classifier checkpoint that also carries a pooler (unused by RoBERTa's head) loads.
    let with_pooler = variant("roberta-cls", "pooler", &["config.json", "vocab.json", "merges.txt"], |t| {
        let z = || Tensor::zeros([32, 32], (Kind::Float, Device::Cpu));
        t.push(("roberta.pooler.dense.weight".into(), z()));
        t.push(("roberta.pooler.dense.bias".into(), Tensor::zeros([32], (Kind::Float, Device::Cpu))));
    })
    .unwrap();
    load_encoder(&with_pooler, HeadKind::SequenceClassification, &opts(Kind::Float)).unwrap();
    // A tokenizer with more ids than the embedding has rows is refused at load.
    let small = variant("gpt2-tied", "smallvocab", &["tokenizer.json"], |t| {
        for (n, x) in t.iter_mut() {
            if n == "transformer.wte.weight" {
                *x = x.narrow(0, 0, 50000).contiguous();
            }
        }
    })
    .unwrap();
    let config = std::fs::read_to_string(fixture("gpt2-tied").unwrap().join("config.json"))
        .unwrap()
        .replace("\"vocab_size\": 50257", "\"vocab_size\": 50000");
    assert!(config.contains("50000"));
    std::fs::write(small.join("config.json"), config).unwrap();
    let e = load_err(&small);
    assert!(e.to_string().contains("does not belong to this model"), "{e}");
}

#[test]
fn bad_inputs_are_errors_not_crashes() {
    let Some(dir) = fixture("gpt2-tied") else { return };
    let (model, _) = load_gpt2(&dir, &opts(Kind::Float)).unwrap();
    let run = |ids: &Tensor, mask: Option<&Tensor>| {
        let inputs = match mask {
            Some(m) => Inputs::ids(ids).with_mask(m),
            None => Inputs::ids(ids),
        };
        tch::no_grad(|| model.forward(inputs, None, false, &mut Tape::off())).err().map(|e| e.to_string())
    };
    let ids = Tensor::from_slice(&[1i64, 2, 60000]).unsqueeze(0);
    assert!(run(&ids, None).unwrap().contains("input_ids holds 60000 outside [0, 50257)"));
    let ids = Tensor::from_slice(&[1i64, 2, 3]).unsqueeze(0);
    assert!(run(&ids, Some(&Tensor::ones([1, 2], (Kind::Int64, Device::Cpu))))
        .unwrap()
        .contains("attention_mask has shape"));
    assert!(run(&Tensor::zeros([1, 65], (Kind::Int64, Device::Cpu)), None).unwrap().contains("n_positions = 64"));
    assert!(run(&ids, None).is_none());
    let Some(bert) = fixture("bert-cls") else { return };
    let (enc, _) = load_encoder(&bert, HeadKind::SequenceClassification, &opts(Kind::Float)).unwrap();
    let types = Tensor::from_slice(&[0i64, 1, 2]).unsqueeze(0);
    let e =
        tch::no_grad(|| enc.encode(Inputs::ids(&ids).with_token_types(&types), false, &mut Tape::off())).err().unwrap();
    assert!(e.to_string().contains("token_type_ids holds 2 outside [0, 2)"), "{e}");
}
