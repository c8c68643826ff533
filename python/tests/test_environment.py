"""Cross-checks between the Python environment and the Rust build.

The `dpft` binary is linked against the libtorch inside the environment's torch wheel; these tests check
that both sides agree on the version that tch 0.24 requires, and that the reference packages the numeric
cross-checks depend on are importable at the pinned versions.
"""

import importlib.metadata as md
import json
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DPFT = os.environ.get("DPFT_BIN", str(ROOT / "target" / "debug" / "dpft"))


def pinned():
    """Package -> version from python/requirements.txt."""
    pins = {}
    for line in (ROOT / "python" / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[name] = version
    return pins


def test_torch_is_the_version_tch_needs():
    import torch

    assert torch.__version__.split("+")[0] == "2.11.0"


@pytest.mark.parametrize("package", sorted(pinned()))
def test_reference_package_at_pinned_version(package):
    assert md.version(package) == pinned()[package]


def test_dpft_links_the_environments_libtorch():
    import torch

    out = subprocess.run([DPFT, "info", "--json", "--device", "cpu"], capture_output=True, text=True, check=True)
    info = json.loads(out.stdout)
    assert info["libtorch"]["version"] == torch.__version__
    built = pathlib.Path(info["libtorch"]["lib"]).resolve()
    assert built == (pathlib.Path(torch.__file__).parent / "lib").resolve()
    assert info["device"]["resolved"] == "Cpu"
