"""Fixture skips fail when fixtures are required.

A test whose data or fixture is missing skips with a reason that starts with "SKIPPED:". Under
DPFT_REQUIRE_FIXTURES=1 (set by `make test` whenever a data directory is present, and by CI) such a skip
becomes a failure with the same reason, so that no cross-check passes having checked nothing. Skips for
other reasons (a CUDA-only branch on a machine with CUDA) stay skips.
"""
import os

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("DPFT_REQUIRE_FIXTURES") != "1" or not report.skipped:
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if "SKIPPED:" in reason:
        report.outcome = "failed"
        report.longrepr = f"required fixture missing (DPFT_REQUIRE_FIXTURES=1): {reason}"


# Tests of one file share their module fixtures (a tiny model written by transformers, reference runs), so
# each file runs on one xdist worker (`--dist loadgroup`), as `--dist loadfile` would; files of independent
# CLI cases (SPREAD) are spread over the workers case by case.
SPREAD = {"test_bad_inputs.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name not in SPREAD:
            item.add_marker(pytest.mark.xdist_group(item.path.name))
