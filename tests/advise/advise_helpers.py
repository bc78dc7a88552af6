"""Synthetic results and candidates for the advise tests: a Chinchilla surface with a known optimum."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scaling.laws.decisions import allocate
from scaling.laws.laws import get_law
from scaling.laws.table import write_table

TRUTH = {"alpha": 0.34, "beta": 0.28, "E": 1.7, "A": 400.0, "B": 1500.0}
LAW = get_law("chinchilla")
THETA = [TRUTH[p] for p in LAW.params]
K_ND = 6.0  # C = 6 N D


def true_n_opt(c: float) -> float:
    return allocate(TRUTH, c, K_ND)["N_opt"]


def loss(n: np.ndarray, d: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    clean = LAW.predict({"N": np.asarray(n, float), "D": np.asarray(d, float)}, THETA)
    return clean * np.exp(noise * rng.standard_normal(len(clean)))


def result_rows(n: np.ndarray, d: np.ndarray, y: np.ndarray, prefix: str = "r") -> list[dict]:
    return [{"run": f"{prefix}{i:02d}", "model": f"n{a:.3g}", "params": a, "samples": b, "flops": K_ND * a * b,
             "total_flops": K_ND * a * b, "recipe": "lm", "metric": "loss", "value": v}
            for i, (a, b, v) in enumerate(zip(n, d, y))]


def small_sweep(rng: np.random.Generator, runs: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """`runs` small runs: N in 1e7..2e8 and D in 1e9..5e10, drawn at random (log-uniform)."""
    n = 10 ** rng.uniform(7, 8.3, runs)
    d = 10 ** rng.uniform(9, 10.7, runs)
    return n, d


def candidate_grid() -> tuple[np.ndarray, np.ndarray]:
    n, d = np.meshgrid(np.geomspace(1e7, 1e9, 6), np.geomspace(1e9, 1e11, 6))
    return n.ravel(), d.ravel()


def write_candidates(path: Path, n: np.ndarray, d: np.ndarray) -> Path:
    rows = [{"run": f"c{i:02d}", "model": f"n{a:.3g}", "params": a, "samples": b, "flops": K_ND * a * b}
            for i, (a, b) in enumerate(zip(n, d))]
    write_table(rows, path, first=("run", "model", "params", "samples", "flops"))
    return path
