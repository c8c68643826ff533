#!/usr/bin/env bash
# `make reproduce-table2`: Table 2 of Li et al. (ICLR 2022) — GPT-2 on E2E and DART with six fine-tuning
# methods (full, LoRA, prefix, RGP, top2, retrain) at epsilon 3, 8 and non-private. The default is the
# `mini` profile, sized for a CPU laptop; DPFT_PROFILE=paper selects the paper's hyperparameters (GPU).
#
# It runs only what this build of dpft can do and says plainly what it cannot do yet: each stage's
# command is asked whether it is available (`dpft --help` marks the ones that are not).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
profile=${DPFT_PROFILE:-mini}
say() { printf '[reproduce-table2] %s\n' "$*"; }

say "Table 2 (Li et al. 2022): GPT-2 on E2E/DART x {full, lora, prefix, rgp, top2, retrain} x {eps 3, eps 8, non-private}; profile: $profile"
say "building dpft (release)"
cargo build --release --quiet -p harness
dpft="$root/target/release/dpft"
"$dpft" info

stages=("privacy:noise multipliers for the target epsilons"
        "train:private and non-private training runs"
        "eval-gen:generation and BLEU/NIST/METEOR/ROUGE-L/CIDEr"
        "sweep:the experiment grid (experiments/table2.yaml)"
        "report:the table and figures")
help=$("$dpft" --help)
missing=0
say "stages:"
for stage in "${stages[@]}"; do
  cmd=${stage%%:*} what=${stage#*:}
  if grep -Eq "^  $cmd +\[not yet available\]" <<<"$help"; then
    printf '  %-9s %-60s NOT YET AVAILABLE\n' "$cmd" "$what"; missing=$((missing + 1))
  else
    printf '  %-9s %-60s available\n' "$cmd" "$what"
  fi
done
if ! grep -Eq "^  privacy +\[not yet available\]" <<<"$help"; then
  say "privacy: noise multipliers for the paper's E2E setting (n = 42,061, batch 1024, 10 epochs, delta 8e-6):"
  for eps in 3 8; do
    "$dpft" -q privacy noise --target-epsilon "$eps" --delta 8e-6 --batch-size 1024 --dataset-size 42061 --epochs 10
  done
fi
if [ "$missing" -gt 0 ] || [ ! -f experiments/table2.yaml ]; then
  say "stopped: $missing of ${#stages[@]} stages are not implemented in this version, so no run was started"
  say "and no table was produced (nothing was written to results/). See README, \"Status\"."
  exit 1
fi
"$dpft" sweep experiments/table2.yaml --set "profile=$profile" --resume
"$dpft" report "results/table2" --out results/table2/report
