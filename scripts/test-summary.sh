#!/usr/bin/env bash
# Prints what `make test` ran: Rust tests passed / ignored (from cargo's "test result" lines), how many
# of the passed ones only skipped for a missing fixture (lines of DPFT_SKIP_LOG, one per test), and
# pytest's final counts. Usage: test-summary.sh LOG_DIR SKIP_LOG
set -euo pipefail
logs=$1 skip_log=$2
passed=0 ignored=0 failed=0
if [ -f "$logs/rust.log" ]; then
  while read -r p f i; do
    passed=$((passed + p)) failed=$((failed + f)) ignored=$((ignored + i))
  done < <(sed -nE 's/^test result: [a-zA-Z]+\. ([0-9]+) passed; ([0-9]+) failed; ([0-9]+) ignored.*/\1 \2 \3/p' "$logs/rust.log")
fi
skipped=0
if [ -s "$skip_log" ]; then
  skipped=$(sed -E 's/^SKIPPED: ([^:]+):.*/\1/' "$skip_log" | sort -u | wc -l)
fi
echo "[test] Rust: $((passed - skipped)) tests ran and passed, $skipped skipped for a missing fixture (counted as passed by cargo), $ignored ignored, $failed failed"
if [ "$skipped" -gt 0 ]; then
  sed -E 's/^SKIPPED: ([^:]+):.*/\1/' "$skip_log" | sort -u | sed 's/^/[test]   skipped: /'
fi
if [ -f "$logs/python.log" ]; then
  echo "[test] Python: $(grep -E '^[=]* *[0-9]+ (passed|failed)' "$logs/python.log" | tail -1 | sed -E 's/=//g; s/^ +//; s/ +$//')"
fi
