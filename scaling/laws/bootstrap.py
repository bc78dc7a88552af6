"""Uncertainty by bootstrap over runs, carried to every derived number.

Points of one run (a training curve, or several metrics of it) are not independent, so the unit resampled
is the run, stratified by group (recipe): each replicate draws as many runs as the group has, with
replacement, and refits. A `select` step (frontier) is redone inside every replicate because choosing the
frontier is part of the procedure whose spread we want. Where a group has too few runs to resample
(a single training curve), the fallback is a moving-block bootstrap of the log residuals along the curve,
and the result says so.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from scaling.laws.fit import fit
from scaling.laws.problem import Fit, FitData, FitWarning

MIN_RUNS = 5  # per group: below this a run bootstrap has too few distinct resamples to mean much


@dataclass
class Bootstrap:
    samples: np.ndarray  # [B, n_params]; rows of failed refits are nan
    method: str  # "runs" or "residual-blocks"
    failed: int
    not_converged: int


def interval(value: float, draws: np.ndarray, level: float) -> dict[str, float]:
    """{"value", "lo", "hi"}: the full-data estimate and percentile bounds of the bootstrap draws."""
    draws = np.asarray(draws, dtype=float)
    ok = draws[np.isfinite(draws)]
    if len(ok) < 2:
        return {"value": float(value), "lo": float("nan"), "hi": float("nan")}
    lo, hi = np.quantile(ok, [(1 - level) / 2, (1 + level) / 2])
    return {"value": float(value), "lo": float(lo), "hi": float(hi)}


def run_bootstrap(
    full: Fit,
    data: FitData,
    n: int,
    seed: int = 0,
    select: Callable[[FitData], np.ndarray] | None = None,
) -> Bootstrap:
    """`n` refits of `full.law` on resampled data, each warm-started at the full-data optimum."""
    rng = np.random.default_rng(seed)
    run_counts = [len(np.unique(data.run[data.group == g])) for g in range(len(data.groups))]
    method = "runs" if min(run_counts) >= MIN_RUNS else "residual-blocks"
    samples = np.full((n, len(full.values)), np.nan)
    failed = not_converged = 0
    for b in range(n):
        rep = _resample_runs(data, rng) if method == "runs" else _resample_residuals(full, data, rng)
        if select is not None:
            keep = select(rep) & (rep.weight > 0)
            rep = rep.subset(keep)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FitWarning)
                one = fit(full.law, rep, full.layout.shared, warm=full.values, coarse=True, warn=False)
        except (ValueError, np.linalg.LinAlgError):
            failed += 1  # e.g. a replicate that drew too few distinct runs for the law
            continue
        samples[b] = one.values
        not_converged += not one.converged
    return Bootstrap(samples, method, failed, not_converged)


def _resample_runs(data: FitData, rng: np.random.Generator) -> FitData:
    weight = np.zeros(len(data.y))
    for g in range(len(data.groups)):
        in_group = data.group == g
        runs, inverse = np.unique(data.run[in_group], return_inverse=True)
        counts = np.bincount(rng.integers(0, len(runs), len(runs)), minlength=len(runs))
        weight[in_group] = counts[inverse]
    if data.weight is not None:
        weight *= data.weight
    return data.with_weight(weight)


def _resample_residuals(full: Fit, data: FitData, rng: np.random.Generator) -> FitData:
    # Log residuals of a training curve are autocorrelated; resampling them in blocks keeps that.
    y_new = data.y.copy()
    for g in range(len(data.groups)):
        idx = np.flatnonzero(data.group == g)
        X = {k: v[idx] for k, v in data.X.items()}
        pred = full.predict(X, g)
        resid = np.log(data.y[idx]) - np.log(np.maximum(pred, 1e-300))
        n = len(idx)
        # Fitted residuals are smaller than the noise by ~sqrt((n - p) / n): p parameters absorbed some.
        resid = (resid - np.median(resid)) * np.sqrt(n / max(n - len(full.law.params), 1))
        block = max(1, round(n ** (1 / 3)))
        starts = rng.integers(0, n, int(np.ceil(n / block)))
        picks = (starts[:, None] + np.arange(block)[None, :]).ravel()[:n] % n
        y_new[idx] = pred * np.exp(resid[picks])
    weight = np.ones(len(data.y)) if data.weight is None else data.weight.copy()
    return FitData(data.X, y_new, data.run, data.group, data.groups, weight)
