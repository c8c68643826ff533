//! The engine on the encoders (RoBERTa with its MLM head read at `<mask>` — the paper's prompt-based
//! classification — and BERT/RoBERTa with classification heads) against the per-example loop in f64
//! (../shared/docs/oracles.md, "Clipping and the DP step"): each example alone and unpadded, autograd,
//! clip, sum. Tolerance 1e-9 relative (norms; clipped sums per tensor against max(own norm, 1e-6 of the
//! whole)). Also: dropout is on in training and off in evaluation.

mod common;

use dp_core::engine::{ClipMode, ClipStyle, Clipper, NormMethod, Tape};
use models::{load_encoder, HeadKind, Inputs, LoadOptions};
use tch::{Device, Kind, Tensor};

fn opts() -> LoadOptions {
    LoadOptions { device: Device::Cpu, kind: Kind::Double }
}

fn check(name: &str, head: HeadKind, prompt: bool) {
    let Some(root) = common::tiny_models() else { return };
    let (model, tok) = load_encoder(&root.join(name), head, &opts()).unwrap();
    let rows: Vec<Vec<i64>> = common::ENCODER_TEXTS
        .iter()
        .map(|t| {
            let text = if prompt { format!("{t} It was <mask>.") } else { t.to_string() };
            tok.encode(&text, true).unwrap()
        })
        .collect();
    let labels = [0i64, 1, 0, 1];
    let trainable = model.trainable();
    assert_eq!(trainable.len(), model.named_parameters().len());
    // The oracle: each example alone.
    let params: Vec<&Tensor> = trainable.iter().map(|(_, t)| t).collect();
    let c = 0.05;
    let mut want: Vec<Tensor> = params.iter().map(|p| p.zeros_like()).collect();
    let mut want_norms = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let loss = common::encoder_losses(&model, &tok, std::slice::from_ref(row), &labels[i..=i], &mut Tape::off())
            .sum(Kind::Double);
        let grads = Tensor::run_backward(&[loss], &params, false, false);
        let norm = grads.iter().map(|g| g.square().sum(Kind::Double).double_value(&[])).sum::<f64>().sqrt();
        for (w, g) in want.iter_mut().zip(&grads) {
            *w += g * (c / norm).min(1.0);
        }
        want_norms.push(norm);
    }
    assert!(want_norms.iter().any(|&n| n > c), "{name}: C should clip");
    let total = want.iter().map(|w| w.square().sum(Kind::Double).double_value(&[])).sum::<f64>().sqrt();
    for mode in [ClipMode::Bk, ClipMode::Ghost, ClipMode::Naive] {
        let mut tape = Tape::on();
        let l = common::encoder_losses(&model, &tok, &rows, &labels, &mut tape);
        let clipper =
            Clipper { max_grad_norm: c, stability: 0.0, mode, norm_method: NormMethod::Auto, style: ClipStyle::Flat };
        let out = clipper.clip(&l, &tape, &trainable).unwrap();
        let norms: Vec<f64> = Vec::try_from(&out.norms).unwrap();
        for (g, w) in norms.iter().zip(&want_norms) {
            assert!((g - w).abs() <= 1e-9 * w, "{name} {mode:?}: norm {g} vs loop {w}");
        }
        for ((n, g), w) in out.grads.iter().zip(&want) {
            let e = (g - w).norm().double_value(&[]) / w.norm().double_value(&[]).max(1e-6 * total);
            assert!(e <= 1e-9, "{name} {mode:?}: {n} relative error {e:e}");
        }
    }
}

#[test]
fn roberta_prompt_based_mlm_is_exact_under_the_engine() {
    check("roberta-mlm", HeadKind::MaskedLm, true);
}

#[test]
fn bert_prompt_based_mlm_is_exact_under_the_engine() {
    check("bert-mlm", HeadKind::MaskedLm, true);
}

#[test]
fn classification_heads_are_exact_under_the_engine() {
    check("roberta-cls", HeadKind::SequenceClassification, false);
    check("bert-cls", HeadKind::SequenceClassification, false);
}

#[test]
fn mean_pooled_head_is_exact_under_the_engine() {
    // The texts differ in length, so the batched pass pads and the mean must skip the padding to match
    // each example alone. bert-cls's trained `classifier` is read; roberta-cls's first-token head is not.
    check("bert-cls", HeadKind::MeanPooledClassification, false);
    check("roberta-cls", HeadKind::MeanPooledClassification, false);
}

#[test]
fn dropout_is_active_in_training_only() {
    let Some(root) = common::tiny_models() else { return };
    let (model, tok) = load_encoder(&root.join("roberta-cls"), HeadKind::SequenceClassification, &opts()).unwrap();
    let ids = Tensor::from_slice(&tok.encode(common::ENCODER_TEXTS[2], true).unwrap()).unsqueeze(0);
    let run = |train: bool| tch::no_grad(|| model.encode(Inputs::ids(&ids), train, &mut Tape::off()).unwrap());
    assert!(run(false).equal(&run(false)), "evaluation is deterministic");
    let (a, b) = (run(true), run(true));
    assert!(!a.equal(&b), "two training passes draw different dropout masks");
    assert!(!a.equal(&run(false)), "training applies dropout");
    let (gpt2, _) = models::load_gpt2(&root.join("gpt2-tied"), &opts()).unwrap();
    let ids = Tensor::from_slice(&[464i64, 6193, 1909, 318]).unsqueeze(0);
    let run = |train: bool| tch::no_grad(|| gpt2.forward(Inputs::ids(&ids), None, train, &mut Tape::off()).unwrap());
    assert!(run(false).equal(&run(false)));
    assert!(!run(true).equal(&run(true)));
}
