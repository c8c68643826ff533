#!/usr/bin/env bash
# The prepared GPU check: one command for a lent GPU machine (the device tool), within 10 minutes.
#
#   scripts/gpu-check.sh --prepare      here: build the release dpft and put what the GPU machine needs into
#                                       .gpu/ (gitignored; carry it): the stripped binary, GPT-2's tokenizer
#                                       files, and the wheels of the reference packages that machine lacks
#   scripts/gpu-check.sh                there (python3 with a CUDA torch 2.11 is already installed): every CUDA
#                                       check below, results under $OUT (or .gpu/out)
#   scripts/gpu-check.sh --dry-run      the same sequence on the CPU with the debug build and tiny sizes: checks
#                                       the script itself (CI runs it through python/tests/test_gpu_check.py)
#
# The checks, in order, each logged to OUT/gpu-check.log and summarised in OUT/summary.txt:
#  1. dpft info on the device (libtorch from python3's torch package: LD_LIBRARY_PATH);
#  2. tiny random checkpoints written there by python/oracles/tiny_models.py, and dpft clip-check on them in
#     f64 on the device in bk, ghost and naive (engine vs per-example loop on CUDA);
#  3. a private E2E training run of 4 steps on the device (secure noise drawn on the CPU keystream, copied);
#  4. make bench's paper profile, trimmed: GPT-2 small timing (non-private, bk, ghost, Opacus ghost) and the
#     largest batch of GPT-2 small/medium/large, dpft against PyTorch/Opacus (python/bench/run_bench.py).
# Device call (prepare first, here):  run(command="bash scripts/gpu-check.sh", carry=[".gpu"], timeout_s=580)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
mode=run
case "${1:-}" in
  --prepare) mode=prepare ;;
  --dry-run) mode=dry ;;
  "") ;;
  *) echo "usage: scripts/gpu-check.sh [--prepare | --dry-run]" >&2; exit 2 ;;
esac
gpu="$root/.gpu"
say() { printf '[gpu-check] %s\n' "$*"; }

if [ "$mode" = prepare ]; then
  say "building the release dpft"
  cargo build --quiet --release -p harness
  mkdir -p "$gpu/tokenizers" "$gpu/wheels"
  cp target/release/dpft "$gpu/dpft"
  strip "$gpu/dpft" 2>/dev/null || true
  data=${DPFT_DATA_DIR:-$root/../shared/data}
  cp -r "$data/tokenizers/gpt2" "$gpu/tokenizers/"
  # E2E rows for the training check (the first 256 of the training set and 16 test tables).
  mkdir -p "$gpu/data/e2e"
  head -n 257 "$data/e2e/trainset.csv" >"$gpu/data/e2e/trainset.csv"
  head -n 17 "$data/e2e/testset_w_refs.csv" >"$gpu/data/e2e/testset_w_refs.csv"
  head -n 17 "$data/e2e/devset.csv" >"$gpu/data/e2e/devset.csv"
  cp -r "$gpu/tokenizers" "$gpu/data/"
  # The GPU machine has torch, transformers and accelerate, not opacus: its wheel travels (pure Python).
  "${DPFT_VENV:-$root/.venv}/bin/python" -m pip download --quiet --no-deps -d "$gpu/wheels" opacus==1.6.0
  du -sh "$gpu" | sed 's/^/[gpu-check] .gpu: /'
  say "ready: carry .gpu and run scripts/gpu-check.sh"
  exit 0
fi

out=${OUT:-$gpu/out}
mkdir -p "$out"
log="$out/gpu-check.log"
summary="$out/summary.txt"
: >"$summary"
record() { printf '%s\n' "$*" | tee -a "$summary"; }
step() {
  local name=$1
  shift
  say "$name"
  if "$@" >>"$log" 2>&1; then record "ok    $name"; else record "FAIL  $name (exit $?; see gpu-check.log)"; fi
}

if [ "$mode" = dry ]; then
  device=cpu
  dpft="$root/target/debug/dpft"
  py="${DPFT_VENV:-$root/.venv}/bin/python"
  data=${DPFT_DATA_DIR:-$root/../shared/data}
  tokenizers="$data/tokenizers"
  [ -x "$dpft" ] || cargo build --quiet -p harness
else
  device=cuda
  dpft="$gpu/dpft"
  py=python3
  data="$gpu/data"
  tokenizers="$gpu/tokenizers"
  [ -x "$dpft" ] || { echo "$dpft missing: run scripts/gpu-check.sh --prepare here and carry .gpu" >&2; exit 2; }
  torch_lib=$("$py" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
  export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  site=/tmp/gpu-check-site
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$gpu"/wheels/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | sed 's/^/device: /' | tee -a "$summary"
fi
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}

step "1 dpft info --device $device" "$dpft" --device "$device" info
tiny="$out/tiny-models"
if [ "$mode" = dry ] && [ -f target/tmp/tiny-models/gpt2-untied/model.safetensors ]; then
  tiny=target/tmp/tiny-models  # the Rust tests' copy (same script): the dry run checks wiring, not the oracle
  record "ok    2a tiny checkpoints (the Rust tests' copy)"
else
  step "2a tiny checkpoints (transformers)" "$py" python/oracles/tiny_models.py "$tiny" --tokenizers "$tokenizers"
fi
printf '%s\n' "The cat sat on the mat." "Differential privacy limits what a trained model can reveal." "Hello world!" >"$out/texts.txt"
for m in bk ghost naive; do
  step "2b clip-check f64 $m on $device" "$dpft" --device "$device" clip-check --model "$tiny/gpt2-untied" \
    --data "$out/texts.txt" --dtype f64 --mode "$m" --max-grad-norm 0.1 --json
done
cat >"$out/train.yaml" <<EOF
model: {path: $tiny/gpt2-untied, add_pad_token: true}
task: {name: e2e, max_length: 60, max_train_examples: 64, max_eval_examples: 4}
optimization: {learning_rate: 1.0e-3, batch_size: 16, physical_batch_size: 8, steps: 4, checkpoint_every: 2}
privacy: {noise_multiplier: 1.0, delta: 1.0e-5, max_grad_norm: 0.5}
generation: {num_beams: 2, max_new_tokens: 6, min_new_tokens: 1, meteor: false}
EOF
rm -rf "$out/train-run"
step "3 private training on $device" "$dpft" --device "$device" --data-dir "$data" train "$out/train.yaml" --out "$out/train-run"
if [ "$mode" = dry ]; then
  step "4 bench (smoke profile on the CPU, dpft bk and Opacus ghost)" "$py" python/bench/run_bench.py --profile smoke \
    --device cpu --dpft "$dpft" --no-build --out "$out/bench" --skip-max-batch --only '^(dpft-bk|python-opacus-ghost)'
else
  step "4a bench timing, GPT-2 small (paper profile)" "$py" python/bench/run_bench.py --profile paper --device cuda \
    --dpft "$dpft" --no-build --out "$out/bench" --skip-max-batch
  step "4b bench max batch, GPT-2 small/medium/large" "$py" python/bench/run_bench.py --profile paper --device cuda \
    --dpft "$dpft" --no-build --out "$out/bench" --skip-timing --max-batch-cap 512 --only '(nonprivate|-bk-|opacus-ghost)'
fi
say "summary ($summary):"
cat "$summary"
! grep -q '^FAIL' "$summary"
