"""The fixture policy of conftest.py: a "SKIPPED:" skip fails under DPFT_REQUIRE_FIXTURES=1 and skips
otherwise; other skips stay skips. Runs pytest on a two-test file in a temporary folder."""
import os
import pathlib
import shutil
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent

PROBE = '''
import pytest

def test_missing_fixture():
    pytest.skip("SKIPPED: no such fixture")

def test_other_branch():
    pytest.skip("CUDA is available here")
'''


def run(tmp_path, required):
    shutil.copy(HERE / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = dict(os.environ, DPFT_REQUIRE_FIXTURES="1" if required else "0")
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                        str(tmp_path)], capture_output=True, text=True, env=env, cwd=tmp_path)
    return p.returncode, p.stdout.strip().splitlines()[-1]


def test_required_fixture_skip_fails(tmp_path):
    code, last = run(tmp_path, required=True)
    assert code == 1 and "1 failed" in last and "1 skipped" in last, last


def test_fixture_skip_is_a_skip_when_not_required(tmp_path):
    code, last = run(tmp_path, required=False)
    assert code == 0 and "2 skipped" in last, last
