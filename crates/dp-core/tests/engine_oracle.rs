//! The DP engine against an independent per-example loop in f64 (../shared/docs/oracles.md, "Clipping and
//! the DP step"): for each example alone, backward, flatten all trainable gradients, clip to C, sum.
//! Tolerance: 1e-9 relative (σ = 0, stability constant 0).

use dp_core::engine::{
    ClipMode, ClipStyle, Clipper, Embedding, EngineError, LayerNorm, Linear, NormMethod, Tape, WeightLayout,
};
use tch::{Device, Kind, Tensor};

const D: i64 = 8;
const HEADS: i64 = 2;
const V: i64 = 11;
const T: i64 = 5;

fn param(shape: &[i64], scale: f64) -> Tensor {
    (Tensor::randn(shape, (Kind::Double, Device::Cpu)) * scale).set_requires_grad(true)
}

fn linear(name: &str, p: i64, d: i64, layout: WeightLayout) -> Linear {
    let shape = match layout {
        WeightLayout::OutIn => [d, p],
        WeightLayout::InOut => [p, d],
    };
    Linear { name: name.into(), weight: param(&shape, 0.3), bias: Some(param(&[d], 0.1)), layout }
}

fn layer_norm(name: &str) -> LayerNorm {
    LayerNorm {
        name: name.into(),
        weight: (param(&[D], 0.1) + 1.0).detach().set_requires_grad(true),
        bias: param(&[D], 0.1),
        eps: 1e-5,
    }
}

/// A GPT-2-like model: token and position embeddings, one pre-LN block (causal attention with Conv1D
/// projections, GELU MLP), final LayerNorm and an untied lm_head in torch layout.
struct TinyGpt {
    wte: Embedding,
    wpe: Embedding,
    ln_1: LayerNorm,
    c_attn: Linear,
    attn_proj: Linear,
    ln_2: LayerNorm,
    c_fc: Linear,
    mlp_proj: Linear,
    ln_f: LayerNorm,
    lm_head: Linear,
}

impl TinyGpt {
    fn new() -> Self {
        Self {
            wte: Embedding { name: "wte".into(), weight: param(&[V, D], 0.5), padding_idx: None },
            wpe: Embedding { name: "wpe".into(), weight: param(&[T, D], 0.5), padding_idx: None },
            ln_1: layer_norm("h.0.ln_1"),
            c_attn: linear("h.0.attn.c_attn", D, 3 * D, WeightLayout::InOut),
            attn_proj: linear("h.0.attn.c_proj", D, D, WeightLayout::InOut),
            ln_2: layer_norm("h.0.ln_2"),
            c_fc: linear("h.0.mlp.c_fc", D, 4 * D, WeightLayout::InOut),
            mlp_proj: linear("h.0.mlp.c_proj", 4 * D, D, WeightLayout::InOut),
            ln_f: layer_norm("ln_f"),
            lm_head: Linear {
                name: "lm_head".into(),
                weight: param(&[V, D], 0.3),
                bias: None,
                layout: WeightLayout::OutIn,
            },
        }
    }

    fn trainable(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for e in [&self.wte, &self.wpe] {
            out.push((format!("{}.weight", e.name), e.weight.shallow_clone()));
        }
        for l in [&self.ln_1, &self.ln_2, &self.ln_f] {
            out.push((format!("{}.weight", l.name), l.weight.shallow_clone()));
            out.push((format!("{}.bias", l.name), l.bias.shallow_clone()));
        }
        for l in [&self.c_attn, &self.attn_proj, &self.c_fc, &self.mlp_proj, &self.lm_head] {
            out.push((format!("{}.weight", l.name), l.weight.shallow_clone()));
            if let Some(b) = &l.bias {
                out.push((format!("{}.bias", l.name), b.shallow_clone()));
            }
        }
        out
    }

    /// Per-example loss `[B]`: mean cross-entropy over positions whose label is not −100.
    fn losses(&self, ids: &Tensor, labels: &Tensor, tape: &mut Tape) -> Tensor {
        let (b, t) = (ids.size()[0], ids.size()[1]);
        let positions = Tensor::arange(t, (Kind::Int64, Device::Cpu)).unsqueeze(0).expand([b, t], true); // [B, T]
        let x = self.wte.forward(ids, tape) + self.wpe.forward(&positions, tape);
        let h = self.ln_1.forward(&x, tape);
        let qkv = self.c_attn.forward(&h, tape).split(D, -1); // 3 × [B, T, D]
        let heads = |z: &Tensor| z.reshape([b, t, HEADS, D / HEADS]).transpose(1, 2); // [B, H, T, D/H]
        let (q, k, v) = (heads(&qkv[0]), heads(&qkv[1]), heads(&qkv[2]));
        let scores = q.matmul(&k.transpose(-2, -1)) / ((D / HEADS) as f64).sqrt();
        let causal = Tensor::ones([t, t], (Kind::Bool, Device::Cpu)).triu(1);
        let att = scores.masked_fill(&causal, f64::NEG_INFINITY).softmax(-1, Kind::Double);
        let ctx = att.matmul(&v).transpose(1, 2).reshape([b, t, D]);
        let x = x + self.attn_proj.forward(&ctx, tape);
        let h = self.ln_2.forward(&x, tape);
        let x = x + self.mlp_proj.forward(&self.c_fc.forward(&h, tape).gelu("tanh"), tape);
        let logits = self.lm_head.forward(&self.ln_f.forward(&x, tape), tape); // [B, T, V]
        let logp = logits.log_softmax(-1, Kind::Double);
        let mask = labels.ne(-100);
        let safe = labels.where_self(&mask, &labels.zeros_like());
        let nll = -logp.gather(-1, &safe.unsqueeze(-1), false).squeeze_dim(-1) * mask.to_kind(Kind::Double);
        nll.sum_dim_intlist([1i64].as_slice(), false, None::<Kind>)
            / mask.sum_dim_intlist([1i64].as_slice(), false, Kind::Double)
    }
}

fn batch(b: i64) -> (Tensor, Tensor) {
    let ids = Tensor::randint(V, [b, T], (Kind::Int64, Device::Cpu));
    // Repeat a token inside each sequence so the embedding's same-token cross terms are exercised.
    ids.narrow(1, 3, 1).copy_(&ids.narrow(1, 0, 1));
    let labels = ids.roll([-1i64].as_slice(), [1i64].as_slice());
    let _ = labels.narrow(1, T - 1, 1).fill_(-100);
    let _ = labels.narrow(1, 0, 1).fill_(-100);
    (ids, labels)
}

/// A model's per-example losses `[B]` from (ids, labels), recording on the tape.
type LossFn<'a> = dyn Fn(&Tensor, &Tensor, &mut Tape) -> Tensor + 'a;

/// Per-example loop oracle: for each example alone, backward, norm over all `params`, clip to C, sum.
/// Returns the norms and Σ_i min(1, C/‖g_i‖) g_i per parameter.
fn loop_oracle(
    losses: &LossFn,
    ids: &Tensor,
    labels: &Tensor,
    params: &[(String, Tensor)],
    c: f64,
) -> (Vec<f64>, Vec<Tensor>) {
    let tensors: Vec<&Tensor> = params.iter().map(|(_, t)| t).collect();
    let mut sums: Vec<Tensor> = tensors.iter().map(|t| t.zeros_like()).collect();
    let mut norms = Vec::new();
    for i in 0..ids.size()[0] {
        let loss = losses(&ids.narrow(0, i, 1), &labels.narrow(0, i, 1), &mut Tape::off()).sum(Kind::Double);
        let grads = Tensor::run_backward(&[loss], &tensors, false, false);
        let norm = grads.iter().map(|g| g.square().sum(Kind::Double).double_value(&[])).sum::<f64>().sqrt();
        for (s, g) in sums.iter_mut().zip(&grads) {
            *s += g * (c / norm).min(1.0);
        }
        norms.push(norm);
    }
    (norms, sums)
}

fn oracle(model: &TinyGpt, ids: &Tensor, labels: &Tensor, c: f64) -> (Vec<f64>, Vec<Tensor>) {
    loop_oracle(&|i, l, t| model.losses(i, l, t), ids, labels, &model.trainable(), c)
}

/// Flat clipping in every mode × norm method against the loop oracle: norms to 1e-9 relative, clipped sums
/// to 1e-9 relative per tensor, the tensor's norm floored at 1e-6 of the whole gradient's: a tensor whose
/// exact gradient is zero (the attention key bias: softmax ignores a shift of all keys) is round-off
/// against round-off.
fn assert_every_mode_matches(losses: &LossFn, ids: &Tensor, labels: &Tensor, params: &[(String, Tensor)], c: f64) {
    let (want_norms, want) = loop_oracle(losses, ids, labels, params, c);
    let scale = want.iter().map(|w| w.square().sum(Kind::Double).double_value(&[])).sum::<f64>().sqrt();
    for mode in [ClipMode::Bk, ClipMode::Ghost, ClipMode::Naive] {
        for method in [NormMethod::Ghost, NormMethod::Instantiate, NormMethod::Auto] {
            let mut tape = Tape::on();
            let loss = losses(ids, labels, &mut tape);
            let clipper =
                Clipper { max_grad_norm: c, stability: 0.0, mode, norm_method: method, style: ClipStyle::Flat };
            let out = clipper.clip(&loss, &tape, params).unwrap();
            let norms: Vec<f64> = Vec::<f64>::try_from(&out.norms).unwrap();
            for (g, w) in norms.iter().zip(&want_norms) {
                assert!((g - w).abs() <= 1e-9 * w, "{mode:?}/{method:?}: norm {g} vs {w}");
            }
            for ((name, g), w) in out.grads.iter().zip(&want) {
                let reference = w.norm().double_value(&[]).max(1e-6 * scale);
                let e = (g - w).norm().double_value(&[]) / reference;
                assert!(e <= 1e-9, "{mode:?}/{method:?}: {name} relative error {e:e}");
            }
        }
    }
}

fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).norm().double_value(&[]) / b.norm().double_value(&[]).max(1e-300)
}

fn clip(
    model: &TinyGpt,
    ids: &Tensor,
    labels: &Tensor,
    c: f64,
    mode: ClipMode,
    norm: NormMethod,
) -> Result<dp_core::engine::ClipOutput, EngineError> {
    let mut tape = Tape::on();
    let losses = model.losses(ids, labels, &mut tape);
    let clipper =
        Clipper { max_grad_norm: c, stability: 0.0, mode, norm_method: norm, style: ClipStyle::Flat }.checked()?;
    clipper.clip(&losses, &tape, &model.trainable())
}

#[test]
fn every_mode_and_norm_method_equals_the_per_example_oracle() {
    let model = TinyGpt::new();
    let (ids, labels) = batch(4);
    let (norms, sums) = oracle(&model, &ids, &labels, 0.5);
    assert!(norms.iter().any(|&n| n > 0.5), "C must bind for some example: {norms:?}");
    for mode in [ClipMode::Bk, ClipMode::Ghost, ClipMode::Naive] {
        for method in [NormMethod::Ghost, NormMethod::Instantiate, NormMethod::Auto] {
            let out = clip(&model, &ids, &labels, 0.5, mode, method).unwrap();
            let got: Vec<f64> = Vec::<f64>::try_from(&out.norms).unwrap();
            for (g, w) in got.iter().zip(&norms) {
                assert!((g - w).abs() <= 1e-9 * w, "{mode:?}/{method:?}: norm {g} vs {w}");
            }
            for ((name, g), w) in out.grads.iter().zip(&sums) {
                let e = rel_err(g, w);
                assert!(e <= 1e-9, "{mode:?}/{method:?}: {name} relative error {e:e}");
            }
        }
    }
}

#[test]
fn batch_of_one_clips_to_min_of_norm_and_c() {
    let model = TinyGpt::new();
    let (ids, labels) = batch(1);
    let (norms, _) = oracle(&model, &ids, &labels, f64::INFINITY);
    for c in [norms[0] / 3.0, norms[0] * 3.0] {
        let out = clip(&model, &ids, &labels, c, ClipMode::Bk, NormMethod::Auto).unwrap();
        let total = out.grads.iter().map(|(_, g)| g.square().sum(Kind::Double).double_value(&[])).sum::<f64>().sqrt();
        assert!((total - c.min(norms[0])).abs() <= 1e-9 * total, "{total} vs min({}, {c})", norms[0]);
    }
}

#[test]
fn infinite_c_gives_the_ordinary_gradient() {
    let model = TinyGpt::new();
    let (ids, labels) = batch(3);
    let out = clip(&model, &ids, &labels, f64::INFINITY, ClipMode::Bk, NormMethod::Auto).unwrap();
    let loss = model.losses(&ids, &labels, &mut Tape::off()).sum(Kind::Double);
    let params = model.trainable();
    let tensors: Vec<&Tensor> = params.iter().map(|(_, t)| t).collect();
    let plain = Tensor::run_backward(&[loss], &tensors, false, false);
    for ((name, g), w) in out.grads.iter().zip(&plain) {
        assert!(rel_err(g, w) <= 1e-12, "{name}");
    }
}

#[test]
fn embedding_padding_rows_get_no_gradient_and_match_the_oracle() {
    // A RoBERTa-style embedding with padding_idx 1 followed by a linear head: the padded positions
    // must contribute nothing, in both norm methods.
    let emb =
        Embedding { name: "embeddings.word_embeddings".into(), weight: param(&[V, D], 0.5), padding_idx: Some(1) };
    let head = linear("classifier", D, 3, WeightLayout::OutIn);
    let ids = Tensor::from_slice2(&[[4i64, 7, 4, 1, 1], [2, 1, 9, 9, 3]]);
    let losses_of = |ids: &Tensor, tape: &mut Tape| {
        head.forward(&emb.forward(ids, tape), tape).tanh().sum_dim_intlist([1i64, 2].as_slice(), false, None::<Kind>)
    };
    let trainable = vec![
        ("embeddings.word_embeddings.weight".to_string(), emb.weight.shallow_clone()),
        ("classifier.weight".to_string(), head.weight.shallow_clone()),
        ("classifier.bias".to_string(), head.bias.as_ref().unwrap().shallow_clone()),
    ];
    let tensors: Vec<&Tensor> = trainable.iter().map(|(_, t)| t).collect();
    let mut want_norms = Vec::new();
    for i in 0..2 {
        let loss = losses_of(&ids.narrow(0, i, 1), &mut Tape::off()).sum(Kind::Double);
        let g = Tensor::run_backward(&[loss], &tensors, false, false);
        assert_eq!(g[0].get(1).abs().sum(Kind::Double).double_value(&[]), 0.0, "padding row has a gradient");
        want_norms.push(g.iter().map(|g| g.square().sum(Kind::Double).double_value(&[])).sum::<f64>().sqrt());
    }
    for method in [NormMethod::Ghost, NormMethod::Instantiate] {
        let mut tape = Tape::on();
        let losses = losses_of(&ids, &mut tape);
        let clipper = Clipper {
            max_grad_norm: f64::INFINITY,
            stability: 0.0,
            mode: ClipMode::Bk,
            norm_method: method,
            style: ClipStyle::Flat,
        };
        let out = clipper.clip(&losses, &tape, &trainable).unwrap();
        let got: Vec<f64> = Vec::<f64>::try_from(&out.norms).unwrap();
        for (g, w) in got.iter().zip(&want_norms) {
            assert!((g - w).abs() <= 1e-9 * w, "{method:?}: {g} vs {w}");
        }
    }
}

#[test]
fn errors_name_the_culprit() {
    let model = TinyGpt::new();
    let (ids, labels) = batch(2);
    // Loss not shaped [B].
    let mut tape = Tape::on();
    let losses = model.losses(&ids, &labels, &mut tape);
    let err = Clipper::new(1.0).unwrap().clip(&losses.sum(Kind::Double), &tape, &model.trainable()).unwrap_err();
    assert!(matches!(err, EngineError::LossShape { batch: 2, .. }), "{err}");
    // A broadcast position input ([1, T]) is not per example.
    let mut broadcast_tape = Tape::on();
    let positions = Tensor::arange(T, (Kind::Int64, Device::Cpu)).unsqueeze(0); // [1, T]
    let x = model.wte.forward(&ids, &mut broadcast_tape) + model.wpe.forward(&positions, &mut broadcast_tape);
    let broadcast_losses = x.sum_dim_intlist([1i64, 2].as_slice(), false, None::<Kind>);
    let both = vec![
        ("wte.weight".to_string(), model.wte.weight.shallow_clone()),
        ("wpe.weight".to_string(), model.wpe.weight.shallow_clone()),
    ];
    let err = Clipper::new(1.0).unwrap().clip(&broadcast_losses, &broadcast_tape, &both).unwrap_err();
    assert!(matches!(err, EngineError::NotPerExample { ref layer, batch: 2, .. } if layer == "wpe"), "{err}");
    // Nothing to clip.
    assert!(matches!(Clipper::new(1.0).unwrap().clip(&losses, &tape, &[]), Err(EngineError::Invalid(_))));
    // A trainable variable no layer owns.
    let mut trainable = model.trainable();
    trainable.push(("stray.weight".into(), param(&[3], 1.0)));
    let err = Clipper::new(1.0).unwrap().clip(&losses, &tape, &trainable).unwrap_err();
    assert!(err.to_string().contains("stray.weight"), "{err}");
    // A layer used twice (tied weights without a declaration).
    let mut tape = Tape::on();
    let x = model.wte.forward(&ids, &mut tape);
    let again = model.wte.forward(&ids, &mut tape);
    let losses = (x * again).sum_dim_intlist([1i64, 2].as_slice(), false, None::<Kind>);
    let err = Clipper::new(1.0)
        .unwrap()
        .clip(&losses, &tape, &[("wte.weight".into(), model.wte.weight.shallow_clone())])
        .unwrap_err();
    assert!(matches!(err, EngineError::RecordedTwice(ref l) if l == "wte"), "{err}");
    // A LayerNorm sharing its γ and β with another LayerNorm: no exact cross term, so refused.
    let twin = LayerNorm {
        name: "h.0.ln_2".into(),
        weight: model.ln_1.weight.shallow_clone(),
        bias: model.ln_1.bias.shallow_clone(),
        eps: 1e-5,
    };
    let mut tape = Tape::on();
    let h = twin.forward(&model.ln_1.forward(&model.wte.forward(&ids, &mut tape), &mut tape), &mut tape);
    let losses = h.sum_dim_intlist([1i64, 2].as_slice(), false, None::<Kind>);
    let shared = vec![
        ("wte.weight".to_string(), model.wte.weight.shallow_clone()),
        ("h.0.ln_1.weight".to_string(), model.ln_1.weight.shallow_clone()),
        ("h.0.ln_1.bias".to_string(), model.ln_1.bias.shallow_clone()),
    ];
    let err = Clipper::new(1.0).unwrap().clip(&losses, &tape, &shared).unwrap_err();
    assert!(matches!(err, EngineError::SharedParameter(..)) && err.to_string().contains("untie"), "{err}");
    // NaN per-example norms name the layer.
    let mut tape = Tape::on();
    let losses = model.losses(&ids, &labels, &mut tape) * f64::NAN;
    let err = Clipper::new(1.0).unwrap().clip(&losses, &tape, &model.trainable()).unwrap_err();
    assert!(matches!(err, EngineError::NonFiniteNorm(_)), "{err}");
    // Bad settings.
    assert!(Clipper::new(0.0).is_err() && Clipper::new(-1.0).is_err() && Clipper::new(f64::NAN).is_err());
}

#[test]
fn micro_batches_accumulate_to_the_big_batch() {
    use dp_core::engine::ClippedSum;
    let model = TinyGpt::new();
    let (ids, labels) = batch(4);
    let whole = clip(&model, &ids, &labels, 0.5, ClipMode::Bk, NormMethod::Auto).unwrap();
    let mut acc = ClippedSum::zeros(&model.trainable());
    for (start, len) in [(0, 1), (1, 3)] {
        let part = clip(
            &model,
            &ids.narrow(0, start, len),
            &labels.narrow(0, start, len),
            0.5,
            ClipMode::Bk,
            NormMethod::Auto,
        )
        .unwrap();
        acc.add(part).unwrap();
    }
    assert_eq!(acc.examples(), 4);
    for ((name, a), (_, w)) in acc.sums().iter().zip(&whole.grads) {
        assert!(rel_err(a, w) <= 1e-12, "{name}");
    }
    let d = acc.diagnostics(0.5, 1.0);
    let norms: Vec<f64> = Vec::<f64>::try_from(&whole.norms).unwrap();
    let clipped = norms.iter().filter(|&&n| n > 0.5).count() as f64 / 4.0;
    assert_eq!(d.clipped_fraction, clipped);
    assert!((d.norm_max - norms.iter().cloned().fold(0.0, f64::max)).abs() < 1e-12);
}

#[test]
fn release_records_the_sampler_event_and_stops_before_the_budget() {
    use dp_core::accounting::{AccountantKind, Accountants, History, Sampling};
    use dp_core::engine::{release, BatchSampler, Budget, ClippedSum, GaussianNoise, NoiseSeed};
    let model = TinyGpt::new();
    let sampler = BatchSampler::poisson(100, 0.1, [5; 32]).unwrap();
    // An empty Poisson batch (zero sums) still releases noise.
    let noise = GaussianNoise::new(NoiseSeed::Fixed([1; 32]));
    let mut history = History::new();
    let accountants = Accountants::default();
    let budget = Budget { epsilon: 3.0, delta: 1e-5, accountant: AccountantKind::Rdp };
    let out = release(
        ClippedSum::zeros(&model.trainable()),
        &noise,
        1.0,
        0.5,
        &sampler,
        1,
        &mut history,
        Some((&budget, &accountants)),
    )
    .unwrap();
    assert_eq!(history.steps(), 1);
    assert_eq!(history.events()[0].sampling, Sampling::Poisson { sample_rate: 0.1 });
    assert_eq!(history.events()[0].noise_multiplier, 1.0);
    // Zero sum: the release is pure noise with std σC / (q·n) = 0.5 / 10.
    let all = Tensor::cat(&out.iter().map(|(_, t)| t.reshape([-1])).collect::<Vec<_>>(), 0);
    let std = all.std(true).double_value(&[]);
    assert!((std - 0.05).abs() < 0.05 * 5.0 / (2.0 * all.numel() as f64).sqrt(), "{std}");
    // A step that would exceed the budget is refused and leaves the ledger unchanged.
    let tight = Budget { epsilon: 1e-3, ..budget };
    let err = release(
        ClippedSum::zeros(&model.trainable()),
        &noise,
        1.0,
        0.5,
        &sampler,
        2,
        &mut history,
        Some((&tight, &accountants)),
    )
    .unwrap_err();
    assert!(matches!(err, EngineError::BudgetExceeded { step: 2, .. }), "{err}");
    assert_eq!(history.steps(), 1);
    // The CLT approximation may not enforce a budget.
    let gdp = Budget { accountant: AccountantKind::Gdp, ..budget };
    let err = release(
        ClippedSum::zeros(&model.trainable()),
        &noise,
        1.0,
        0.5,
        &sampler,
        2,
        &mut history,
        Some((&gdp, &accountants)),
    )
    .unwrap_err();
    assert!(err.to_string().contains("gdp"), "{err}");
    assert_eq!(history.steps(), 1);
}

/// Oracle for per-layer and automatic clipping: per example, per parameter gradients, grouped by layer.
fn oracle_style(model: &TinyGpt, ids: &Tensor, labels: &Tensor, c: f64, style: ClipStyle, gamma: f64) -> Vec<Tensor> {
    let params = model.trainable();
    let tensors: Vec<&Tensor> = params.iter().map(|(_, t)| t).collect();
    let layer_of = |name: &str| name.rsplit_once('.').unwrap().0.to_string();
    let mut layers: Vec<String> = params.iter().map(|(n, _)| layer_of(n)).collect();
    layers.dedup();
    let mut sums: Vec<Tensor> = tensors.iter().map(|t| t.zeros_like()).collect();
    for i in 0..ids.size()[0] {
        let loss = model.losses(&ids.narrow(0, i, 1), &labels.narrow(0, i, 1), &mut Tape::off()).sum(Kind::Double);
        let grads = Tensor::run_backward(&[loss], &tensors, false, false);
        let sq: Vec<f64> = grads.iter().map(|g| g.square().sum(Kind::Double).double_value(&[])).collect();
        let total = sq.iter().sum::<f64>().sqrt();
        for (k, ((name, _), g)) in params.iter().zip(&grads).enumerate() {
            let factor = match style {
                ClipStyle::Automatic => c / (total + gamma),
                ClipStyle::PerLayer => {
                    let layer = layer_of(name);
                    let layer_norm: f64 = params
                        .iter()
                        .zip(&sq)
                        .filter(|((n, _), _)| layer_of(n) == layer)
                        .map(|(_, s)| s)
                        .sum::<f64>()
                        .sqrt();
                    (c / (layers.len() as f64).sqrt() / (layer_norm + gamma)).min(1.0)
                }
                ClipStyle::Flat => unreachable!("flat has its own oracle"),
            };
            sums[k] += g * factor;
        }
    }
    sums
}

#[test]
fn per_layer_and_automatic_clipping_equal_their_oracles() {
    let model = TinyGpt::new();
    let (ids, labels) = batch(3);
    for (style, gamma) in [(ClipStyle::PerLayer, 0.0), (ClipStyle::Automatic, 0.01)] {
        let want = oracle_style(&model, &ids, &labels, 0.5, style, gamma);
        for mode in [ClipMode::Bk, ClipMode::Naive] {
            let mut tape = Tape::on();
            let losses = model.losses(&ids, &labels, &mut tape);
            let clipper = Clipper { max_grad_norm: 0.5, stability: gamma, mode, norm_method: NormMethod::Auto, style };
            let out = clipper.checked().unwrap().clip(&losses, &tape, &model.trainable()).unwrap();
            for ((name, g), w) in out.grads.iter().zip(&want) {
                let e = rel_err(g, w);
                assert!(e <= 1e-9, "{style:?}/{mode:?}: {name} relative error {e:e}");
            }
        }
    }
    let ghost_per_layer = Clipper {
        max_grad_norm: 0.5,
        stability: 0.0,
        mode: ClipMode::Ghost,
        norm_method: NormMethod::Auto,
        style: ClipStyle::PerLayer,
    };
    assert!(ghost_per_layer.checked().is_err());
    let automatic_without_gamma = Clipper {
        max_grad_norm: 0.5,
        stability: 0.0,
        mode: ClipMode::Bk,
        norm_method: NormMethod::Auto,
        style: ClipStyle::Automatic,
    };
    assert!(automatic_without_gamma.checked().is_err());
}

#[test]
fn ownership_is_checked_when_the_model_is_built() {
    use dp_core::engine::{check_ownership, DpLayer};
    let model = TinyGpt::new();
    let layers: Vec<&dyn DpLayer> = vec![
        &model.wte,
        &model.wpe,
        &model.ln_1,
        &model.c_attn,
        &model.attn_proj,
        &model.ln_2,
        &model.c_fc,
        &model.mlp_proj,
        &model.ln_f,
        &model.lm_head,
    ];
    check_ownership(&layers, &model.trainable()).unwrap();
    let mut stray = model.trainable();
    stray.push(("transformer.extra".into(), param(&[2], 1.0)));
    assert!(matches!(check_ownership(&layers, &stray), Err(EngineError::Uncovered(ref n)) if n == "transformer.extra"));
    // wte tied to lm_head is exact (see `tied_embedding_and_lm_head_are_exact`); two LayerNorms are not.
    let tied = Linear {
        name: "lm_head".into(),
        weight: model.wte.weight.shallow_clone(),
        bias: None,
        layout: WeightLayout::OutIn,
    };
    check_ownership(&[&model.wte, &tied], &[]).unwrap();
    let twin =
        LayerNorm { name: "twin".into(), weight: model.ln_1.weight.shallow_clone(), bias: param(&[D], 0.1), eps: 1e-5 };
    let err = check_ownership(&[&model.ln_1, &twin], &[]).unwrap_err();
    assert!(err.to_string().contains("untie"), "{err}");
}

/// A RoBERTa-like encoder: word and position embeddings with padding index 1 (positions offset past the
/// padding index, as RoBERTa does), LayerNorm, bidirectional attention that masks padded keys, output
/// projection, LayerNorm, and a classifier on the first token. All linear layers in torch layout.
struct TinyRoberta {
    word: Embedding,
    position: Embedding,
    ln_emb: LayerNorm,
    query: Linear,
    key: Linear,
    value: Linear,
    output: Linear,
    ln_out: LayerNorm,
    classifier: Linear,
}

impl TinyRoberta {
    fn new() -> Self {
        Self {
            word: Embedding {
                name: "embeddings.word_embeddings".into(),
                weight: param(&[V, D], 0.5),
                padding_idx: Some(1),
            },
            position: Embedding {
                name: "embeddings.position_embeddings".into(),
                weight: param(&[T + 2, D], 0.5),
                padding_idx: Some(1),
            },
            ln_emb: layer_norm("embeddings.LayerNorm"),
            query: linear("encoder.layer.0.attention.self.query", D, D, WeightLayout::OutIn),
            key: linear("encoder.layer.0.attention.self.key", D, D, WeightLayout::OutIn),
            value: linear("encoder.layer.0.attention.self.value", D, D, WeightLayout::OutIn),
            output: linear("encoder.layer.0.attention.output.dense", D, D, WeightLayout::OutIn),
            ln_out: layer_norm("encoder.layer.0.attention.output.LayerNorm"),
            classifier: linear("classifier", D, 3, WeightLayout::OutIn),
        }
    }

    fn layers(&self) -> Vec<&dyn dp_core::engine::DpLayer> {
        vec![
            &self.word,
            &self.position,
            &self.ln_emb,
            &self.query,
            &self.key,
            &self.value,
            &self.output,
            &self.ln_out,
            &self.classifier,
        ]
    }

    fn trainable(&self) -> Vec<(String, Tensor)> {
        self.layers().iter().flat_map(|l| l.parameters()).collect()
    }

    fn losses(&self, ids: &Tensor, labels: &Tensor, tape: &mut Tape) -> Tensor {
        let (b, t) = (ids.size()[0], ids.size()[1]);
        let keep = ids.ne(1); // [B, T]
        let positions = keep.to_kind(Kind::Int64).cumsum(1, Kind::Int64) * keep.to_kind(Kind::Int64) + 1; // pads → 1
        let x = self.ln_emb.forward(&(self.word.forward(ids, tape) + self.position.forward(&positions, tape)), tape);
        let heads = |z: &Tensor| z.reshape([b, t, HEADS, D / HEADS]).transpose(1, 2);
        let (q, k, v) = (
            heads(&self.query.forward(&x, tape)),
            heads(&self.key.forward(&x, tape)),
            heads(&self.value.forward(&x, tape)),
        );
        let scores = q.matmul(&k.transpose(-2, -1)) / ((D / HEADS) as f64).sqrt();
        let masked = keep.logical_not().reshape([b, 1, 1, t]);
        let att = scores.masked_fill(&masked, f64::NEG_INFINITY).softmax(-1, Kind::Double);
        let ctx = att.matmul(&v).transpose(1, 2).reshape([b, t, D]);
        let h = self.ln_out.forward(&(self.output.forward(&ctx, tape) + &x), tape);
        let logits = self.classifier.forward(&h.select(1, 0), tape); // [B, 3]
        -logits.log_softmax(-1, Kind::Double).gather(1, &labels.unsqueeze(1), false).squeeze_dim(1)
    }
}

#[test]
fn roberta_like_block_with_padding_equals_the_oracle_in_every_mode() {
    let model = TinyRoberta::new();
    dp_core::engine::check_ownership(&model.layers(), &model.trainable()).unwrap();
    let ids = Tensor::from_slice2(&[[0i64, 5, 7, 5, 2], [0, 9, 2, 1, 1], [0, 4, 4, 8, 2]]);
    let labels = Tensor::from_slice(&[0i64, 2, 1]);
    assert_every_mode_matches(&|i, l, t| model.losses(i, l, t), &ids, &labels, &model.trainable(), 0.3);
}

#[test]
fn tied_embedding_and_lm_head_are_exact() {
    // GPT-2's default: lm_head.weight is wte.weight. The per-example norm needs the cross term
    // 2⟨∇E_i^emb, ∇E_i^head⟩; every mode and norm method must match the per-example loop.
    let mut model = TinyGpt::new();
    model.lm_head.weight = model.wte.weight.shallow_clone();
    let (ids, labels) = batch(3);
    let params: Vec<(String, Tensor)> = model.trainable().into_iter().filter(|(n, _)| n != "lm_head.weight").collect();
    assert_every_mode_matches(&|i, l, t| model.losses(i, l, t), &ids, &labels, &params, 0.5);
    let c = 0.5;
    // Per-layer clipping cannot place the tied variable in one layer: refused.
    let mut tape = Tape::on();
    let losses = model.losses(&ids, &labels, &mut tape);
    let per_layer = Clipper {
        max_grad_norm: c,
        stability: 0.0,
        mode: ClipMode::Bk,
        norm_method: NormMethod::Auto,
        style: ClipStyle::PerLayer,
    };
    assert!(matches!(per_layer.clip(&losses, &tape, &params), Err(EngineError::Invalid(_))));
}

/// RMSNorm (the Llama family's normalisation, γ only) between an embedding and a head, twice (so that the
/// second norm's input depends on the first's γ), against the loop oracle in every mode and norm method.
#[test]
fn rms_norm_equals_the_per_example_oracle() {
    use dp_core::engine::RmsNorm;
    tch::manual_seed(11);
    let rms = |name: &str| RmsNorm {
        name: name.into(),
        weight: (param(&[D], 0.2) + 1.0).detach().set_requires_grad(true),
        eps: 1e-5,
    };
    let wte = Embedding { name: "embed_tokens".into(), weight: param(&[V, D], 0.5), padding_idx: None };
    let (norm_1, up, norm_2) =
        (rms("layers.0.input_layernorm"), linear("layers.0.mlp.up_proj", D, D, WeightLayout::OutIn), rms("norm"));
    let head = linear("lm_head", D, V, WeightLayout::OutIn);
    let losses = |ids: &Tensor, labels: &Tensor, tape: &mut Tape| {
        let x = wte.forward(ids, tape);
        let h = &x + up.forward(&norm_1.forward(&x, tape), tape).silu();
        let logits = head.forward(&norm_2.forward(&h, tape), tape);
        let (b, t) = (ids.size()[0], ids.size()[1]);
        let nll = logits
            .reshape([-1, V])
            .cross_entropy_loss::<Tensor>(&labels.reshape([-1]), None, tch::Reduction::None, -100, 0.0)
            .reshape([b, t]);
        let mask = labels.ne(-100).to_kind(Kind::Double);
        nll.sum_dim_intlist([1i64].as_slice(), false, Kind::Double)
            / mask.sum_dim_intlist([1i64].as_slice(), false, Kind::Double)
    };
    let mut params = Vec::new();
    for l in [&norm_1 as &dyn dp_core::engine::DpLayer, &norm_2] {
        params.extend(l.parameters());
    }
    for l in [&wte as &dyn dp_core::engine::DpLayer, &up, &head] {
        params.extend(l.parameters());
    }
    let (ids, labels) = batch(4);
    assert_every_mode_matches(&losses, &ids, &labels, &params, 0.5);
}
