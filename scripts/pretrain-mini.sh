#!/usr/bin/env bash
# `make pretrain-mini`: rebuilds the public checkpoint that the mini profiles fine-tune, results/pretrained/gpt2-mini/
# (committed, so the main job fine-tunes a published checkpoint as the paper does):
#   1. tokenizer: the first 4,096 ids of GPT-2's byte-level BPE (`dpft train-tokenizer --cut-from`; no text read);
#   2. the public corpus (python/pretrain/public_corpus.py): running text and a keyword-to-sentence task built
#      from the data directory's WikiText-2 (valid, test) and GLUE subsets (QNLI, MNLI, QQP), never from E2E or
#      DART text, written to results/pretrain-mini/data/pretrain-corpus/;
#   3. a 4-layer, width-128 GPT-2 (experiments/configs/gpt2-mini.json) pretrained non-privately on that corpus
#      (experiments/configs/pretrain-mini.yaml, about 18 minutes on 2 cores);
#   4. config.json, model.safetensors, tokenizer.json, the training log and metrics, SHA256SUMS.
# The training run lives in results/pretrain-mini/ (gitignored) and resumes when interrupted. The main job only
# checks SHA256SUMS; it never retrains unless asked (`make pretrain-mini`).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
say() { printf '[pretrain-mini] %s\n' "$*"; }
out=results/pretrained/gpt2-mini
work=results/pretrain-mini
tok=$work/tokenizer

say "building dpft"
cargo build --quiet -p harness
dpft="$root/target/debug/dpft"
"$dpft" info

if [ -f "$tok/tokenizer.json" ]; then
  say "tokenizer: $tok (present)"
else
  mkdir -p "$work"
  "$dpft" train-tokenizer --cut-from data:tokenizers/gpt2 --vocab-size 4096 --out "$tok"
fi
data_dir=${DPFT_DATA_DIR:-}
if [ -z "$data_dir" ] || [ ! -d "$data_dir" ]; then
  echo "[pretrain-mini] set DPFT_DATA_DIR to the data directory (pretrain-text/, qnli/, mnli/, qqp/)" >&2
  exit 2
fi
py=${DPFT_VENV:-$root/.venv}/bin/python
corpus=$work/data/pretrain-corpus
# SHA256SUMS is written last: with it present and matching, the corpus is complete.
if [ -f "$corpus/SHA256SUMS" ] && (cd "$corpus" && sha256sum --check --quiet SHA256SUMS); then
  say "corpus: $corpus (present, sha256 checked)"
else
  "$py" python/pretrain/public_corpus.py "$data_dir" "$corpus"
fi
start=$(date +%s)
run=$work/run
if [ -f "$run/summary.json" ]; then
  say "pretraining: $run finished before (remove it to train again)"
else
  resume=()
  [ -d "$run/checkpoints" ] && resume=(--resume)
  say "pretraining (non-private, public corpus; about 18 minutes on 2 cores)"
  "$dpft" --data-dir "$work/data" train experiments/configs/pretrain-mini.yaml --out "$run" "${resume[@]}" 2>&1 | tee -a "$work/pretrain.log"
fi

tmp=$out.tmp
rm -rf "$tmp"
mkdir -p "$tmp"
cp "$run/model/config.json" "$run/model/model.safetensors" "$tmp/"
cp "$run/model/tokenizer.json" "$tmp/tokenizer.json"
cp "$run/config.yaml" "$tmp/pretrain-config.yaml"
cp "$run/metrics.jsonl" "$tmp/pretrain-metrics.jsonl"
cp "$run/summary.json" "$tmp/pretrain-summary.json"
cp "$corpus/SHA256SUMS" "$tmp/corpus-SHA256SUMS"
[ -f "$work/pretrain.log" ] && cp "$work/pretrain.log" "$tmp/pretrain.log"
(cd "$tmp" && sha256sum config.json model.safetensors tokenizer.json >SHA256SUMS)
rm -rf "$out"
mv "$tmp" "$out"
say "wrote $out ($(du -sh "$out" | cut -f1)) in $(( $(date +%s) - start )) s; commit it to publish the checkpoint"
