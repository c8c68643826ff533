"""Adapter folders against PEFT (the oracle, pinned in python/requirements.txt).

Both directions, for LoRA and prefix-tuning on a tiny random GPT-2 and for LoRA (q_proj, v_proj) on a tiny
random Llama, written here with transformers (GPT-2's tokenizer from the data directory):
- PEFT writes an adapter (`save_pretrained`, LoRA B drawn non-zero); `dpft score --model BASE --adapter DIR`
  gives the per-token log-probabilities of PEFT's model on the same texts;
- `dpft train` (method lora / prefix, one non-private step) writes OUT/adapter; PEFT loads it
  (`PeftModel.from_pretrained`) and gives the log-probabilities of `dpft score --adapter`.
Tolerance: 2e-5 absolute on each log-probability (f32 on both sides).
"""

import json
import os
import pathlib
import shutil
import subprocess

import pytest
from datadir import data_dir as shared_data_dir
import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]
DPFT = os.environ.get("DPFT_BIN", str(ROOT / "target" / "debug" / "dpft"))
TEXTS = ["name[The Eagle] eatType[coffee shop]", "The Eagle is a coffee shop near the river."]
TOL = 2e-5


def data_dir():
    return shared_data_dir("tokenizers/gpt2/tokenizer.json", "e2e/trainset.csv")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny random GPT-2 folder with GPT-2's tokenizer."""
    from transformers import GPT2Config, GPT2LMHeadModel
    d = data_dir()
    out = tmp_path_factory.mktemp("base")
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=50257, n_positions=64, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=50256, eos_token_id=50256)
    GPT2LMHeadModel(config).save_pretrained(out)
    for f in (d / "tokenizers" / "gpt2").iterdir():
        if f.is_file():
            shutil.copy(f, out / f.name)
    return out


@pytest.fixture(scope="module")
def llama_base(tmp_path_factory):
    """A tiny random Llama folder (grouped-query attention, tied embeddings) with GPT-2's tokenizer.json."""
    from transformers import LlamaConfig, LlamaForCausalLM
    d = data_dir()
    out = tmp_path_factory.mktemp("llama-base")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=50257, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         tie_word_embeddings=True, bos_token_id=50256, eos_token_id=50256)
    LlamaForCausalLM(config).save_pretrained(out)
    shutil.copy(d / "tokenizers" / "gpt2" / "tokenizer.json", out / "tokenizer.json")
    return out


# (family, method): GPT-2 takes LoRA on c_attn and prefix-tuning; the Llama family LoRA on q_proj and v_proj.
CASES = [("gpt2", "lora"), ("gpt2", "prefix"), ("llama", "lora")]


def family_base(request, family):
    return request.getfixturevalue("base" if family == "gpt2" else "llama_base")


def dpft_logprobs(base, adapter):
    p = subprocess.run([DPFT, "--device", "cpu", "score", "--model", str(base), "--adapter", str(adapter), "--json",
                        *sum((["--text", t] for t in TEXTS), [])], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return [r["logprobs"] for r in json.loads(p.stdout)]


def peft_logprobs(model, base):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(base)
    model.eval()
    out = []
    with torch.no_grad():
        for t in TEXTS:
            ids = torch.tensor([tok.encode(t, add_special_tokens=False)])
            logits = model(input_ids=ids).logits[0, :-1].double().log_softmax(-1)
            out.append(logits.gather(-1, ids[0, 1:, None])[:, 0].tolist())
    return out


def assert_close(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert len(g) == len(w)
        err = max(abs(a - b) for a, b in zip(g, w))
        assert err <= TOL, f"log-probabilities differ by {err:.3e}"


def load_base(family, base):
    from transformers import GPT2LMHeadModel, LlamaForCausalLM
    return (GPT2LMHeadModel if family == "gpt2" else LlamaForCausalLM).from_pretrained(base)


def peft_model(family, base, kind):
    from peft import LoraConfig, PrefixTuningConfig, get_peft_model
    torch.manual_seed(1)
    model = load_base(family, base)
    if kind == "lora" and family == "llama":
        cfg = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], lora_dropout=0.0,
                         init_lora_weights=False, task_type="CAUSAL_LM")
    elif kind == "lora":
        cfg = LoraConfig(r=2, lora_alpha=4, target_modules=["c_attn"], fan_in_fan_out=True, lora_dropout=0.0,
                         init_lora_weights=False, task_type="CAUSAL_LM")
    else:
        cfg = PrefixTuningConfig(num_virtual_tokens=3, prefix_projection=True, encoder_hidden_size=8,
                                 task_type="CAUSAL_LM")
    return get_peft_model(model, cfg)


@pytest.mark.parametrize("family,kind", CASES)
def test_dpft_applies_adapters_peft_wrote(request, family, kind, tmp_path):
    base = family_base(request, family)
    model = peft_model(family, base, kind)
    want = peft_logprobs(model, base)
    model.save_pretrained(tmp_path / "adapter")
    assert_close(dpft_logprobs(base, tmp_path / "adapter"), want)


@pytest.mark.parametrize("family,kind", CASES)
def test_peft_loads_adapters_dpft_trained(request, family, kind, tmp_path):
    from peft import PeftModel
    base = family_base(request, family)
    d = data_dir()
    cfg = tmp_path / "run.yaml"
    method = "{name: lora, rank: 2, alpha: 4}" if kind == "lora" else "{name: prefix, prefix_length: 3, mid_dim: 8}"
    cfg.write_text(f"""model: {{path: {base}}}
task: {{name: e2e, max_length: 60, max_train_examples: 8, max_eval_examples: 1}}
method: {method}
optimization: {{learning_rate: 5e-2, batch_size: 4, physical_batch_size: 4, steps: 2}}
privacy: none
generation: {{num_beams: 1, max_new_tokens: 2, min_new_tokens: 1, meteor: false}}
""")
    out = tmp_path / "run"
    p = subprocess.run([DPFT, "--device", "cpu", "--data-dir", str(d), "train", str(cfg), "--out", str(out)],
                       capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert p.returncode == 0, p.stderr
    adapter = out / "adapter"
    assert {f.name for f in adapter.iterdir()} == {"adapter_config.json", "adapter_model.safetensors",
                                                    "dpft_base.json"}
    model = PeftModel.from_pretrained(load_base(family, base), adapter)
    assert_close(dpft_logprobs(base, adapter), peft_logprobs(model, base))
    # The adapter holds trained tensors and public settings only.
    text = (adapter / "adapter_config.json").read_text() + (adapter / "dpft_base.json").read_text()
    assert "seed" not in text and "key" not in text
