"""Tiny random Llama-family checkpoints plus reference outputs, the oracle for the Rust Llama/Qwen2 family.

Run: .venv/bin/python python/oracles/tiny_llama.py OUT_DIR [--tokenizers DIR]

Writes, with transformers' `save_pretrained` (model.safetensors, F32) and GPT-2's tokenizer.json (vocab 50,257):

  OUT_DIR/llama-tied/     LlamaForCausalLM: width 32, 2 layers, 4 query heads / 2 key-value heads (GQA), MLP 64,
                          64 positions, rms_norm_eps 1e-5, rope_theta 10,000, tied embeddings, no biases
  OUT_DIR/llama-untied/   LlamaForCausalLM: head_dim 16 (q width 64 ≠ hidden 32), 4 / 4 heads, attention_bias and
                          mlp_bias, Llama 3 rope_scaling (factor 8, low 1, high 4, original 16), untied head
  OUT_DIR/qwen2/          Qwen2ForCausalLM: 4 query heads / 1 key-value head, q/k/v biases, untied head
  OUT_DIR/mistral/        MistralForCausalLM: 4 / 2 heads, no sliding window, untied head

All use initializer_range 0.3 (transformers' 0.02 makes tiny models nearly uniform, see tiny_models.py); after
construction every bias and every RMSNorm weight gets N(0, 0.1²) noise from a seeded generator, so that a loader
that drops one cannot match. Each folder holds `reference.safetensors`: input_ids, attention_mask [3, T] (the
three sentences of tiny_models.py, right-padded with the eos id 50256), logits_f32 and logits_f64 [3, T, V]
(the checkpoint reloaded in float32 / float64, explicit position_ids = arange(T); for float64 with the float32
casts of RMSNorm and the rotary angles lifted to float64, see `lift_f32_casts`); and `generate.json`: records
of `model.generate` (f32, one prompt at a time, no padding, pad = eos = 50256, do_sample False) for the prompts of
tiny_models.py: `greedy` (max_new_tokens 12) and `beam4` (num_beams 4, max_new_tokens 10, length_penalty 1,
early_stopping False): the prompts' ids and the new ids only, with greedy's smallest top-2 logit gap.

Seeded; the folders are replaced on every run (a few seconds). Tokenizers folder: --tokenizers, else
$DPFT_DATA_DIR/tokenizers, else <repo>/../shared/data/tokenizers.
"""

import argparse
import json
import math
import os
import pathlib
import shutil
import types

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import torch  # noqa: E402
import transformers as tf  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

tf.logging.set_verbosity_error()
torch.set_num_threads(1)

ROOT = pathlib.Path(__file__).resolve().parents[2]
EOS = 50256
INIT_STD = 0.3
NOISE_STD = 0.1
SENTENCES = [
    "The cat sat on the mat.",
    "Differential privacy limits what a trained model can reveal about any single training example.",
    "Hello world!",
]
PROMPTS = ["The weather today is", "Once upon a time there was", "Name: Aromi | food: Chinese ||"]

COMMON = dict(vocab_size=50257, hidden_size=32, intermediate_size=64, num_hidden_layers=2, max_position_embeddings=64,
              rms_norm_eps=1e-5, initializer_range=INIT_STD, bos_token_id=EOS, eos_token_id=EOS)
MODELS = {
    "llama-tied": (tf.LlamaConfig, tf.LlamaForCausalLM,
                   dict(num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)),
    "llama-untied": (tf.LlamaConfig, tf.LlamaForCausalLM,
                     dict(num_attention_heads=4, num_key_value_heads=4, head_dim=16, attention_bias=True, mlp_bias=True,
                          tie_word_embeddings=False,
                          rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                        "high_freq_factor": 4.0, "original_max_position_embeddings": 16})),
    "qwen2": (tf.Qwen2Config, tf.Qwen2ForCausalLM,
              dict(num_attention_heads=4, num_key_value_heads=1, tie_word_embeddings=False)),
    "mistral": (tf.MistralConfig, tf.MistralForCausalLM,
                dict(num_attention_heads=4, num_key_value_heads=2, sliding_window=None, tie_word_embeddings=False)),
}


def perturb(model, seed):
    """N(0, NOISE_STD²) on every bias and every RMSNorm weight."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * NOISE_STD)


def lift_f32_casts(model):
    """transformers computes RMSNorm and the rotary angles in float32 even in a float64 model; for the f64
    reference both are computed in float64 instead (dpft keeps an f64 model f64 throughout, which its engine
    oracle tests need). Same formulas as transformers' LlamaRMSNorm / Qwen2RMSNorm and its default and llama3
    rotary parameters, in float64; checked below to agree with the unmodified model to f32 round-off."""
    def rms_norm(self, x):
        variance = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(variance + self.variance_epsilon))

    c = model.config
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    params = getattr(c, "rope_parameters", None) or {}
    theta = params.get("rope_theta", getattr(c, "rope_theta", 10000.0))
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    if params.get("rope_type") == "llama3":
        factor, low, high = params["factor"], params["low_freq_factor"], params["high_freq_factor"]
        old = params["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        scaled = torch.where(wavelen > old / low, inv / factor, inv)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < old / high) * ~(wavelen > old / low)
        inv = torch.where(medium, smoothed, scaled)

    def rotary(self, x, position_ids):
        freqs = position_ids[:, :, None].to(torch.float64) * inv[None, None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)

    for m in model.modules():
        if type(m).__name__.endswith("RMSNorm"):
            m.forward = types.MethodType(rms_norm, m)
        if type(m).__name__.endswith("RotaryEmbedding"):
            m.forward = types.MethodType(rotary, m)
    return model


def batch(tokenizer):
    ids = [tokenizer.encode(s, add_special_tokens=False) for s in SENTENCES]
    t = max(map(len, ids))
    input_ids = torch.tensor([x + [EOS] * (t - len(x)) for x in ids])
    mask = torch.tensor([[1] * len(x) + [0] * (t - len(x)) for x in ids])
    return input_ids, mask


def logits(model, input_ids, mask):
    positions = torch.arange(input_ids.shape[1]).unsqueeze(0).expand_as(input_ids)
    with torch.no_grad():
        return model(input_ids=input_ids, attention_mask=mask, position_ids=positions).logits


def generations(model, tokenizer):
    records = []
    for name, kwargs in [("greedy", dict(num_beams=1, max_new_tokens=12)),
                         ("beam4", dict(num_beams=4, max_new_tokens=10, length_penalty=1.0, early_stopping=False))]:
        outputs, gaps = [], []
        prompts = [tokenizer.encode(p, add_special_tokens=False) for p in PROMPTS]
        for p in prompts:
            ids = torch.tensor([p])
            with torch.no_grad():
                out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, pad_token_id=EOS,
                                     eos_token_id=EOS, output_scores=True, return_dict_in_generate=True, **kwargs)
            outputs.append(out.sequences[0, ids.shape[1]:].tolist())
            if name == "greedy":
                top2 = torch.stack([s[0].topk(2).values for s in out.scores])
                gaps.append((top2[:, 0] - top2[:, 1]).min().item())
        record = {"name": name, "prompts": prompts, "outputs": outputs, **kwargs}
        if gaps:
            record["min_top2_logit_gap"] = min(gaps)
        records.append(record)
    return records


def build(name, out_dir, tok_dir):
    config_cls, model_cls, extra = MODELS[name]
    folder = out_dir / name
    if folder.exists():
        shutil.rmtree(folder)
    torch.manual_seed(0)
    model = model_cls(config_cls(**COMMON, **extra))
    perturb(model, seed=1)
    if not model.config.tie_word_embeddings:
        assert model.lm_head.weight is not model.model.embed_tokens.weight
    model.eval()
    model.save_pretrained(folder)
    shutil.copyfile(tok_dir / "gpt2" / "tokenizer.json", folder / "tokenizer.json")
    tokenizer = tf.PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
    input_ids, mask = batch(tokenizer)
    f32 = model_cls.from_pretrained(folder, dtype=torch.float32).eval()
    f64 = model_cls.from_pretrained(folder, dtype=torch.float64).eval()
    plain_f64 = logits(f64, input_ids, mask)
    lift_f32_casts(f64)
    reference = {"input_ids": input_ids, "attention_mask": mask,
                 "logits_f32": logits(f32, input_ids, mask), "logits_f64": logits(f64, input_ids, mask)}
    lifted = (reference["logits_f64"] - plain_f64).abs().max().item() / plain_f64.abs().max().item()
    assert 0 < lifted < 1e-5, f"{name}: lifting the f32 casts changed the f64 logits by {lifted:.2e}"
    print(f"{name}: f64 logits with the f32 casts lifted differ from transformers' by {lifted:.1e} (relative)")
    err = (reference["logits_f32"] - logits(model, input_ids, mask)).abs().max().item()
    assert err == 0.0, f"{name}: the reload does not reproduce the model ({err})"
    save_file({k: v.contiguous() for k, v in reference.items()}, str(folder / "reference.safetensors"))
    (folder / "generate.json").write_text(json.dumps(generations(f32, tokenizer), indent=1) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=pathlib.Path)
    ap.add_argument("--tokenizers", type=pathlib.Path)
    args = ap.parse_args()
    data = os.environ.get("DPFT_DATA_DIR")
    tok_dir = args.tokenizers or (pathlib.Path(data) / "tokenizers" if data else ROOT.parent / "shared" / "data" / "tokenizers")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in MODELS:
        build(name, args.out, tok_dir)
    print(f"wrote {', '.join(MODELS)} under {args.out}")


if __name__ == "__main__":
    main()
