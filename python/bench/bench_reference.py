"""Python reference for `dpft bench`: whole training steps of a Hugging Face model in PyTorch eager mode,
non-private, with Opacus ghost clipping, or with Opacus per-sample gradient hooks.

Run: python python/bench/bench_reference.py --model gpt2 --batch-size 8 --seq-len 128 --mode opacus-ghost
     (prints one JSON object on stdout, the same keys as `dpft bench --json`; logs go to stderr)

Workload (the same as `dpft bench`): random weights (torch.manual_seed(seed), then the model from its config),
random inputs, training mode (dropout on). GPT-2 -> GPT2LMHeadModel, random token ids [B, T], per-example
loss = mean next-token cross-entropy over the T-1 predicted tokens (labels = input ids), position ids passed
explicitly as [B, T]. RoBERTa / BERT -> *ForSequenceClassification with 2 labels, random labels,
per-example cross-entropy; position ids and token type ids passed explicitly as [B, T] (BERT's default
position ids are a [1, T] buffer, which per-sample gradients cannot split by example); the random token ids
avoid pad_token_id, because Opacus' Embedding samplers ignore padding_idx (the pad row's gradient, zero in
autograd, would not be zero per example). A timed step is: forward, per-example losses, backward,
per-example clipping, noise, torch.optim.Adam (lr 1e-4) step, zero_grad; median over --steps after
--warmup, each step timed with time.perf_counter() (on CUDA after torch.cuda.synchronize()).

Modes (Opacus API, all through opacus.PrivacyEngine.make_private with flat clipping, a DataLoader over a
TensorDataset of exactly the one batch, poisson_sampling=False, so expected_batch_size = B: we time
steps, the accountant's numbers are meaningless here):
- nonprivate: mean of the per-example losses, loss.backward(), Adam step.
- opacus-ghost: grad_sample_mode="ghost" -> GradSampleModuleFastGradientClipping (use_ghost_clipping=True),
  DPOptimizerFastGradientClipping and DPLossFastGradientClipping (the criterion, nn.CrossEntropyLoss, whose
  .backward() runs the two backward passes: per-example norms, then the loss reweighted by the clipping
  factors); noise N(0, sigma^2 C^2) on the clipped sum, divided by B.
- opacus-hooks: grad_sample_mode="hooks" -> GradSampleModule (per-sample gradients instantiated by
  backward hooks) and DPOptimizer (clip each per-sample gradient, sum, noise, divide by B).

Model changes for the Opacus modes (reported under "notes" in the JSON):
- transformers' GPT-2 uses `Conv1D` (a transposed linear layer) that Opacus has no grad or norm sampler
  for (it would fall back to functorch per-sample gradients); every Conv1D is replaced by an equivalent
  nn.Linear (weight = Conv1D.weight.T, same bias) before wrapping, so Opacus runs its own Linear samplers.
  The swap leaves the logits unchanged (python/tests/test_bench_reference.py checks it in float64).
- GPT-2 ties lm_head.weight to transformer.wte.weight. opacus-hooks keeps the tie: the per-sample
  gradients of the two uses are added into one per-sample gradient (exact). Opacus 1.6 ghost clipping
  refuses tied parameters (NotImplementedError "Parameter tying is not supported with Ghost Clipping":
  one `_norm_sample` per parameter would let one use overwrite the other's norm), so opacus-ghost unties
  lm_head (its own copy of wte, +vocab x n_embd trainable parameters, the same arithmetic per step; the
  per-example norm is then sqrt(|g_wte|^2 + |g_lm_head|^2), the two uses counted separately).
  --untie-lm-head unties in every mode, for a comparison on one model.
- Layers Opacus refuses (its validator, or a failure inside its hooks) stop the run with exit status 1 and
  the message; nothing is frozen, so every trainable parameter is clipped.

Exit status: 0 success, 1 Opacus refused the model or the step failed, 2 bad arguments (unknown --model,
unreadable config, CUDA asked for but unavailable, --seq-len beyond the model's positions).
"""

import argparse
import importlib.metadata
import json
import os
import pathlib
import statistics
import sys
import time
import warnings

LR = 1e-4
NUM_LABELS = 2
MODES = ("nonprivate", "opacus-ghost", "opacus-hooks")

_GPT2 = {
    "model_type": "gpt2", "vocab_size": 50257, "n_positions": 1024, "activation_function": "gelu_new",
    "resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1, "layer_norm_epsilon": 1e-5,
    "initializer_range": 0.02, "bos_token_id": 50256, "eos_token_id": 50256,
}
_ROBERTA = {
    "model_type": "roberta", "vocab_size": 50265, "max_position_embeddings": 514, "type_vocab_size": 1,
    "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, "layer_norm_eps": 1e-5, "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02,
}
BUILTIN = {
    "gpt2": {**_GPT2, "n_embd": 768, "n_layer": 12, "n_head": 12},
    "gpt2-medium": {**_GPT2, "n_embd": 1024, "n_layer": 24, "n_head": 16},
    "gpt2-large": {**_GPT2, "n_embd": 1280, "n_layer": 36, "n_head": 20},
    "roberta-base": {**_ROBERTA, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                     "intermediate_size": 3072},
    "roberta-large": {**_ROBERTA, "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
                      "intermediate_size": 4096},
}
FAMILIES = ("gpt2", "roberta", "bert")


class UsageError(Exception):
    """A bad command-line value found after parsing (exit status 2)."""


class OpacusRefused(Exception):
    """Opacus cannot train this model as asked (exit status 1)."""


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------- model


def load_config(spec):
    """(family, config dict, weights origin) for --model: a built-in name or a config.json path."""
    if spec in BUILTIN:
        cfg = dict(BUILTIN[spec])
        origin = "random (built-in config)"
    else:
        path = pathlib.Path(spec)
        if not path.is_file():
            raise UsageError(f"--model {spec}: not a built-in model ({', '.join(BUILTIN)}) nor a config.json file")
        try:
            cfg = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UsageError(f"--model {spec}: cannot read the config: {e}") from None
        if not isinstance(cfg, dict):
            raise UsageError(f"--model {spec}: the config is not a JSON object")
        origin = "random (config file)"
    family = cfg.get("model_type")
    if family not in FAMILIES:
        raise UsageError(f"--model {spec}: model_type {family!r} is not one of {', '.join(FAMILIES)}")
    return family, cfg, origin


def max_positions(family, cfg):
    """The longest sequence the model takes."""
    if family == "gpt2":
        return cfg.get("n_positions", 1024)
    longest = cfg.get("max_position_embeddings", 512)
    if family == "roberta":  # positions start after padding_idx
        longest -= cfg.get("pad_token_id", 1) + 1
    return longest


def build_model(family, cfg, seed):
    """Random weights: torch.manual_seed(seed), then the model from its config (training mode)."""
    import torch
    import transformers as tf

    cfg = {k: v for k, v in cfg.items() if k != "model_type"}
    torch.manual_seed(seed)
    if family == "gpt2":
        model = tf.GPT2LMHeadModel(tf.GPT2Config(**cfg))
    elif family == "roberta":
        model = tf.RobertaForSequenceClassification(tf.RobertaConfig(**{**cfg, "num_labels": NUM_LABELS}))
    else:
        model = tf.BertForSequenceClassification(tf.BertConfig(**{**cfg, "num_labels": NUM_LABELS}))
    return model.train()


def conv1d_to_linear(model):
    """Replaces every transformers Conv1D by the equivalent nn.Linear (weight transposed, same bias), in place.

    Draws no random numbers (the Linear is built uninitialised). Returns the number of modules replaced.
    """
    import torch
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    n = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Conv1D):
                w = child.weight
                lin = nn.utils.skip_init(nn.Linear, child.nx, child.nf, bias=True, device=w.device, dtype=w.dtype)
                with torch.no_grad():
                    lin.weight = nn.Parameter(w.detach().t().contiguous(), requires_grad=w.requires_grad)
                    lin.bias = nn.Parameter(child.bias.detach().clone(), requires_grad=child.bias.requires_grad)
                lin.train(child.training)
                setattr(parent, name, lin)
                n += 1
    return n


def lm_head_tied(model):
    head = getattr(model, "lm_head", None)
    return head is not None and head.weight is model.get_input_embeddings().weight


def untie_lm_head(model):
    """Gives lm_head its own copy of the input embedding (same values); no-op when not tied."""
    from torch import nn

    if not lm_head_tied(model):
        return False
    w = model.get_input_embeddings().weight
    model.lm_head.weight = nn.Parameter(w.detach().clone(), requires_grad=w.requires_grad)
    model.config.tie_word_embeddings = False
    return True


def trainable_count(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)  # parameters() lists a tied one once


def prepare_model(family, cfg, seed, mode, *, device="cpu", dtype=None, untie=False):
    """The model a mode trains, and notes on what was changed for it."""
    import torch

    model = build_model(family, cfg, seed)
    notes = []
    if mode != "nonprivate" and family == "gpt2":
        n = conv1d_to_linear(model)
        notes.append(f"{n} transformers Conv1D modules replaced by equivalent nn.Linear (weight transposed, same "
                     "bias) so Opacus uses its Linear grad/norm samplers instead of a functorch fallback")
    if family == "gpt2":
        if mode == "opacus-ghost" and lm_head_tied(model) and not untie:
            untie_lm_head(model)
            notes.append("lm_head untied from wte (its own copy, +vocab x n_embd trainable parameters): Opacus 1.6 "
                         "ghost clipping refuses tied parameters ('Parameter tying is not supported with Ghost "
                         "Clipping'); per-example norm counts the two uses separately")
        elif untie and untie_lm_head(model):
            notes.append("lm_head untied from wte (--untie-lm-head): its own copy, +vocab x n_embd trainable parameters")
        elif lm_head_tied(model):
            if mode == "opacus-hooks":
                notes.append("lm_head tied to wte and kept tied: Opacus adds the per-sample gradients of both uses "
                             "into one per-sample gradient before clipping")
            else:
                notes.append("lm_head tied to wte")
    model.to(device=device, dtype=dtype or torch.float32)
    model.train()
    return model, notes


def make_batch(family, cfg, batch_size, seq_len, seed, device="cpu"):
    """Random inputs (a generator of their own, so the same for every mode) and the per-example targets."""
    import torch

    g = torch.Generator().manual_seed(seed + 1)
    vocab = cfg["vocab_size"]
    ids = torch.randint(vocab, (batch_size, seq_len), generator=g)
    if family == "gpt2":
        pos = torch.arange(seq_len).expand(batch_size, seq_len).contiguous()
        inputs = {"input_ids": ids, "position_ids": pos}
        labels = ids
    else:
        pad = cfg.get("pad_token_id", 1 if family == "roberta" else 0)
        if pad is not None:
            ids[ids == pad] = (pad + 1) % vocab
        start = pad + 1 if family == "roberta" else 0
        pos = torch.arange(start, start + seq_len).expand(batch_size, seq_len).contiguous()
        inputs = {"input_ids": ids, "position_ids": pos, "token_type_ids": torch.zeros_like(ids)}
        labels = torch.randint(NUM_LABELS, (batch_size,), generator=g)
    inputs = {k: v.to(device) for k, v in inputs.items()}
    return inputs, labels.to(device)


def forward(model, family, inputs):
    if family == "gpt2":
        return model(**inputs, use_cache=False).logits
    return model(**inputs).logits


def per_example_loss(family, logits, labels):
    """[B]: mean next-token cross-entropy over T-1 tokens (GPT-2) or the classification cross-entropy."""
    import torch.nn.functional as F

    if family == "gpt2":
        b, t, v = logits.shape
        ce = F.cross_entropy(logits[:, :-1].reshape(-1, v), labels[:, 1:].reshape(-1), reduction="none")
        return ce.view(b, t - 1).mean(dim=1)
    return F.cross_entropy(logits, labels, reduction="none")


# ------------------------------------------------------------------------------------------------ step


def opacus_coverage(model, mode):
    """Trainable module types without an Opacus sampler for this mode (they would go through functorch)."""
    from opacus.grad_sample import GradSampleModule, GradSampleModuleFastGradientClipping
    from opacus.utils.module_utils import trainable_modules

    known = set(GradSampleModule.GRAD_SAMPLERS)
    if mode == "opacus-ghost":
        known |= set(GradSampleModuleFastGradientClipping.NORM_SAMPLERS)
    return sorted({type(m).__name__ for _, m in trainable_modules(model) if type(m) not in known})


def make_stepper(model, family, inputs, labels, mode, *, max_grad_norm=1.0, noise_multiplier=1.0, seed=0):
    """Sets up the optimizer (and Opacus) for `mode`; returns (step, optimizer, notes).

    step() runs one whole training step; optimizer is the torch.optim.Adam that applies the update (inside
    Opacus' wrapper in the private modes).
    """
    import torch

    notes = []
    adam = torch.optim.Adam(model.parameters(), lr=LR)
    if mode == "nonprivate":
        def step():
            loss = per_example_loss(family, forward(model, family, inputs), labels).mean()
            loss.backward()
            adam.step()
            adam.zero_grad(set_to_none=True)
        return step, adam, notes

    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset

    missing = opacus_coverage(model, mode)
    if missing:
        notes.append(f"no Opacus sampler for {', '.join(missing)}: functorch per-sample gradients there")
    batch_size = labels.shape[0]
    loader = DataLoader(TensorDataset(inputs["input_ids"].cpu(), labels.cpu()), batch_size=batch_size)
    gen = torch.Generator(device=labels.device).manual_seed(seed + 2)
    engine = PrivacyEngine()
    common = dict(module=model, optimizer=adam, data_loader=loader, noise_multiplier=noise_multiplier,
                  max_grad_norm=max_grad_norm, poisson_sampling=False, noise_generator=gen)
    try:
        if mode == "opacus-ghost":
            gsm, dp_opt, criterion, _ = engine.make_private(
                criterion=torch.nn.CrossEntropyLoss(), grad_sample_mode="ghost", **common)
        else:
            gsm, dp_opt, _ = engine.make_private(grad_sample_mode="hooks", **common)
    except Exception as e:  # the validator and the wrappers raise several types
        raise OpacusRefused(f"Opacus refused the model ({mode}): {type(e).__name__}: {e}") from e
    if dp_opt.expected_batch_size != batch_size:
        raise OpacusRefused(f"Opacus expected batch size {dp_opt.expected_batch_size}, not {batch_size}")
    notes.append(f"Opacus {type(gsm).__name__} + {type(dp_opt).__name__}, flat clipping C={max_grad_norm}, "
                 f"noise N(0, ({noise_multiplier} C)^2) on the clipped sum, divided by expected_batch_size={batch_size}")

    if mode == "opacus-ghost":
        def step():
            logits = forward(gsm, family, inputs)
            if family == "gpt2":
                b, t, v = logits.shape
                loss = criterion(logits[:, :-1].reshape(-1, v), labels[:, 1:].reshape(-1), shape=(b, t - 1))
            else:
                loss = criterion(logits, labels)
            loss.backward()  # DPTensorFastGradientClipping: norms pass, then the reweighted-loss pass
            dp_opt.step()
            dp_opt.zero_grad(set_to_none=True)
    else:
        def step():
            loss = per_example_loss(family, forward(gsm, family, inputs), labels).mean()
            loss.backward()
            dp_opt.step()
            dp_opt.zero_grad(set_to_none=True)
    return step, dp_opt.original_optimizer, notes


def applied_gradient(family, cfg, mode, *, batch_size, seq_len, max_grad_norm=1.0, noise_multiplier=1.0,
                     seed=0, dtype=None, untie=False):
    """The gradient Adam applied in one step of `mode` (flattened over its parameters, in their order)."""
    import torch

    model, _ = prepare_model(family, cfg, seed, mode, dtype=dtype, untie=untie)
    inputs, labels = make_batch(family, cfg, batch_size, seq_len, seed)
    step, adam, _ = make_stepper(model, family, inputs, labels, mode, max_grad_norm=max_grad_norm,
                                 noise_multiplier=noise_multiplier, seed=seed)
    seen = []

    def grab(opt, args, kwargs):
        seen.append(torch.cat([p.grad.detach().reshape(-1).clone()
                               for group in opt.param_groups for p in group["params"]]))

    handle = adam.register_step_pre_hook(grab)
    step()
    handle.remove()
    (g,) = seen
    return g


# ----------------------------------------------------------------------------------------------- bench


def peak_rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


def run(a):
    """Runs the benchmark for parsed arguments; returns the JSON report (a dict)."""
    family, cfg, origin = load_config(a.model)
    if a.seq_len > max_positions(family, cfg):
        raise UsageError(f"--seq-len {a.seq_len} exceeds the {max_positions(family, cfg)} positions {a.model} takes")
    if family == "gpt2" and a.seq_len < 2:
        raise UsageError("--seq-len must be at least 2 for GPT-2 (one predicted token)")

    import torch

    if a.device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {a.device}: CUDA is not available to this torch ({torch.__version__})")
        index = int(a.device.split(":")[1]) if ":" in a.device else 0
        if index >= torch.cuda.device_count():
            raise UsageError(f"--device {a.device}: only {torch.cuda.device_count()} CUDA device(s)")
    device = torch.device(a.device)
    if os.environ.get("OMP_NUM_THREADS", "").strip():
        try:
            torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        except ValueError:
            raise UsageError(f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']!r} is not an integer") from None

    model, notes = prepare_model(family, cfg, a.seed, a.mode, device=device, untie=a.untie_lm_head)
    parameters = trainable_count(model)
    inputs, labels = make_batch(family, cfg, a.batch_size, a.seq_len, a.seed, device)
    step, _, more = make_stepper(model, family, inputs, labels, a.mode, max_grad_norm=a.max_grad_norm,
                                 noise_multiplier=a.noise_multiplier, seed=a.seed)
    notes += more
    notes.append("fixed batch of random inputs (no Poisson sampling); dropout on; a timed step is forward, "
                 "backward, clipping and noise (private modes), Adam step, zero_grad")
    if family != "gpt2":
        notes.append("token ids avoid pad_token_id (Opacus' Embedding samplers ignore padding_idx)")
    if not a.json:
        log(f"{a.model}: {parameters} trainable parameters, mode {a.mode}, batch {a.batch_size} x {a.seq_len} tokens, "
            f"{device}, {torch.get_num_threads()} threads")

    cuda = device.type == "cuda"
    times = []
    for i in range(a.warmup + a.steps):
        if cuda:
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        try:
            step()
            if cuda:
                torch.cuda.synchronize(device)
        except OpacusRefused:
            raise
        except Exception as e:
            if a.mode == "nonprivate":
                raise
            raise OpacusRefused(f"{a.mode} step failed: {type(e).__name__}: {e}") from e
        dt = time.perf_counter() - t0
        if not a.json:
            log(f"  step {i + 1} ({'warm-up' if i < a.warmup else 'timed'}): {dt:.4f} s")
        if i >= a.warmup:
            times.append(dt)

    if cuda:
        peak, kind = torch.cuda.max_memory_allocated(device), "cuda: torch.cuda.max_memory_allocated (peak allocated by tensors)"
        extra = {"peak_mem_reserved_bytes": torch.cuda.max_memory_reserved(device)}
    else:
        peak, kind = peak_rss_bytes(), "process resident-set high-water mark (VmHWM)"
        extra = {}
    med = statistics.median(times)
    report = {
        "impl": "pytorch" if a.mode == "nonprivate" else "opacus",
        "mode": a.mode,
        "model": a.model,
        "weights": origin,
        "batch_size": a.batch_size,
        "seq_len": a.seq_len,
        "median_step_s": med,
        "examples_per_s": a.batch_size / med,
        "peak_mem_bytes": peak,
        "peak_mem_kind": kind,
        **extra,
        "step_times_s": times,
        "steps": a.steps,
        "warmup": a.warmup,
        "device": f"cuda:{device.index or 0}" if cuda else "cpu",
        "dtype": "float32",
        "threads": torch.get_num_threads(),
        "parameters": parameters,
        "max_grad_norm": a.max_grad_norm,
        "noise_multiplier": a.noise_multiplier,
        "seed": a.seed,
        "lm_head_tied": lm_head_tied(model) if family == "gpt2" else None,
        "attn_implementation": model.config._attn_implementation,
        "versions": {name: importlib.metadata.version(name) for name in ("torch", "transformers", "opacus")},
        "notes": notes,
    }
    if not a.json:
        log(f"{a.mode} {a.model}: median step {med:.4f} s (min {min(times):.4f}, max {max(times):.4f} over "
            f"{a.steps} after {a.warmup} warm-up), {a.batch_size / med:.2f} examples/s, peak memory "
            f"{peak / 2**20:.0f} MiB ({kind})")
    return report


def positive_int(s):
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def nonnegative_int(s):
    v = int(s)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {v}")
    return v


def positive_float(s):
    v = float(s)
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {s}")
    return v


def nonnegative_float(s):
    v = float(s)
    if not v >= 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {s}")
    return v


def device_arg(s):
    if s == "cpu" or s == "cuda" or (s.startswith("cuda:") and s[5:].isdigit()):
        return s
    raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {s!r}")


def parser():
    ap = argparse.ArgumentParser(
        description="Times whole training steps (forward, backward, clipping, noise, Adam step) of a Hugging Face "
                    "model with random weights: the PyTorch/Opacus reference for `dpft bench`. Prints one JSON "
                    "object on stdout.")
    ap.add_argument("--model", required=True,
                    help=f"a built-in config ({', '.join(BUILTIN)}) or the path to a config.json whose model_type "
                         "is gpt2, roberta or bert")
    ap.add_argument("--batch-size", type=positive_int, required=True, help="examples per step (B)")
    ap.add_argument("--seq-len", type=positive_int, required=True, help="tokens per example (T)")
    ap.add_argument("--mode", choices=MODES, required=True,
                    help="nonprivate: plain mean gradient; opacus-ghost: Opacus ghost clipping "
                         "(grad_sample_mode='ghost'); opacus-hooks: Opacus per-sample gradients by hooks + DPOptimizer")
    ap.add_argument("--steps", type=positive_int, default=3, help="timed steps; the median is reported [3]")
    ap.add_argument("--warmup", type=nonnegative_int, default=1, help="untimed steps before them [1]")
    ap.add_argument("--device", type=device_arg, default="cpu", help="cpu, cuda or cuda:N [cpu]")
    ap.add_argument("--max-grad-norm", type=positive_float, default=1.0, help="clipping norm C (private modes) [1.0]")
    ap.add_argument("--noise-multiplier", type=nonnegative_float, default=1.0,
                    help="sigma: noise N(0, sigma^2 C^2) on the clipped sum (private modes) [1.0]")
    ap.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the weights, inputs and noise [0]")
    ap.add_argument("--untie-lm-head", action="store_true",
                    help="GPT-2: give lm_head its own copy of wte in every mode (opacus-ghost always unties: Opacus "
                         "ghost clipping refuses tied parameters)")
    ap.add_argument("--json", action="store_true",
                    help="print the JSON only; without it a human-readable summary also goes to stderr "
                         "(the JSON always goes to stdout)")
    return ap


def main(argv=None):
    a = parser().parse_args(argv)
    # Two harmless warnings on every Opacus run: the non-cryptographic noise RNG (fine for timing), and the
    # full backward hook on the first module, whose input (token ids) needs no gradient.
    warnings.filterwarnings("ignore", message="Secure RNG turned off")
    warnings.filterwarnings("ignore", message="Full backward hook is firing when gradients are computed with respect to module outputs")
    try:
        report = run(a)
    except UsageError as e:
        log(f"bench_reference: error: {e}")
        return 2
    except OpacusRefused as e:
        import traceback

        traceback.print_exception(e.__cause__ or e, file=sys.stderr)
        log(f"bench_reference: error: {e}")
        return 1
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
