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
    elif law_name == "power_offset":
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
