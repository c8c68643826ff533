//! Adapter folders in Hugging Face PEFT's layout, so that a LoRA or prefix-tuning run can be shared
//! without its checkpoints (and loaded by `dpft score/generate --adapter`, or by PEFT):
//! - `adapter_config.json`: PEFT's config (`peft_type` LORA or PREFIX_TUNING, `base_model_name_or_path`,
//!   and the method's settings);
//! - `adapter_model.safetensors`: LoRA's `base_model.model.transformer.h.N.attn.c_attn.lora_{A,B}.weight`
//!   (A `[r, in]`, B `[out, r]`; GPT-2's Conv1D, hence `fan_in_fan_out`), or prefix-tuning's
//!   `prompt_embeddings` `[L, 2·n_layer·d]` — the reparametrisation's output P (Li et al. 2022, Table 2
//!   "prefix"), which PEFT loads with `inference_mode` as its prefix;
//! - `dpft_base.json`: what dpft changed in the base model before training (`untie_lm_head`,
//!   `add_pad_token`), which a loader must repeat (PEFT knows nothing of these).
//!
//! An adapter holds only trained tensors and public settings: no sampler key, noise key or seed.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tch::{Device, Tensor};

use crate::{Gpt2LmHeadModel, ModelError, TextTokenizer};

/// How the base model was prepared before the adapter was trained.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterBase {
    /// `lm_head` was given its own copy of `wte`.
    pub untie_lm_head: bool,
    /// The `[PAD]` token was added (mean-initialised row).
    pub add_pad_token: bool,
}

pub(crate) fn invalid(dir: &Path, what: impl std::fmt::Display) -> ModelError {
    ModelError::Invalid(format!("{}: {what}", dir.display()))
}

/// PEFT's name of a block's `c_attn` LoRA factor (`which`: `lora_A` or `lora_B`).
fn lora_key(block: usize, which: &str) -> String {
    format!("base_model.model.transformer.h.{block}.attn.c_attn.{which}.weight")
}

/// Writes `model`'s LoRA factors or prefix as an adapter folder `dir` (replaced atomically) for the base
/// model at `base_model` (recorded as PEFT's `base_model_name_or_path`).
pub fn save_adapter(
    model: &Gpt2LmHeadModel,
    dir: &Path,
    base_model: &str,
    base: &AdapterBase,
) -> Result<(), ModelError> {
    let cpu = |t: &Tensor| t.detach().to_device(Device::Cpu).contiguous();
    let (config, tensors) = if let Some(p) = &model.prefix {
        let config = json!({
            "peft_type": "PREFIX_TUNING", "task_type": "CAUSAL_LM", "base_model_name_or_path": base_model,
            "num_virtual_tokens": p.length, "token_dim": model.config.n_embd, "num_transformer_submodules": 1,
            "num_attention_heads": model.config.n_head, "num_layers": model.config.n_layer,
            "encoder_hidden_size": p.mid_dim(), "prefix_projection": true, "inference_mode": true,
        });
        (config, vec![("prompt_embeddings".to_string(), cpu(&p.embeddings()))])
    } else {
        let loras: Vec<_> = model.h.iter().map(|b| b.c_attn_lora.as_ref()).collect();
        let Some(Some(first)) = loras.first() else {
            return Err(invalid(
                dir,
                "the model has neither LoRA factors nor a prefix: nothing to write as an adapter",
            ));
        };
        let r = first.lora_a.weight.size()[0];
        let config = json!({
            "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": base_model,
            "r": r, "lora_alpha": first.scaling * r as f64, "target_modules": ["c_attn"],
            "fan_in_fan_out": true, "lora_dropout": 0.0, "bias": "none", "inference_mode": true,
        });
        let mut tensors = Vec::new();
        for (i, l) in loras.iter().enumerate() {
            let l = l.ok_or_else(|| invalid(dir, format!("block {i} has no LoRA factors")))?;
            tensors.push((lora_key(i, "lora_A"), cpu(&l.lora_a.weight)));
            tensors.push((lora_key(i, "lora_B"), cpu(&l.lora_b.weight)));
        }
        (config, tensors)
    };
    write_folder(dir, &config, &tensors, base)
}

/// Writes an adapter folder: `config` as adapter_config.json, `tensors` as adapter_model.safetensors and
/// `base` as dpft_base.json, into a temporary folder renamed into place.
pub(crate) fn write_folder(
    dir: &Path,
    config: &Value,
    tensors: &[(String, Tensor)],
    base: &AdapterBase,
) -> Result<(), ModelError> {
    let io = |e: std::io::Error| invalid(dir, format!("writing: {e}"));
    let tmp = dir.with_extension("tmp");
    crate::safe_fs::fresh_dir(&tmp).map_err(io)?;
    let text = |v: &Value| serde_json::to_string_pretty(v).expect("json") + "\n";
    std::fs::write(tmp.join("adapter_config.json"), text(config)).map_err(io)?;
    std::fs::write(tmp.join("dpft_base.json"), text(&serde_json::to_value(base).expect("json"))).map_err(io)?;
    Tensor::write_safetensors(tensors, tmp.join("adapter_model.safetensors"))?;
    crate::safe_fs::replace_dir(&tmp, dir).map_err(io)
}

/// An adapter folder as read: its config, how the base was prepared, and its tensors by name.
pub(crate) struct Folder {
    pub config: Value,
    pub base: AdapterBase,
    pub tensors: std::collections::HashMap<String, Tensor>,
}

/// Reads the adapter folder `dir` (dpft_base.json optional: PEFT does not write it).
pub(crate) fn read_folder(dir: &Path) -> Result<Folder, ModelError> {
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name)).map_err(|e| invalid(dir, format!("cannot read {name}: {e}")))
    };
    let config: Value = serde_json::from_str(&read("adapter_config.json")?)
        .map_err(|e| invalid(dir, format!("adapter_config.json: {e}")))?;
    let base: AdapterBase = match dir.join("dpft_base.json").is_file() {
        true => {
            serde_json::from_str(&read("dpft_base.json")?).map_err(|e| invalid(dir, format!("dpft_base.json: {e}")))?
        }
        false => AdapterBase::default(),
    };
    let path = dir.join("adapter_model.safetensors");
    let tensors = Tensor::read_safetensors(&path)
        .map_err(|e| invalid(dir, format!("adapter_model.safetensors: {e}")))?
        .into_iter()
        .collect();
    Ok(Folder { config, base, tensors })
}

/// Applies the adapter in `dir` to a freshly loaded base `model` (and its tokenizer): repeats the base
/// preparation of `dpft_base.json`, then adds the LoRA factors or the prefix with the saved values.
/// Refuses another PEFT type, settings this model cannot take, and missing, extra or misshaped tensors.
pub fn apply_adapter(model: &mut Gpt2LmHeadModel, tokenizer: &mut TextTokenizer, dir: &Path) -> Result<(), ModelError> {
    let Folder { config, base, mut tensors } = read_folder(dir)?;
    if base.untie_lm_head {
        model.untie_lm_head();
    }
    if base.add_pad_token {
        model.add_pad_token(tokenizer)?;
    }
    let int =
        |key: &str| config[key].as_i64().ok_or_else(|| invalid(dir, format!("adapter_config.json: `{key}` missing")));
    let like = model.wte.weight.shallow_clone();
    let mut take = |key: &str, shape: &[i64]| -> Result<Tensor, ModelError> {
        let t = tensors.remove(key).ok_or_else(|| invalid(dir, format!("adapter_model.safetensors lacks `{key}`")))?;
        if t.size() != shape {
            return Err(invalid(dir, format!("`{key}` has shape {:?}, expected {shape:?} for this model", t.size())));
        }
        Ok(t.to_kind(like.kind()).to_device(like.device()))
    };
    match config["peft_type"].as_str() {
        Some("LORA") => {
            if config["target_modules"] != json!(["c_attn"]) || config["fan_in_fan_out"] != json!(true) {
                return Err(invalid(
                    dir,
                    "only LoRA on GPT-2's c_attn (target_modules [\"c_attn\"], fan_in_fan_out true) is supported",
                ));
            }
            let r = int("r")?;
            let alpha = config["lora_alpha"]
                .as_f64()
                .ok_or_else(|| invalid(dir, "adapter_config.json: `lora_alpha` missing"))?;
            model.add_lora(r, alpha)?;
            let d = model.config.n_embd;
            for (i, block) in model.h.iter().enumerate() {
                let lora = block.c_attn_lora.as_ref().expect("just added");
                let (a, b) = (take(&lora_key(i, "lora_A"), &[r, d])?, take(&lora_key(i, "lora_B"), &[3 * d, r])?);
                tch::no_grad(|| {
                    lora.lora_a.weight.shallow_clone().copy_(&a);
                    lora.lora_b.weight.shallow_clone().copy_(&b);
                });
            }
        }
        Some("PREFIX_TUNING") => {
            let (l, c) = (int("num_virtual_tokens")?, &model.config);
            if int("num_layers")? != c.n_layer
                || int("token_dim")? != c.n_embd
                || int("num_attention_heads")? != c.n_head
            {
                return Err(invalid(
                    dir,
                    "the prefix was trained for another architecture (num_layers, token_dim, num_attention_heads)",
                ));
            }
            let p = take("prompt_embeddings", &[l, 2 * c.n_layer * c.n_embd])?;
            model.set_prefix_embeddings(p)?;
        }
        other => return Err(invalid(dir, format!("peft_type {other:?} is not supported (LORA or PREFIX_TUNING)"))),
    }
    if let Some(extra) = tensors.keys().next() {
        return Err(invalid(
            dir,
            format!("adapter_model.safetensors has `{extra}`, which this adapter type does not use"),
        ));
    }
    for (_, t) in model.named_parameters() {
        let _ = t.shallow_clone().set_requires_grad(false);
    }
    Ok(())
}
