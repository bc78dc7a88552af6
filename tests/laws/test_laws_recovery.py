"""Known parameters in, the same parameters out; and 90% bootstrap intervals cover the truth ~90% of the time."""

from __future__ import annotations

import numpy as np
import pytest
from laws_simulate import TRUTH, draw

from scaling.laws.bootstrap import MIN_CURVES, run_bootstrap
from scaling.laws.decisions import params_table
from scaling.laws.fit import fit
from scaling.laws.laws import LAWS, get_law

# Exponents and floors are well determined; prefactors trade off against exponents (that is the ill-
# conditioning Czech et al. describe), so their tolerance is wider.
TOLERANCE = {"alpha": 0.05, "beta": 0.06, "b": 0.05, "E": 0.03, "L0": 0.03, "c": 0.03, "C": 0.15, "d": 0.1}
# M4's alpha shapes the bend towards eps_0 and trades off against c and x0 (tests/laws/test_laws_m4.py
# checks every parameter to 0.1% on noiseless curves)
TOLERANCE_BY_LAW = {"m4": {"alpha": 0.1, "c": 0.05}}


@pytest.mark.parametrize("name", sorted(LAWS))
def test_fit_recovers_known_parameters(name: str) -> None:
    law = get_law(name)
    result = fit(law, draw(name, noise=0.002, rng=np.random.default_rng(7)))
    assert result.converged
    for p, true in TRUTH[name].items():
        got = result.params()[p]
        tol = TOLERANCE_BY_LAW.get(name, {}).get(p, TOLERANCE.get(p, 0.25))
        assert got == pytest.approx(true, rel=tol), f"{name}.{p}: {got} vs truth {true}"


def _coverage(name: str, draws: int, boots: int, noise: float, seed: int) -> dict[str, float]:
    law = get_law(name)
    rng = np.random.default_rng(seed)
    hits = {p: 0 for p in law.params}
    for i in range(draws):
        data = draw(name, noise, rng)
        full = fit(law, data, warn=False)
        table = params_table(full, run_bootstrap(full, data, boots, seed=i), 0.9)  # as FIT.json reports them
        for p in law.params:
            hits[p] += table[p]["lo"] <= TRUTH[name][p] <= table[p]["hi"]
    return {p: h / draws for p, h in hits.items()}


def test_interval_coverage_power_law_is_about_90_percent() -> None:
    # 20 seeded draws x 25 refits keeps this to seconds; with p = 0.9 the number of hits has sd 1.3, so
    # 0.7 is ~3 sd below 0.9 (a bootstrap over points of clustered data, or intervals from too few draws,
    # would fall far below). The slow test repeats this for every law with more draws.
    cover = _coverage("power", draws=20, boots=25, noise=0.02, seed=3)
    for p, c in cover.items():
        assert 0.7 <= c <= 1.0, f"power.{p}: 90% intervals covered the truth in {c:.0%} of draws"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LAWS))
def test_interval_coverage_every_law(name: str) -> None:
    cover = _coverage(name, draws=40, boots=40, noise=0.01, seed=11)
    runs = len(np.unique(draw(name, 0.01, np.random.default_rng(0)).run))
    # A percentile bootstrap over runs is near nominal with many runs (24-48 here: 0.88-0.98 measured)
    # and under-covers with few: 8 curves (convergence_size) gave 0.72-0.94, and 2 curves, where the
    # residual-block fallback replaces it, 0.70-0.74 (benchmarks/results/fit_bench_cpu.json). The floors
    # keep those from getting worse unnoticed.
    floor = 0.8 if runs >= 20 else 0.65 if runs >= MIN_CURVES else 0.6
    for p, c in cover.items():
        assert floor <= c <= 1.0, f"{name}.{p}: 90% intervals covered the truth in {c:.0%} of draws"
