"""The data directory the cross-checks read: $DPFT_DATA_DIR, else ../shared/data beside the checkout."""
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def data_dir(*required):
    """The data directory, skipped (a "SKIPPED:" skip, a failure when fixtures are required) unless it holds
    every path in `required` (relative to it)."""
    d = os.environ.get("DPFT_DATA_DIR")
    d = pathlib.Path(d) if d else ROOT.parent / "shared" / "data"
    missing = [r for r in required if not (d / r).is_file()]
    if missing:
        reason = f"SKIPPED: no {', '.join(missing)} under {d} (set DPFT_DATA_DIR)"
        print(reason)
        pytest.skip(reason)
    return d
