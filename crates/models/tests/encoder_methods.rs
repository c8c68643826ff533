//! Fine-tuning methods on the encoders (LoRA on `query`/`value`, top-k layers): trainable-parameter
//! counts on the roberta-base config, checked against numbers computed by hand from its shapes; the
//! engine against the per-example loop in f64 (../shared/docs/oracles.md, "Clipping and the DP step":
//! each example alone and unpadded, autograd over the trainable tensors, clip, sum; tolerance 1e-9
//! relative, clipped sums per tensor against max(own norm, 1e-6 of the whole)), as in encoder_dp.rs;
//! frozen tensors bit-identical after optimizer steps; invalid arguments refused.

mod common;

use dp_core::engine::{ClipMode, ClipStyle, Clipper, DpOptimizer, LrSchedule, NormMethod, OptimizerKind, Tape};
use models::{from_config, load_encoder, AnyModel, EncoderHead, EncoderModel, HeadKind, LoadOptions};
use models::{ModelError, TextTokenizer};
use tch::{Device, Kind, Tensor};

/// roberta-base's config.json (the keys `from_config` reads), two labels for the classification head.
const ROBERTA_BASE: &str = r#"{"model_type": "roberta", "vocab_size": 50265, "hidden_size": 768,
  "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
  "max_position_embeddings": 514, "type_vocab_size": 1, "pad_token_id": 1, "layer_norm_eps": 1e-5,
  "hidden_act": "gelu", "num_labels": 2}"#;

/// A two-layer encoder for the argument checks (no data directory needed).
const TINY_ROBERTA: &str = r#"{"model_type": "roberta", "vocab_size": 100, "hidden_size": 8,
  "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 16,
  "max_position_embeddings": 20, "type_vocab_size": 1, "pad_token_id": 1, "layer_norm_eps": 1e-5}"#;

fn count(params: &[(String, Tensor)]) -> i64 {
    params.iter().map(|(_, t)| t.numel() as i64).sum()
}

/// The encoder of `config` (JSON, written to CARGO_TARGET_TMPDIR as `file`), randomly initialised.
fn encoder(file: &str, config: &str, head: HeadKind, kind: Kind) -> EncoderModel {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(file);
    std::fs::write(&path, config).unwrap();
    let opts = LoadOptions { device: Device::Cpu, kind };
    let AnyModel::Encoder(model) = from_config(&path, head, &opts, 0).unwrap() else { panic!("not an encoder") };
    *model
}

#[test]
fn trainable_counts_on_the_roberta_base_config() {
    let base = |head| encoder("roberta-base-config.json", ROBERTA_BASE, head, Kind::Float);
    // By hand, d = 768, V = 50265, 514 positions, 1 token type, inner 3072:
    // layer = query, key, value, attention.output.dense 4 × (768·768 + 768) + attention LayerNorm 2·768
    //       + intermediate 768·3072 + 3072 + output.dense 3072·768 + 768 + output LayerNorm 2·768
    //       = 7,087,872;
    // MLM head = dense 768·768 + 768 + layer_norm 2·768 + bias 50265 = 642,393 (decoder weight = wte);
    // classification head = dense 768·768 + 768 + out_proj 768·2 + 2 = 592,130;
    // full = word 50265·768 + position 514·768 + token type 768 + LayerNorm 2·768 + 12 layers + head
    //      = 124,697,433 (MLM) and 124,647,170 (classification), Hugging Face's counts for roberta-base.
    let layer = 4 * (768 * 768 + 768) + 2 * 768 + 768 * 3072 + 3072 + 3072 * 768 + 768 + 2 * 768;
    assert_eq!(layer, 7_087_872);
    let mlm_head = 768 * 768 + 768 + 2 * 768 + 50265;
    assert_eq!(mlm_head, 642_393);
    let cls_head = 768 * 768 + 768 + 768 * 2 + 2;
    assert_eq!(cls_head, 592_130);
    let embeddings = 50265 * 768 + 514 * 768 + 768 + 2 * 768;

    let mut mlm = base(HeadKind::MaskedLm);
    assert_eq!(count(&mlm.trainable()), embeddings + 12 * layer + mlm_head);
    assert_eq!(count(&mlm.trainable()), 124_697_433);
    // top2, MLM head: two layers + lm_head dense, layer_norm and bias (not the tied decoder weight).
    mlm.train_only_top_layers(2).unwrap();
    assert_eq!(count(&mlm.trainable()), 2 * layer + mlm_head);
    assert_eq!(count(&mlm.trainable()), 14_818_137);
    assert!(mlm.trainable().iter().all(|(n, _)| n.starts_with("roberta.encoder.layer.10.")
        || n.starts_with("roberta.encoder.layer.11.")
        || n.starts_with("lm_head.")));
    assert!(!mlm.word_embeddings.weight.requires_grad(), "the tied decoder weight stays frozen");
    drop(mlm);

    let mut cls = base(HeadKind::SequenceClassification);
    assert_eq!(count(&cls.trainable()), embeddings + 12 * layer + cls_head);
    assert_eq!(count(&cls.trainable()), 124_647_170);
    cls.train_only_top_layers(2).unwrap();
    assert_eq!(count(&cls.trainable()), 2 * layer + cls_head);
    assert_eq!(count(&cls.trainable()), 14_767_874);
    // top_k = 0 under a classification head: the head alone (linear probing), 768·768 + 768 + 768·2 + 2.
    cls.train_only_top_layers(0).unwrap();
    assert_eq!(count(&cls.trainable()), cls_head);
    assert_eq!(count(&cls.trainable()), 592_130);
    assert!(cls.trainable().iter().all(|(n, _)| n.starts_with("classifier.")), "{:?}", cls.trainable());
    drop(cls);

    // LoRA rank 4 on query and value, MLM head: 12 layers × 2 projections × (A 4·768 + B 768·4) = 147,456,
    // nothing else.
    let mut lora = base(HeadKind::MaskedLm);
    lora.add_lora(4, 8.0).unwrap();
    assert_eq!(count(&lora.trainable()), 12 * 2 * (4 * 768 + 768 * 4));
    assert_eq!(count(&lora.trainable()), 147_456);
    assert!(lora.trainable().iter().all(|(n, _)| n.contains(".lora_A.") || n.contains(".lora_B.")));
    drop(lora);
    // With the classification head, the head trains too: 147,456 + 592,130 = 739,586.
    let mut lora = base(HeadKind::SequenceClassification);
    lora.add_lora(4, 8.0).unwrap();
    assert_eq!(count(&lora.trainable()), 12 * 2 * (4 * 768 + 768 * 4) + cls_head);
    assert_eq!(count(&lora.trainable()), 739_586);
}

#[test]
fn invalid_arguments_are_refused() {
    let mut model = encoder("tiny-roberta-config.json", TINY_ROBERTA, HeadKind::MaskedLm, Kind::Float);
    let all = count(&model.trainable());
    for k in [0, 3] {
        match model.train_only_top_layers(k) {
            // Under the masked-LM head 0 is refused too: the head alone is a classification head's option.
            Err(ModelError::Invalid(m)) => assert!(m.contains("1..=2"), "the message names the range: {m}"),
            other => panic!("top_k = {k}: expected an error, got {other:?}"),
        }
    }
    match model.add_lora(0, 8.0) {
        Err(ModelError::Invalid(m)) => assert!(m.contains("rank 0"), "{m}"),
        other => panic!("rank 0: expected an error, got {other:?}"),
    }
    // Refused calls change nothing.
    assert_eq!(count(&model.trainable()), all);
    assert!(model.layers.iter().all(|l| l.query_lora.is_none() && l.value_lora.is_none()));
    model.add_lora(2, 4.0).unwrap();
    assert!(model.add_lora(2, 4.0).is_err(), "LoRA is added once");
}

fn opts() -> LoadOptions {
    LoadOptions { device: Device::Cpu, kind: Kind::Double }
}

/// The tokenised examples: with the prompt `It was <mask>.` under the MLM head.
fn examples(model: &EncoderModel, tok: &TextTokenizer) -> Vec<Vec<i64>> {
    let prompt = matches!(model.head, EncoderHead::MaskedLm { .. });
    common::ENCODER_TEXTS
        .iter()
        .map(|t| {
            let text = if prompt { format!("{t} It was <mask>.") } else { t.to_string() };
            tok.encode(&text, true).unwrap()
        })
        .collect()
}

const LABELS: [i64; 4] = [0, 1, 0, 1];

/// The oracle: each example alone and unpadded, autograd over `model.trainable()`. Returns the
/// per-example gradients (in `trainable` order) and norms.
fn per_example(model: &EncoderModel, tok: &TextTokenizer) -> (Vec<Vec<Tensor>>, Vec<f64>) {
    let trainable = model.trainable();
    let params: Vec<&Tensor> = trainable.iter().map(|(_, t)| t).collect();
    let mut grads = Vec::new();
    let mut norms = Vec::new();
    for (i, row) in examples(model, tok).iter().enumerate() {
        let loss = common::encoder_losses(model, tok, std::slice::from_ref(row), &LABELS[i..=i], &mut Tape::off())
            .sum(Kind::Double);
        let g = Tensor::run_backward(&[loss], &params, false, false);
        norms.push(g.iter().map(|g| g.square().sum(Kind::Double).double_value(&[])).sum::<f64>().sqrt());
        grads.push(g);
    }
    (grads, norms)
}

/// A clipper with threshold `c`, no stability constant.
fn clipper(c: f64, mode: ClipMode) -> Clipper {
    Clipper { max_grad_norm: c, stability: 0.0, mode, norm_method: NormMethod::Auto, style: ClipStyle::Flat }
}

/// The engine's norms and clipped sums equal the loop's for every clip mode, with C between the
/// smallest and the largest per-example norm (so that it clips some examples and not others). Returns
/// the names of the clipped gradients.
fn engine_matches_loop(what: &str, model: &EncoderModel, tok: &TextTokenizer) -> Vec<String> {
    let trainable = model.trainable();
    let (grads, want_norms) = per_example(model, tok);
    let (lo, hi) = want_norms.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &n| (lo.min(n), hi.max(n)));
    assert!(lo > 0.0 && lo < hi, "{what}: per-example norms {want_norms:?}");
    let c = (lo * hi).sqrt();
    let mut want: Vec<Tensor> = trainable.iter().map(|(_, p)| p.zeros_like()).collect();
    for (g, n) in grads.iter().zip(&want_norms) {
        for (w, g) in want.iter_mut().zip(g) {
            *w = &*w + g * (c / n).min(1.0);
        }
    }
    let total = want.iter().map(|w| w.square().sum(Kind::Double).double_value(&[])).sum::<f64>().sqrt();
    let rows = examples(model, tok);
    let mut names = Vec::new();
    for mode in [ClipMode::Bk, ClipMode::Ghost, ClipMode::Naive] {
        let mut tape = Tape::on();
        let l = common::encoder_losses(model, tok, &rows, &LABELS, &mut tape);
        let out = clipper(c, mode).clip(&l, &tape, &trainable).unwrap();
        let norms: Vec<f64> = Vec::try_from(&out.norms).unwrap();
        for (g, w) in norms.iter().zip(&want_norms) {
            assert!((g - w).abs() <= 1e-9 * w, "{what} {mode:?}: norm {g} vs loop {w}");
        }
        assert_eq!(out.grads.len(), want.len());
        for ((n, g), w) in out.grads.iter().zip(&want) {
            let e = (g - w).norm().double_value(&[]) / w.norm().double_value(&[]).max(1e-6 * total);
            assert!(e <= 1e-9, "{what} {mode:?}: {n} relative error {e:e}");
        }
        names = out.grads.into_iter().map(|(n, _)| n).collect();
    }
    names
}

/// Head parameter names (MLM heads of both families, classification heads, BERT's pooler).
fn is_head(name: &str) -> bool {
    name.starts_with("lm_head.")
        || name.starts_with("cls.predictions.")
        || name.starts_with("classifier")
        || name.starts_with("bert.pooler.")
}

/// The tiny checkpoints with their heads.
const CHECKPOINTS: [(&str, HeadKind); 5] = [
    ("roberta-mlm", HeadKind::MaskedLm),
    ("roberta-cls", HeadKind::SequenceClassification),
    ("bert-mlm", HeadKind::MaskedLm),
    ("bert-cls", HeadKind::SequenceClassification),
    ("bert-cls", HeadKind::MeanPooledClassification),
];

/// `name` with LoRA of rank 2, its B factors set to random non-zero values (B = 0 would leave A without
/// gradient).
fn with_lora(root: &std::path::Path, name: &str, head: HeadKind) -> (EncoderModel, TextTokenizer) {
    let (mut model, tok) = load_encoder(&root.join(name), head, &opts()).unwrap();
    tch::manual_seed(5);
    model.add_lora(2, 4.0).unwrap();
    for l in &model.layers {
        for lora in [&l.query_lora, &l.value_lora] {
            let b = &lora.as_ref().unwrap().lora_b.weight;
            tch::no_grad(|| b.shallow_clone().copy_(&(Tensor::randn(b.size(), (Kind::Double, Device::Cpu)) * 0.3)));
        }
    }
    (model, tok)
}

#[test]
fn lora_is_exact_under_the_engine() {
    let Some(root) = common::tiny_models() else { return };
    for (name, head) in CHECKPOINTS {
        let (model, tok) = with_lora(root, name, head);
        let names = engine_matches_loop(&format!("{name} lora"), &model, &tok);
        let lora = names.iter().filter(|n| n.contains(".lora_A.") || n.contains(".lora_B.")).count();
        // 2 layers × (query, value) × (A, B).
        assert_eq!(lora, 8, "{name}: {names:?}");
        match head {
            HeadKind::MaskedLm => assert_eq!(lora, names.len(), "{name}: only the LoRA factors train: {names:?}"),
            HeadKind::SequenceClassification => {
                assert!(names.iter().all(|n| n.contains(".lora_") || is_head(n)), "{name}: {names:?}");
                assert_eq!(names.len() - lora, 4, "{name}: the classification head's two weights and biases");
            }
            HeadKind::MeanPooledClassification => {
                assert!(names.iter().all(|n| n.contains(".lora_") || n.starts_with("classifier")), "{name}: {names:?}");
                assert_eq!(names.len() - lora, 2, "{name}: the mean-pooled head's one weight and bias");
            }
        }
    }
}

#[test]
fn top_k_is_exact_under_the_engine() {
    let Some(root) = common::tiny_models() else { return };
    for (name, head) in CHECKPOINTS {
        let (mut model, tok) = load_encoder(&root.join(name), head, &opts()).unwrap();
        model.train_only_top_layers(1).unwrap();
        let names = engine_matches_loop(&format!("{name} top1"), &model, &tok);
        assert!(names.iter().all(|n| n.contains("encoder.layer.1.") || is_head(n)), "{name}: {names:?}");
        assert!(names.iter().any(|n| n.contains("encoder.layer.1.")), "{name}: {names:?}");
        assert!(!model.word_embeddings.weight.requires_grad(), "{name}: the tied decoder weight is frozen");
        if head == HeadKind::MaskedLm {
            assert!(names.iter().any(|n| n.ends_with("decoder.bias") || n.ends_with("predictions.bias")));
        }
    }
}

/// Three Adam steps on the clipped sums: frozen tensors stay bit-identical, trainable ones change.
fn frozen_stay_put(what: &str, model: &EncoderModel, tok: &TextTokenizer) {
    let before: Vec<(String, Tensor, bool)> =
        model.named_parameters().into_iter().map(|(n, t)| (n, t.detach().copy(), t.requires_grad())).collect();
    let trainable = model.trainable();
    let mut opt = DpOptimizer::new(OptimizerKind::Adam, 1e-2, LrSchedule::Constant, 0).unwrap();
    let rows = examples(model, tok);
    for _ in 0..3 {
        let mut tape = Tape::on();
        let l = common::encoder_losses(model, tok, &rows, &LABELS, &mut tape);
        let out = clipper(0.1, ClipMode::Bk).clip(&l, &tape, &trainable).unwrap();
        opt.step(&trainable, &out.grads).unwrap();
    }
    let after = model.named_parameters();
    assert_eq!(after.len(), before.len());
    for ((n, now), (m, then, trains)) in after.iter().zip(&before) {
        assert_eq!(n, m);
        // The key bias adds q·b_k to every score of a query, which softmax ignores: its gradient is 0 in
        // exact arithmetic (rounding noise only), so whether Adam moves it says nothing.
        if !*trains {
            assert!(now.equal(then), "{what}: frozen {n} changed");
        } else if !n.ends_with(".attention.self.key.bias") {
            assert!(!now.equal(then), "{what}: trainable {n} did not change");
        }
    }
}

#[test]
fn frozen_tensors_are_bit_identical_after_private_steps() {
    let Some(root) = common::tiny_models() else { return };
    for (name, head) in CHECKPOINTS {
        let (model, tok) = with_lora(root, name, head);
        frozen_stay_put(&format!("{name} lora"), &model, &tok);
        let (mut model, tok) = load_encoder(&root.join(name), head, &opts()).unwrap();
        model.train_only_top_layers(1).unwrap();
        frozen_stay_put(&format!("{name} top1"), &model, &tok);
    }
}
