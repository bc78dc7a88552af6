"""Backtests: fit on the smaller runs (or the early part of each curve), predict the rest, compare.

The split happens before anything else sees the data (frontier selection, grid, bootstrap), so held-out
points cannot leak into the fit; tests check this by changing held-out values and asserting the fit is
bit-identical.
"""

from __future__ import annotations

import numpy as np

from scaling.laws.bootstrap import Bootstrap, interval, log_residuals
from scaling.laws.problem import Fit, FitData
from scaling.laws.table import DataError


def parse_holdout(spec: str | None) -> int:
    """'largest' -> 1, 'K' -> K, None -> 0."""
    if spec is None:
        return 0
    if spec == "largest":
        return 1
    try:
        k = int(spec)
    except ValueError:
        raise DataError(f"--holdout {spec!r}: give 'largest' or a number of runs, e.g. --holdout 3") from None
    if k < 1:
        raise DataError(f"--holdout {k}: hold out at least one run")
    return k


def split_largest(data: FitData, size: np.ndarray, k: int, min_fit_points: int) -> np.ndarray:
    """Mask of the points of the `k` runs with the largest size (largest per run over its points)."""
    held = np.zeros(len(data.y), dtype=bool)
    if k == 0:
        return held
    runs = np.unique(data.run)
    run_size = np.array([size[data.run == r].max() for r in runs])
    chosen = runs[np.argsort(run_size, kind="stable")[::-1][:k]]
    held = np.isin(data.run, chosen)
    left = int((~held).sum())
    if k >= len(runs) or left < min_fit_points:
        raise DataError(
            f"--holdout {k}: only {len(runs)} runs ({left} points left to fit, the law needs more "
            f"than {min_fit_points - 1}); hold out fewer runs"
        )
    return held


def split_early(data: FitData, step: np.ndarray, fraction: float) -> np.ndarray:
    """Mask of the points past `fraction` of each run's last step: fit the early curve, predict the end."""
    if not 0 < fraction < 1:
        raise DataError(f"--fit-fraction {fraction}: give a fraction strictly between 0 and 1, e.g. 0.5")
    held = np.zeros(len(data.y), dtype=bool)
    for r in np.unique(data.run):
        sel = data.run == r
        held |= sel & (step > fraction * step[sel].max())
    return held


def holdout_rows(
    fit: Fit,
    boot: Bootstrap | None,
    held: FitData,
    x: np.ndarray,
    level: float,
    last_only: bool = False,
    train: FitData | None = None,
) -> list[dict]:
    """[{run, x, actual, predicted, lo, hi, ci_lo, ci_hi}] for held-out points (or each run's last one), in
    fit space. [lo, hi] is the prediction interval: where a new run's observation should fall, so it adds
    the observation noise (the fit's log residuals on `train`, resampled once per bootstrap draw) to the
    spread of the mean curve, which is [ci_lo, ci_hi]. A held-out run is an observation, not a mean: only
    the prediction interval should contain it `level` of the time."""
    rows = []
    rng = np.random.default_rng(0)  # fixed: the same fit gives the same intervals
    noise = {}
    if boot is not None and train is not None:
        noise = {g: log_residuals(fit, train, g) for g in range(len(fit.layout.groups)) if (train.group == g).any()}
    for i in range(len(held.y)):
        if last_only and i + 1 < len(held.y) and held.run[i + 1] == held.run[i]:
            continue
        X = {k: v[i : i + 1] for k, v in held.X.items()}
        g = int(held.group[i])
        predicted = float(fit.predict(X, g)[0])
        row = {"run": str(held.run[i]), "x": float(x[i]), "actual": float(held.y[i]), "predicted": predicted}
        if boot is None:
            rows.append({**row, "lo": float("nan"), "hi": float("nan"), "ci_lo": float("nan"), "ci_hi": float("nan")})
            continue
        mean = np.array([fit.predict(X, g, t)[0] if np.all(np.isfinite(t)) else np.nan for t in boot.samples])
        expand = boot.factor(fit.layout.index[g])
        ci = interval(predicted, mean, level, expand)
        if g in noise and len(noise[g]):
            obs = mean * np.exp(rng.choice(noise[g], len(mean)))
            pi = interval(predicted, obs, level, expand)
        else:
            pi = ci
        rows.append({**row, "lo": pi["lo"], "hi": pi["hi"], "ci_lo": ci["lo"], "ci_hi": ci["hi"]})
    return rows


def summarise(rows: list[dict]) -> dict[str, float]:
    """Median and max relative error of predictions, and how many actual values fall inside [lo, hi]."""
    if not rows:
        return {}
    rel = np.array([(r["predicted"] - r["actual"]) / r["actual"] for r in rows])
    inside = [r["lo"] <= r["actual"] <= r["hi"] for r in rows if np.isfinite(r["lo"])]
    inside_mean = [r["ci_lo"] <= r["actual"] <= r["ci_hi"] for r in rows if np.isfinite(r.get("ci_lo", np.nan))]
    return {
        "n": len(rows),
        "median_abs_rel_error": float(np.median(np.abs(rel))),
        "max_abs_rel_error": float(np.max(np.abs(rel))),
        "inside_interval": int(sum(inside)),  # of the prediction interval [lo, hi]
        "with_interval": len(inside),
        "inside_mean_interval": int(sum(inside_mean)),  # of the mean curve's [ci_lo, ci_hi], for contrast
    }
