# dpft — the two commands a newcomer needs are `make reproduce-table2` and `make test`; the rest are parts.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Python environment with torch==2.11.0 (libtorch for tch) and the reference packages; override with DPFT_VENV.
export DPFT_VENV ?= $(CURDIR)/.venv
# Tests and the mini reproduction read data from DPFT_DATA_DIR; next to a checkout that has ../shared/data
# (the project's CI), use it unless the caller chose another folder.
ifeq ($(strip $(DPFT_DATA_DIR)),)
  ifneq ($(wildcard ../shared/data/.),)
    export DPFT_DATA_DIR := $(abspath ../shared/data)
  endif
endif
# With a data directory every fixture is required: a test that cannot find its data or fixture fails
# instead of passing having checked nothing (CI sets it too). Skipped tests append a line to DPFT_SKIP_LOG.
ifneq ($(strip $(DPFT_DATA_DIR)),)
  ifneq ($(wildcard $(DPFT_DATA_DIR)/.),)
    export DPFT_REQUIRE_FIXTURES ?= 1
  endif
else ifneq ($(wildcard data/.),)
  export DPFT_REQUIRE_FIXTURES ?= 1
endif
export DPFT_SKIP_LOG ?= $(CURDIR)/target/test-logs/skipped.log
PY := $(DPFT_VENV)/bin/python
PROFILE ?= mini
MODEL_DIR ?=

.PHONY: help setup build test test-rust test-python lint data pretrain-mini reproduce-table2 reproduce-table1 bench-accounting bench clean

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

setup: ## Create/check the Python environment (torch 2.11.0 + reference packages); idempotent
	@bash scripts/setup.sh

build: setup ## Build the workspace (debug)
	cargo build --workspace

test: setup ## Everything CI checks: Rust tests, Python cross-checks, formatting, clippy; prints the test counts
	@if [ -n "$${DPFT_DATA_DIR:-}" ] && [ -d "$$DPFT_DATA_DIR" ]; then echo "[test] data directory: $$DPFT_DATA_DIR"; \
	 elif [ -d data ]; then echo "[test] data directory: data/"; \
	 else echo "[test] no data directory found (DPFT_DATA_DIR unset, no data/): data-dependent tests are SKIPPED"; fi
	@echo "[test] DPFT_REQUIRE_FIXTURES=$${DPFT_REQUIRE_FIXTURES:-0} (1: a test whose fixture or data is missing fails)"
	@mkdir -p target/test-logs && rm -f $(DPFT_SKIP_LOG)
	$(MAKE) --no-print-directory test-rust test-python lint
	@bash scripts/test-summary.sh target/test-logs $(DPFT_SKIP_LOG)

test-rust:
	@mkdir -p target/test-logs
	cargo test --workspace 2>&1 | tee target/test-logs/rust.log

test-python: ## Python cross-checks (python/tests) against the built dpft
	cargo build --workspace --bins
	cargo build -p metrics --example eval_gen
	@mkdir -p target/test-logs
	DPFT_BIN=$(CURDIR)/target/debug/dpft $(PY) -m pytest -q -rs -n 2 --dist loadgroup python/tests 2>&1 | tee target/test-logs/python.log

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

data: build ## Fetch missing datasets and tokenizer files from their official sources (needs a network)
	bash scripts/fetch-data.sh

pretrain-mini: setup ## Rebuild the committed mini GPT-2 checkpoint (results/pretrained/gpt2-mini; public text only, ~18 min on 2 cores)
	bash scripts/pretrain-mini.sh

reproduce-table2: setup ## The main job: Table 2 of the paper (PROFILE=mini on a CPU by default; PROFILE=paper MODEL_DIR=…)
	PROFILE=$(PROFILE) MODEL_DIR=$(MODEL_DIR) bash scripts/reproduce.sh table2

reproduce-table1: setup ## Table 1 (sentence classification), same PROFILE / MODEL_DIR conventions
	PROFILE=$(PROFILE) MODEL_DIR=$(MODEL_DIR) bash scripts/reproduce.sh table1

bench-accounting: setup ## Time the accountants next to dp-accounting, prv-accountant and opacus
	$(PY) python/bench/bench_accounting.py

bench: setup ## dpft bk/ghost/naive vs PyTorch/Opacus: step time, memory, max batch (BENCH_PROFILE=cpu|paper); results/bench/
	BENCH_PROFILE="$(BENCH_PROFILE)" BENCH_DEVICE="$(BENCH_DEVICE)" BENCH_MEM_LIMIT="$(BENCH_MEM_LIMIT)" BENCH_OUT="$(BENCH_OUT)" \
	  $(PY) python/bench/run_bench.py $(BENCH_ARGS)

clean: ## Remove build outputs (keeps the Python environment and data)
	cargo clean
