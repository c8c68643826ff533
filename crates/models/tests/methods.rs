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
    model.train_only_top_blocks(2).unwrap();
    assert_eq!(count(&model.trainable()), 14_177_280);
    assert!(model.trainable().iter().all(|(n, _)| n.starts_with("transformer.h.10.")
        || n.starts_with("transformer.h.11.")
        || n.starts_with("transformer.ln_f.")));
    assert!(model.train_only_top_blocks(13).is_err());
    // LoRA rank 4 on c_attn: 12 × (A 4·768 + B 2304·4) = 147,456, nothing else.
    let AnyModel::Gpt2(mut lora) = from_config(&path, HeadKind::MaskedLm, &opts, 0).unwrap() else { panic!() };
    lora.add_lora(4, 8.0).unwrap();
    assert_eq!(count(&lora.trainable()), 12 * (4 * 768 + 2304 * 4));
    assert_eq!(count(&lora.trainable()), 147_456);
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
