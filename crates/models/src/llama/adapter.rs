//! LoRA adapter folders of the Llama family in Hugging Face PEFT's layout ([`crate::adapter`] for the
//! files): `base_model.model.model.layers.N.{self_attn,mlp}.<proj>.lora_{A,B}.weight` (A `[r, in]`,
//! B `[out, r]`, torch's Linear layout, so `fan_in_fan_out` false) and `target_modules` the adapted
//! projections' short names. Prefix-tuning adapters are not written for this family yet (refused).

use std::path::Path;

use serde_json::json;
use tch::{Device, Tensor};

use super::{LlamaForCausalLm, PROJECTIONS};
use crate::adapter::{invalid, read_folder, write_folder, AdapterBase, Folder};
use crate::{ModelError, TextTokenizer};

/// The module path of projection `name` of layer `i` (`self_attn.q_proj`, `mlp.up_proj`, …).
fn module(i: usize, name: &str) -> String {
    let group = if matches!(name, "gate_proj" | "up_proj" | "down_proj") { "mlp" } else { "self_attn" };
    format!("base_model.model.model.layers.{i}.{group}.{name}")
}

/// Writes `model`'s LoRA factors as a PEFT adapter folder `dir` for the base at `base_model`.
pub fn save_adapter(
    model: &LlamaForCausalLm,
    dir: &Path,
    base_model: &str,
    base: &AdapterBase,
) -> Result<(), ModelError> {
    if model.prefix.is_some() {
        return Err(invalid(
            dir,
            "prefix-tuning adapters are written for GPT-2 only; the run's checkpoint holds the prefix",
        ));
    }
    let cpu = |t: &Tensor| t.detach().to_device(Device::Cpu).contiguous();
    let (mut targets, mut tensors, mut settings) = (Vec::new(), Vec::new(), None);
    for (i, layer) in model.layers.iter().enumerate() {
        for (name, p) in PROJECTIONS.iter().zip(layer.projections()) {
            let Some(l) = p.lora() else { continue };
            if i == 0 {
                targets.push(*name);
            }
            let r = l.lora_a.weight.size()[0];
            settings = Some((r, l.scaling * r as f64));
            tensors.push((format!("{}.lora_A.weight", module(i, name)), cpu(&l.lora_a.weight)));
            tensors.push((format!("{}.lora_B.weight", module(i, name)), cpu(&l.lora_b.weight)));
        }
    }
    let Some((r, alpha)) = settings else {
        return Err(invalid(dir, "the model has no LoRA factors: nothing to write as an adapter"));
    };
    let config = json!({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": base_model,
        "r": r, "lora_alpha": alpha, "target_modules": targets, "fan_in_fan_out": false,
        "lora_dropout": 0.0, "bias": "none", "inference_mode": true,
    });
    write_folder(dir, &config, &tensors, base)
}

/// Applies the LoRA adapter in `dir` to a freshly loaded base `model`: the base preparation of
/// `dpft_base.json`, then the factors with the saved values; refuses other PEFT types and settings, and
/// missing, extra or misshaped tensors.
pub fn apply_adapter(
    model: &mut LlamaForCausalLm,
    tokenizer: &mut TextTokenizer,
    dir: &Path,
) -> Result<(), ModelError> {
    let Folder { config, base, mut tensors } = read_folder(dir)?;
    if base.untie_lm_head {
        model.untie_lm_head();
    }
    if base.add_pad_token {
        model.add_pad_token(tokenizer)?;
    }
    if config["peft_type"] != "LORA" || config["fan_in_fan_out"] == json!(true) {
        return Err(invalid(dir, "only LoRA adapters (fan_in_fan_out false) are read for the Llama family"));
    }
    let targets: Vec<String> = config["target_modules"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
        .unwrap_or_default();
    let r = config["r"].as_i64().ok_or_else(|| invalid(dir, "adapter_config.json: `r` missing"))?;
    let alpha =
        config["lora_alpha"].as_f64().ok_or_else(|| invalid(dir, "adapter_config.json: `lora_alpha` missing"))?;
    let target_refs: Vec<&str> = targets.iter().map(String::as_str).collect();
    model.add_lora(r, alpha, &target_refs)?;
    for (i, layer) in model.layers.iter().enumerate() {
        for (name, p) in PROJECTIONS.iter().zip(layer.projections()) {
            let Some(l) = p.lora() else { continue };
            for (which, weight) in [("lora_A", &l.lora_a.weight), ("lora_B", &l.lora_b.weight)] {
                let key = format!("{}.{which}.weight", module(i, name));
                let t = tensors
                    .remove(&key)
                    .ok_or_else(|| invalid(dir, format!("adapter_model.safetensors lacks `{key}`")))?;
                if t.size() != weight.size() {
                    return Err(invalid(
                        dir,
                        format!("`{key}` has shape {:?}, expected {:?}", t.size(), weight.size()),
                    ));
                }
                tch::no_grad(|| weight.shallow_clone().copy_(&t.to_kind(weight.kind()).to_device(weight.device())));
            }
        }
    }
    if let Some(extra) = tensors.keys().next() {
        return Err(invalid(dir, format!("adapter_model.safetensors has `{extra}`, which this adapter does not use")));
    }
    for (_, t) in model.named_parameters() {
        let _ = t.shallow_clone().set_requires_grad(false);
    }
    Ok(())
}
