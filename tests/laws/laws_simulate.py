"""Data drawn from each law with known parameters and multiplicative log-normal noise (seeded)."""

from __future__ import annotations

import numpy as np

from scaling.laws.convergence import Curve, curve_points, lr_schedule
from scaling.laws.laws import get_law
from scaling.laws.problem import FitData

TRUTH: dict[str, dict[str, float]] = {
    "chinchilla": {"alpha": 0.34, "beta": 0.28, "E": 1.7, "A": 400.0, "B": 1500.0},
    "saturating": {"b": 0.3, "d": 3e19, "a": 3e5, "c": 0.12},
    "power": {"b": -0.12, "a": 50.0},
    "power_offset": {"b": -0.25, "a": 2.0, "c": 0.1},
    "convergence": {"alpha": 0.45, "L0": 2.5, "A": 0.5, "C": 0.4},
    "convergence_size": {"alpha": 0.45, "beta": 0.3, "L0": 2.0, "A": 0.5, "C": 0.4, "B": 30.0},
    # an error rate from 0.9 (eps_0) to 0.15 (eps_inf), its transition's middle at x0 = 1e4
    "m4": {"c": -0.6, "alpha": 1.2, "log_x0": float(np.log(1e4)), "eps_inf": 0.15, "span": 0.75},
}


def schedule_curves(sizes: list[float]) -> list[Curve]:
    """A cosine and a constant-lr curve (warmup 500, 20k steps, logged every 1k) per model size."""
    curves = []
    for n in sizes:
        for kind in ("cosine", "constant"):
            lr = lr_schedule(kind, 2e-4, 20_000, warmup=500)
            step = np.arange(1000, 20_001, 1000)
            curves.append(Curve(f"{kind}_{n:.0e}", step, np.ones(len(step)), lr, params=n))
    return curves


def inputs(law_name: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The design (X) for a law, and the run name of every point."""
    if law_name == "chinchilla":
        N, D = np.meshgrid(np.geomspace(1e7, 1e10, 8), np.geomspace(1e9, 1e12, 6))
        X = {"N": N.ravel(), "D": D.ravel()}
    elif law_name in ("saturating", "power"):
        X = {"x": np.geomspace(1e18, 1e23, 24)}
    elif law_name in ("power_offset", "m4"):
        X = {"x": np.geomspace(1e2, 1e7, 24)}
    else:
        sizes = [1e7, 1e8, 1e9, 1e10] if law_name == "convergence_size" else [1e8]
        data = curve_points(schedule_curves(sizes), get_law(law_name).inputs)
        return data.X, data.run
    n = len(next(iter(X.values())))
    return X, np.array([f"run{i:03d}" for i in range(n)])


def draw(law_name: str, noise: float, rng: np.random.Generator) -> FitData:
    law = get_law(law_name)
    X, run = inputs(law_name)
    theta = [TRUTH[law_name][p] for p in law.params]
    y = law.predict(X, theta) * np.exp(noise * rng.standard_normal(len(run)))
    return FitData(X, y, run)


RUN_COUNTS = (4, 5, 6, 8, 12)  # a real sweep has 4 to 7 sizes: where intervals are measured


def few_runs_inputs(law_name: str, n: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """A design of `n` runs for a law: one point per run for the table laws (spread over the same range
    as `inputs`), one curve per run for the curve laws (schedules and lengths, or sizes, varying)."""
    if law_name == "chinchilla":
        perm = np.random.default_rng(n).permutation(n)  # N and D both vary, not in lockstep
        X = {"N": np.geomspace(1e7, 1e10, n), "D": np.geomspace(1e9, 1e12, n)[perm]}
    elif law_name in ("saturating", "power"):
        X = {"x": np.geomspace(1e18, 1e23, n)}
    elif law_name in ("power_offset", "m4"):
        X = {"x": np.geomspace(1e2, 1e7, n)}
    else:
        curves = []
        kinds = ("cosine", "constant", "wsd", "linear")
        for i in range(n):
            if law_name == "convergence":  # one model, runs differ in schedule and length
                total, size = int(round(np.geomspace(5e3, 2e4, n)[i] / 1e3) * 1e3), 1e8
            else:
                total, size = 20_000, float(np.geomspace(1e7, 1e10, n)[i])
            kind = kinds[i % len(kinds)] if law_name == "convergence" else kinds[i % 2]
            lr = lr_schedule(kind, 2e-4, total, warmup=500, decay_steps=total // 5)
            step = np.arange(1000, total + 1, 1000)
            curves.append(Curve(f"{kind}_{i:02d}", step, np.ones(len(step)), lr, params=size))
        data = curve_points(curves, get_law(law_name).inputs)
        return data.X, data.run
    return X, np.array([f"run{i:03d}" for i in range(n)])


def draw_runs(law_name: str, n: int, noise: float, rng: np.random.Generator) -> FitData:
    law = get_law(law_name)
    X, run = few_runs_inputs(law_name, n)
    theta = [TRUTH[law_name][p] for p in law.params]
    y = law.predict(X, theta) * np.exp(noise * rng.standard_normal(len(run)))
    return FitData(X, y, run)


def interval_coverage(
    law_name: str, n_runs: int, draws: int, boots: int, noise: float, seed: int, bootstrap=None
) -> dict:
    """Share of seeded draws whose `level` 0.9 parameter intervals (as FIT.json reports them) contain the
    truth, per parameter; and how the bootstrap went. `bootstrap` replaces run_bootstrap (for contrasts)."""
    from scaling.laws.bootstrap import run_bootstrap
    from scaling.laws.decisions import params_table
    from scaling.laws.fit import fit

    law = get_law(law_name)
    rng = np.random.default_rng(seed)
    hits = np.zeros(len(law.params))
    methods: dict[str, int] = {}
    short = 0
    for i in range(draws):
        data = draw_runs(law_name, n_runs, noise, rng)
        full = fit(law, data, warn=False)
        boot = (bootstrap or run_bootstrap)(full, data, boots, seed=i)
        methods[boot.method] = methods.get(boot.method, 0) + 1
        short += int(np.isfinite(boot.samples).all(axis=1).sum()) < 0.9 * boots
        table = params_table(full, boot, 0.9) if hasattr(boot, "expand") else None
        for j, p in enumerate(law.params):
            if table is not None:
                lo, hi = table[p]["lo"], table[p]["hi"]
            else:
                lo, hi = np.nanquantile(boot.samples[:, j], [0.05, 0.95])
            hits[j] += lo <= TRUTH[law_name][p] <= hi
    cover = dict(zip(law.params, (hits / draws).round(3).tolist()))
    return {
        "coverage_90": cover,
        "mean": float(np.mean(hits / draws)),
        "min": float(np.min(hits / draws)),
        "methods": methods,
        "draws_under_90pct_of_bootstrap": short,
    }
