//! Fine-tuning methods on GPT-2: trainable-parameter counts on the gpt2 (small) config, checked against
//! numbers computed by hand from its shapes.

mod common;

use models::{from_config, AnyModel, HeadKind, LoadOptions};
use tch::{Device, Kind, Tensor};

const GPT2_SMALL: &str = r#"{"model_type": "gpt2", "vocab_size": 50257, "n_positions": 1024, "n_embd": 768,
  "n_layer": 12, "n_head": 12}"#;

fn count(params: &[(String, tch::Tensor)]) -> i64 {
    params.iter().map(|(_, t)| t.numel() as i64).sum()
}

#[test]
fn trainable_counts_on_the_gpt2_config() {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("gpt2-small-config.json");
    std::fs::write(&path, GPT2_SMALL).unwrap();
    let opts = LoadOptions { device: Device::Cpu, kind: Kind::Float };
    let AnyModel::Gpt2(mut model) = from_config(&path, HeadKind::MaskedLm, &opts, 0).unwrap() else { panic!() };
    // By hand, d = 768, V = 50257, 1024 positions, inner 3072:
    // block = ln_1 2·768 + c_attn 768·2304 + 2304 + attn c_proj 768·768 + 768 + ln_2 2·768
    //       + c_fc 768·3072 + 3072 + mlp c_proj 3072·768 + 768 = 7,087,872;
    // full (tied head) = wte 50257·768 + wpe 1024·768 + 12 blocks + ln_f 2·768 = 124,439,808.
    let block = 2 * 768 + 768 * 2304 + 2304 + 768 * 768 + 768 + 2 * 768 + 768 * 3072 + 3072 + 3072 * 768 + 768;
    assert_eq!(block, 7_087_872);
    assert_eq!(count(&model.trainable()), 124_439_808);
    assert_eq!(count(&model.trainable()), 50257 * 768 + 1024 * 768 + 12 * block + 2 * 768);
    // top2: two blocks and ln_f.
    model.train_only_top_layers(2).unwrap();
    assert_eq!(count(&model.trainable()), 14_177_280);
    assert!(model.trainable().iter().all(|(n, _)| n.starts_with("transformer.h.10.")
        || n.starts_with("transformer.h.11.")
        || n.starts_with("transformer.ln_f.")));
    assert!(model.train_only_top_layers(13).is_err());
    // LoRA rank 4 on c_attn: 12 × (A 4·768 + B 2304·4) = 147,456, nothing else.
    let AnyModel::Gpt2(mut lora) = from_config(&path, HeadKind::MaskedLm, &opts, 0).unwrap() else { panic!() };
    lora.add_lora(4, 8.0).unwrap();
    assert_eq!(count(&lora.trainable()), 12 * (4 * 768 + 2304 * 4));
    assert_eq!(count(&lora.trainable()), 147_456);
    // Prefix-tuning, L = 10, mid 512 (the paper's): prefix.wte 10·768 = 7,680; control_trans.0 768·512 + 512
    // = 393,728; control_trans.2 512·(2·12·768 = 18,432) + 18,432 = 9,455,616; total 9,857,024 (the prefix it
    // produces, 10·2·12·768 = 184,320 numbers, is a function of these).
    let AnyModel::Gpt2(mut prefix) = from_config(&path, HeadKind::MaskedLm, &opts, 0).unwrap() else { panic!() };
    prefix.add_prefix(10, 512).unwrap();
    assert_eq!(count(&prefix.trainable()), 10 * 768 + (768 * 512 + 512) + (512 * 18_432 + 18_432));
    assert_eq!(count(&prefix.trainable()), 9_857_024);
    assert!(prefix.trainable().iter().all(|(n, _)| n.starts_with("prefix.")));
    // RGP rank 1: carriers L [p, 1] and R [1, d] of c_attn (2304 + 768), attn c_proj (768 + 768), c_fc
    // (3072 + 768), mlp c_proj (768 + 3072) = 12,288 per block, 147,456 in all, privatised; the optimizer
    // updates the four matrices: 768·2304 + 768·768 + 768·3072 + 3072·768 = 7,077,888 per block, 84,934,656.
    let AnyModel::Gpt2(mut rgp) = from_config(&path, HeadKind::MaskedLm, &opts, 0).unwrap() else { panic!() };
    rgp.add_rgp(1).unwrap();
    assert_eq!(count(&rgp.trainable()), 12 * ((2304 + 768) + (768 + 768) + (3072 + 768) + (768 + 3072)));
    assert_eq!(count(&rgp.trainable()), 147_456);
    assert_eq!(count(&rgp.updated_parameters()), 12 * (768 * 2304 + 768 * 768 + 768 * 3072 + 3072 * 768));
    assert_eq!(count(&rgp.updated_parameters()), 84_934_656);
    assert!(rgp.trainable().iter().all(|(n, _)| n.contains(".rgp_L.") || n.contains(".rgp_R.")));
    // An untied head adds V·d when it trains (full).
    let AnyModel::Gpt2(mut model) = from_config(&path, HeadKind::MaskedLm, &opts, 0).unwrap() else { panic!() };
    model.untie_lm_head();
    assert_eq!(count(&model.trainable()), 124_439_808 + 50257 * 768);
}

#[test]
fn lora_is_exact_under_the_engine() {
    use dp_core::engine::{ClipMode, ClipStyle, Clipper, NormMethod};
    let Some(root) = common::tiny_models() else { return };
    let opts = LoadOptions { device: Device::Cpu, kind: Kind::Double };
    let (mut model, _) = models::load_gpt2(&root.join("gpt2-untied"), &opts).unwrap();
    tch::manual_seed(5);
    model.add_lora(2, 4.0).unwrap();
    // B starts at zero (and with it A's gradient): give it values so that both factors are exercised.
    for block in &model.h {
        let b = &block.c_attn_lora.as_ref().unwrap().lora_b.weight;
        tch::no_grad(|| b.shallow_clone().copy_(&(Tensor::randn(b.size(), (Kind::Double, Device::Cpu)) * 0.3)));
    }
    let texts = [vec![464i64, 6193, 1909, 318, 257], vec![7454, 2402, 257], vec![5376, 25, 317, 398, 72, 930, 2057]];
    for mode in [ClipMode::Bk, ClipMode::Ghost, ClipMode::Naive] {
        let clipper =
            Clipper { max_grad_norm: 0.5, stability: 0.0, mode, norm_method: NormMethod::Auto, style: ClipStyle::Flat };
        let check = models::clip_check::clip_check(&model, &texts, 50256, &clipper, 1e-6).unwrap();
        assert!(check.max_rel_diff_norms <= 1e-9 && check.max_rel_diff_grad <= 1e-9, "{mode:?}: {check:?}");
        assert!(check.grads.iter().all(|(n, _)| n.contains("lora_")), "only LoRA factors train");
    }
}

/// The tiny untied GPT-2 fixture in f64 (`None` when the data directory lacks the tokenizers).
fn tiny_gpt2(kind: Kind) -> Option<models::Gpt2LmHeadModel> {
    let root = common::tiny_models()?;
    Some(models::load_gpt2(&root.join("gpt2-untied"), &LoadOptions { device: Device::Cpu, kind }).unwrap().0)
}

const TEXTS: [&[i64]; 3] = [&[464, 6193, 1909, 318, 257], &[7454, 2402, 257], &[5376, 25, 317, 398, 72, 930, 2057]];

fn texts() -> Vec<Vec<i64>> {
    TEXTS.iter().map(|t| t.to_vec()).collect()
}

/// max |a − b| over positions where `mask` is 1, / max(1, max |b|).
fn scaled_diff(a: &Tensor, b: &Tensor, mask: &Tensor) -> f64 {
    let m = mask.to_kind(Kind::Double).unsqueeze(-1);
    let diff = ((a - b).abs() * &m).max().double_value(&[]);
    diff / (b.abs() * m).max().double_value(&[]).max(1.0)
}

/// Sets the prefix's parameters so that it produces exactly `kv` (`key.N`/`value.N` `[H, L, h]`):
/// wte rows e_l, control_trans.0 = identity (hidden tanh(1)·e_l), control_trans.2 columns P_l / tanh(1).
fn set_prefix(model: &models::Gpt2LmHeadModel, kv: &std::collections::HashMap<String, Tensor>) {
    let p = model.prefix.as_ref().unwrap();
    let (l, n_layer) = (p.length, model.config.n_layer);
    let d = model.config.n_embd;
    let mid = p.control_trans_0.weight.size()[0];
    let parts: Vec<&Tensor> =
        (0..n_layer).flat_map(|i| [&kv[&format!("key.{i}")], &kv[&format!("value.{i}")]]).collect();
    let big = Tensor::stack(&parts, 0).permute([2, 0, 1, 3]).reshape([l, -1]); // [L, 2·n_layer·d]
    let mut w2 = Tensor::zeros([2 * n_layer * d, mid], (Kind::Double, Device::Cpu));
    w2.narrow(1, 0, l).copy_(&(big.transpose(0, 1) / 1f64.tanh()));
    tch::no_grad(|| {
        p.wte.weight.shallow_clone().copy_(&Tensor::eye_m(l, d, (Kind::Double, Device::Cpu)));
        p.control_trans_0.weight.shallow_clone().copy_(&Tensor::eye_m(mid, d, (Kind::Double, Device::Cpu)));
        let _ = p.control_trans_0.bias.as_ref().unwrap().shallow_clone().zero_();
        p.control_trans_2.weight.shallow_clone().copy_(&w2);
        let _ = p.control_trans_2.bias.as_ref().unwrap().shallow_clone().zero_();
    });
    let _ = &mut w2;
}

#[test]
fn prefix_attention_matches_transformers() {
    // transformers fed the same keys/values as a cache (python/oracles/tiny_models.py,
    // prefix-reference.safetensors); f64, 1e-10 of max(1, max |logit|) on real positions.
    let Some(mut model) = tiny_gpt2(Kind::Double) else { return };
    let r = common::read(&common::tiny_models().unwrap().join("gpt2-untied/prefix-reference.safetensors"));
    model.add_prefix(3, 8).unwrap();
    set_prefix(&model, &r);
    let (ids, mask) = (&r["input_ids"], &r["attention_mask"]);
    for on in [false, true] {
        // Tape off: computed once and broadcast; tape on: per example, as in private training.
        let mut tape = if on { dp_core::engine::Tape::on() } else { dp_core::engine::Tape::off() };
        let logits = model.forward(models::Inputs::ids(ids).with_mask(mask), None, false, &mut tape).unwrap();
        let e = scaled_diff(&logits, &r["logits_f64"], mask);
        assert!(e <= 1e-10, "tape on = {on}: {e:e}");
    }
    // A prefix without its values is a different function: the check can fail.
    let AnyModel::Gpt2(_) = AnyModel::Gpt2(Box::new(tiny_gpt2(Kind::Double).unwrap())) else { panic!() };
    let mut other = tiny_gpt2(Kind::Double).unwrap();
    other.add_prefix(3, 8).unwrap();
    let logits = other
        .forward(models::Inputs::ids(ids).with_mask(mask), None, false, &mut dp_core::engine::Tape::off())
        .unwrap();
    assert!(scaled_diff(&logits, &r["logits_f64"], mask) > 1e-3);
}

#[test]
fn prefix_cache_equals_one_pass() {
    // Incremental decoding (prefix enters at the first call, then lives in the cache) gives the logits of
    // one pass over the whole text; n_positions counts the prefix.
    let Some(mut model) = tiny_gpt2(Kind::Double) else { return };
    tch::manual_seed(3);
    model.add_prefix(4, 16).unwrap();
    let ids = Tensor::from_slice(TEXTS[2]).unsqueeze(0);
    let mut off = dp_core::engine::Tape::off();
    let whole = model.forward(models::Inputs::ids(&ids), None, false, &mut off).unwrap();
    let mut cache = models::KvCache::default();
    let first = model.forward(models::Inputs::ids(&ids.narrow(1, 0, 3)), Some(&mut cache), false, &mut off).unwrap();
    assert_eq!(cache.len(), 3, "the cache counts text positions only");
    let mut parts = vec![first];
    for t in 3..ids.size()[1] {
        parts
            .push(model.forward(models::Inputs::ids(&ids.narrow(1, t, 1)), Some(&mut cache), false, &mut off).unwrap());
    }
    let steps = Tensor::cat(&parts, 1);
    let diff = (&steps - &whole).abs().max().double_value(&[]);
    assert!(diff <= 1e-10, "{diff:e}");
    let room = model.config.n_positions - 4;
    let long = Tensor::zeros([1, room + 1], (Kind::Int64, Device::Cpu));
    let err = model.forward(models::Inputs::ids(&long), None, false, &mut off).unwrap_err().to_string();
    assert!(err.contains("less the prefix"), "{err}");
}

#[test]
fn topk_prefix_and_rgp_are_exact_under_the_engine() {
    // (full: hf_parity.rs against Opacus; lora: above; retrain is full on a fresh draw.)
    use dp_core::engine::{ClipMode, ClipStyle, Clipper, NormMethod};
    for method in ["topk", "prefix", "rgp"] {
        let Some(mut model) = tiny_gpt2(Kind::Double) else { return };
        tch::manual_seed(11);
        match method {
            "topk" => model.train_only_top_layers(1).unwrap(),
            "prefix" => model.add_prefix(3, 8).unwrap(),
            _ => model.add_rgp(2).unwrap(),
        }
        for mode in [ClipMode::Bk, ClipMode::Ghost, ClipMode::Naive] {
            let clipper = Clipper {
                max_grad_norm: 0.5,
                stability: 0.0,
                mode,
                norm_method: NormMethod::Auto,
                style: ClipStyle::Flat,
            };
            let check = models::clip_check::clip_check(&model, &texts(), 50256, &clipper, 1e-6).unwrap();
            assert!(
                check.max_rel_diff_norms <= 1e-9 && check.max_rel_diff_grad <= 1e-9,
                "{method} {mode:?}: {check:?}"
            );
            assert!(check.per_example_norms.iter().all(|&n| n > 0.5), "{method}: clipping binds");
            let only = |n: &str| match method {
                "topk" => n.starts_with("transformer.h.1.") || n.starts_with("transformer.ln_f."),
                "prefix" => n.starts_with("prefix."),
                _ => n.contains(".rgp_"),
            };
            assert!(check.grads.iter().all(|(n, _)| only(n)), "{method}: only its parameters train");
        }
    }
}

/// The plain gradient of the mean loss over `texts()` for the tensors `params`.
fn plain_grads(model: &models::Gpt2LmHeadModel, params: &[(String, Tensor)]) -> Vec<Tensor> {
    let losses = models::clip_check::batch_losses(model, &texts(), 50256, &mut dp_core::engine::Tape::off()).unwrap();
    let p: Vec<&Tensor> = params.iter().map(|(_, t)| t).collect();
    Tensor::run_backward(&[losses.mean(None::<Kind>)], &p, false, false)
}

fn rel(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).norm().double_value(&[]) / b.norm().double_value(&[])
}

#[test]
fn rgp_reconstruction_in_closed_form() {
    // Full rank (r = min(p, d) = 32 for every matrix of the tiny model), no noise, no clipping: the
    // reconstruction ∂L R + L ∂R − L Lᵀ ∂L R is the ordinary gradient (one of L Lᵀ, RᵀR is the identity).
    let Some(mut full) = tiny_gpt2(Kind::Double) else { return };
    let Some(plain) = tiny_gpt2(Kind::Double) else { return };
    tch::manual_seed(1);
    full.add_rgp(32).unwrap();
    let carriers = full.trainable();
    let g: Vec<(String, Tensor)> = carriers.iter().map(|(n, _)| n.clone()).zip(plain_grads(&full, &carriers)).collect();
    let rebuilt = full.reconstruct_gradients(g).unwrap();
    let weights: Vec<(String, Tensor)> = rebuilt
        .iter()
        .map(|(n, _)| plain.named_parameters().into_iter().find(|(m, _)| m == n).expect("same names"))
        .collect();
    for ((name, got), want) in rebuilt.iter().zip(plain_grads(&plain, &weights)) {
        let e = rel(got, &want);
        assert!(e <= 1e-10, "{name}: {e:e}");
    }
    assert!(full.add_rgp(33).is_err(), "a second RGP, and a rank above min(p, d), are refused");

    // Rank 1 after a rank-1 update W = W₀ + u vᵀ: power iteration on Δ = u vᵀ gives L = ±u/‖u‖,
    // R = ±vᵀ/‖v‖; the reconstruction is the projection ∂W − (I − LLᵀ) ∂W (I − RᵀR) of the ordinary
    // gradient (∂W in torch orientation [p, d]; GPT-2's Conv1D stores its transpose).
    let Some(mut model) = tiny_gpt2(Kind::Double) else { return };
    model.add_rgp(1).unwrap();
    let w = model.h[0].c_fc.weight.shallow_clone(); // [32, 128] = Wᵀ
    let u = Tensor::randn([128], (Kind::Double, Device::Cpu));
    let v = Tensor::randn([32], (Kind::Double, Device::Cpu));
    tch::no_grad(|| w.shallow_clone().copy_(&(&w + v.outer(&u) * 0.01)));
    model.prepare_step();
    let r = &model.h[0].rgp.as_ref().unwrap().c_fc;
    let (l, rr) = (r.left.weight.reshape([-1]), r.right.weight.reshape([-1]));
    let cos = |a: &Tensor, b: &Tensor| (a.dot(b) / (a.norm() * b.norm())).double_value(&[]).abs();
    assert!((cos(&l, &u) - 1.0).abs() <= 1e-12 && (cos(&rr, &v) - 1.0).abs() <= 1e-12);
    assert!((l.norm().double_value(&[]) - 1.0).abs() <= 1e-12 && (rr.norm().double_value(&[]) - 1.0).abs() <= 1e-12);
    let carriers = model.trainable();
    let g: Vec<(String, Tensor)> =
        carriers.iter().map(|(n, _)| n.clone()).zip(plain_grads(&model, &carriers)).collect();
    let rebuilt = model.reconstruct_gradients(g).unwrap();
    let (_, got) = rebuilt.iter().find(|(n, _)| n == "transformer.h.0.mlp.c_fc.weight").unwrap();
    let _ = model.h[0].c_fc.weight.shallow_clone().set_requires_grad(true);
    let dw = plain_grads(&model, &[("w".into(), model.h[0].c_fc.weight.shallow_clone())]).remove(0).transpose(0, 1);
    let (lc, rc) = (l.unsqueeze(1), rr.unsqueeze(0)); // [p, 1], [1, d]
    let eye = |n: i64| Tensor::eye(n, (Kind::Double, Device::Cpu));
    let want = &dw
        - (eye(128) - lc.matmul(&lc.transpose(0, 1))).matmul(&dw).matmul(&(eye(32) - rc.transpose(0, 1).matmul(&rc)));
    let e = rel(&got.transpose(0, 1), &want);
    assert!(e <= 1e-10, "rank-1 projection: {e:e}");
    assert!(rel(&got.transpose(0, 1), &dw) > 1e-3, "rank 1 is not the full gradient");
}

#[test]
fn each_method_reduces_training_loss() {
    // Private steps (σ = 0, C = 0.5 binding, Adam) on three short texts: every method must lower the
    // mean training loss; frozen tensors stay bit-identical.
    use dp_core::engine::{Clipper, DpOptimizer, LrSchedule, OptimizerKind, Tape};
    let Some(root) = common::tiny_models() else { return };
    let opts = LoadOptions { device: Device::Cpu, kind: Kind::Float };
    for (method, lr) in
        [("full", 1e-3), ("topk", 3e-3), ("lora", 1e-2), ("prefix", 1e-2), ("rgp", 3e-3), ("retrain", 3e-3)]
    {
        let mut model = if method == "retrain" {
            let AnyModel::Gpt2(m) =
                from_config(&root.join("gpt2-untied/config.json"), HeadKind::MaskedLm, &opts, 4).unwrap()
            else {
                panic!()
            };
            *m
        } else {
            models::load_gpt2(&root.join("gpt2-untied"), &opts).unwrap().0
        };
        tch::manual_seed(2);
        match method {
            "topk" => model.train_only_top_layers(1).unwrap(),
            "lora" => model.add_lora(4, 8.0).unwrap(),
            "prefix" => model.add_prefix(3, 16).unwrap(),
            "rgp" => model.add_rgp(1).unwrap(),
            _ => {}
        }
        let frozen: Vec<(String, Tensor)> = {
            // Neither updated nor trainable (RGP's carriers are trainable but recomputed each step).
            let moving: Vec<String> =
                model.updated_parameters().into_iter().chain(model.trainable()).map(|(n, _)| n).collect();
            model
                .named_parameters()
                .into_iter()
                .filter(|(n, _)| !moving.contains(n))
                .map(|(n, t)| (n, t.copy()))
                .collect()
        };
        let loss = |m: &models::Gpt2LmHeadModel| {
            tch::no_grad(|| {
                models::clip_check::batch_losses(m, &texts(), 50256, &mut Tape::off())
                    .unwrap()
                    .mean(Kind::Double)
                    .double_value(&[])
            })
        };
        let before = loss(&model);
        let clipper = Clipper::new(0.5).unwrap();
        let (trainable, updated) = (model.trainable(), model.updated_parameters());
        let mut opt = DpOptimizer::new(OptimizerKind::Adam, lr, LrSchedule::Constant, 0).unwrap();
        for _ in 0..15 {
            model.prepare_step();
            let mut tape = Tape::on();
            let losses = models::clip_check::batch_losses(&model, &texts(), 50256, &mut tape).unwrap();
            let out = clipper.clip(&losses, &tape, &trainable).unwrap();
            let grads = out.grads.into_iter().map(|(n, g)| (n, g / 3.0)).collect();
            opt.step(&updated, &model.reconstruct_gradients(grads).unwrap()).unwrap();
        }
        let after = loss(&model);
        assert!(after < 0.9 * before, "{method}: loss {before:.4} → {after:.4}");
        let now = model.named_parameters();
        for (name, old) in &frozen {
            let (_, t) = now.iter().find(|(n, _)| n == name).unwrap();
            assert!(t.equal(old), "{method}: frozen {name} changed");
        }
        println!("{method}: loss {before:.4} → {after:.4}");
    }
}

/// Logits of `texts()` (padded) under `model`, no tape.
fn logits_of(model: &models::Gpt2LmHeadModel) -> Tensor {
    let (ids, mask) = common::pad(&texts(), 0);
    let inputs = models::Inputs::ids(&ids).with_mask(&mask);
    tch::no_grad(|| model.forward(inputs, None, false, &mut dp_core::engine::Tape::off())).unwrap()
}

#[test]
fn lora_and_prefix_adapters_round_trip_through_peft_layout_folders() {
    let Some(root) = common::tiny_models() else { return };
    let dir = root.join("gpt2-untied");
    let opts = LoadOptions { device: Device::Cpu, kind: Kind::Double };
    let base = models::adapter::AdapterBase { untie_lm_head: false, add_pad_token: true };
    for method in ["lora", "prefix"] {
        let (mut trained, mut tok) = models::load_gpt2(&dir, &opts).unwrap();
        trained.add_pad_token(&mut tok).unwrap();
        tch::manual_seed(5);
        match method {
            "lora" => {
                trained.add_lora(2, 4.0).unwrap();
                // B starts at zero: give it values, as training would.
                for b in &trained.h {
                    let l = b.c_attn_lora.as_ref().unwrap();
                    tch::no_grad(|| l.lora_b.weight.shallow_clone().copy_(&(l.lora_b.weight.randn_like() * 0.1)));
                }
            }
            _ => trained.add_prefix(3, 8).unwrap(),
        }
        let want = logits_of(&trained);
        let out = std::env::temp_dir().join(format!("dpft-adapter-{method}-{}", std::process::id()));
        models::adapter::save_adapter(&trained, &out, dir.to_str().unwrap(), &base).unwrap();
        for f in ["adapter_config.json", "adapter_model.safetensors", "dpft_base.json"] {
            assert!(out.join(f).is_file(), "{method}: {f}");
        }
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("adapter_config.json")).unwrap()).unwrap();
        assert_eq!(config["peft_type"], if method == "lora" { "LORA" } else { "PREFIX_TUNING" });
        assert_eq!(config["base_model_name_or_path"], dir.to_str().unwrap());
        let (mut loaded, mut tok2) = models::load_gpt2(&dir, &opts).unwrap();
        models::adapter::apply_adapter(&mut loaded, &mut tok2, &out).unwrap();
        let got = logits_of(&loaded);
        let e = (&got - &want).abs().max().double_value(&[]);
        assert!(e < 1e-12, "{method}: adapter logits differ by {e:e}");
        assert!(loaded.trainable().is_empty(), "{method}: an applied adapter is for inference: nothing trains");
        // A LoRA adapter on a prefix model's folder, or tensors of another shape, are refused.
        let (mut other, mut tok3) = models::load_gpt2(&root.join("gpt2-tied"), &opts).unwrap();
        if other.config.n_embd != loaded.config.n_embd || method == "prefix" {
            continue;
        }
        std::fs::write(out.join("dpft_base.json"), "{\"untie_lm_head\": false, \"add_pad_token\": false, \"x\": 1}")
            .unwrap();
        let e = models::adapter::apply_adapter(&mut other, &mut tok3, &out).unwrap_err().to_string();
        assert!(e.contains("dpft_base.json"), "{e}");
        std::fs::remove_dir_all(&out).unwrap();
    }
}
