"""Accountant timings, dpft (Rust, in process, release build) next to the Python packages on the same inputs.

Run: make bench-accounting   (writes results/bench/accounting.md and prints it)
Each Python figure is one run (prv-accountant at T=1e5 takes tens of seconds); dpft's are medians.
"""

import json
import pathlib
import subprocess
import sys
import time

from dp_accounting.rdp import RdpAccountant
import dp_accounting
from opacus.accountants.utils import get_noise_multiplier
from prv_accountant.dpsgd import DPSGDAccountant

ROOT = pathlib.Path(__file__).resolve().parents[2]
ORDERS = [1 + x / 10 for x in range(1, 100)] + list(range(12, 64))


def timed(f):
    t = time.perf_counter()
    v = f()
    return time.perf_counter() - t, v


def rdp(steps):
    acc = RdpAccountant(ORDERS)
    acc.compose(dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(0.01, dp_accounting.GaussianDpEvent(1.0)), steps))
    return acc.get_epsilon(1e-5)


def prv(steps):
    acc = DPSGDAccountant(noise_multiplier=1.0, sampling_probability=0.01, eps_error=0.01, delta_error=1e-9,
                          max_steps=steps)
    return acc.compute_epsilon(delta=1e-5, num_steps=steps)[2]


def main():
    out = subprocess.run(["cargo", "run", "-q", "--release", "-p", "dp-core", "--example", "bench_accounting"],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    ours = {r["case"]: r for r in map(json.loads, out.splitlines())}
    python = {
        "rdp_epsilon T=1": ("dp-accounting RDP", lambda: rdp(1)),
        "rdp_epsilon T=1000": ("dp-accounting RDP", lambda: rdp(1000)),
        "rdp_epsilon T=100000": ("dp-accounting RDP", lambda: rdp(100_000)),
        "prv_epsilon T=1000 eps_error=0.01": ("prv-accountant", lambda: prv(1000)),
        "prv_epsilon T=100000 eps_error=0.01": ("prv-accountant", lambda: prv(100_000)),
        "rdp_calibrate eps=8 q=0.04 T=2250": ("opacus get_noise_multiplier(rdp)", lambda: get_noise_multiplier(
            target_epsilon=8, target_delta=1e-5, sample_rate=0.04, steps=2250, accountant="rdp", epsilon_tolerance=1e-3)),
        "prv_calibrate eps=8 q=0.04 T=2250": ("opacus get_noise_multiplier(prv)", lambda: get_noise_multiplier(
            target_epsilon=8, target_delta=1e-5, sample_rate=0.04, steps=2250, accountant="prv", epsilon_tolerance=1e-3)),
    }
    lines = ["| case (sigma 1, q 0.01, delta 1e-5 unless stated) | dpft s | dpft value | reference | ref s | ref value | speed-up |",
             "|---|---|---|---|---|---|---|"]
    for case, (name, f) in python.items():
        mine = ours[case]
        secs, val = timed(f)
        lines.append(f"| {case} | {mine['seconds']:.3g} | {mine['value']:.6g} | {name} | {secs:.3g} | {float(val):.6g} "
                     f"| {secs / mine['seconds']:.1f}x |")
    table = "\n".join(lines)
    dest = ROOT / "results" / "bench"
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "accounting.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    sys.exit(main())
