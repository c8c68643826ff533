"""Golden values for dp-core's RDP tests: the RDP of the Poisson-subsampled Gaussian by direct numerical
integration (mpmath, 40 digits), the definition A_α = ∫ N(z; 0, σ²)·((1−q) + q·exp((2z−1)/(2σ²)))^α dz,
ε(α) = log A_α / (α − 1) (Mironov, Talwar & Zhang 2019, Sec. 3), next to dp-accounting and opacus.

Run: .venv/bin/python python/oracles/rdp_exact.py
Used by crates/dp-core/src/accounting/rdp.rs (test `raw_rdp_matches_exact_integration`).
"""

import mpmath as mp
from dp_accounting.rdp import rdp_privacy_accountant as dpa
from opacus.accountants.analysis import rdp as opacus_rdp

mp.mp.dps = 40


def exact_rdp(q, sigma, alpha):
    def integrand(z):
        return mp.npdf(z, 0, sigma) * ((1 - q) + q * mp.e ** ((2 * z - 1) / (2 * sigma * sigma))) ** alpha

    a = mp.quad(integrand, [-mp.inf, -10 * sigma, 0, 10 * sigma, mp.inf])
    return mp.log(a) / (alpha - 1)


if __name__ == "__main__":
    q, sigma, steps = 0.01, 2.5, 50
    print(f"q={q} sigma={sigma} steps={steps}")
    print(f"{'order':>6} {'exact (mpmath)':>24} {'opacus':>24} {'dp_accounting':>24}")
    for alpha in [1.5, 2.5, 5, 50, 100]:
        exact = float(exact_rdp(q, sigma, alpha)) * steps
        op = opacus_rdp._compute_rdp(q, sigma, alpha) * steps
        da = dpa._compute_rdp_poisson_subsampled_gaussian(q, sigma, [alpha])[0] * steps
        print(f"{alpha:>6} {exact:>24.17g} {op:>24.17g} {da:>24.17g}")
