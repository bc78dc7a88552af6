"""Frontier selection for compute plots and fits: which runs are compute-efficient.

All modes take x (compute) and y (error or loss, lower is better) and return a boolean mask.
- `pareto`: non-dominated points: no other run reaches a lower y with no more compute.
- `binned`: the lowest y in each bin of log10(x) (`bins_per_decade` per factor of 10).
- `hull`: vertices of the lower convex hull of (log x, log y), up to the lowest y: the frontier a
  power law can touch, and the one least sensitive to a single lucky small run.
"""

from __future__ import annotations

import numpy as np

FRONTIERS = ("none", "pareto", "binned", "hull")


def frontier(x: np.ndarray, y: np.ndarray, mode: str, bins_per_decade: float = 4.0) -> np.ndarray:
    if mode not in FRONTIERS:
        raise ValueError(f"unknown frontier {mode!r}; choose one of: {', '.join(FRONTIERS)}")
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if mode == "none" or len(x) == 0:
        return np.ones(len(x), dtype=bool)
    return {"pareto": pareto, "binned": lambda a, b: binned(a, b, bins_per_decade), "hull": lower_hull}[mode](x, y)


def pareto(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    order = np.lexsort((y, x))  # by x, ties broken by y: of equal-compute runs only the best can be kept
    keep = np.zeros(len(x), dtype=bool)
    best = np.inf
    for i in order:
        if y[i] < best:
            keep[i] = True
            best = y[i]
    return keep


def binned(x: np.ndarray, y: np.ndarray, bins_per_decade: float = 4.0) -> np.ndarray:
    lx = np.log10(x)
    edges_from = np.floor(lx.min() * bins_per_decade) / bins_per_decade
    bin_of = np.floor((lx - edges_from) * bins_per_decade + 1e-9).astype(int)
    keep = np.zeros(len(x), dtype=bool)
    for b in np.unique(bin_of):
        idx = np.flatnonzero(bin_of == b)
        keep[idx[np.argmin(y[idx])]] = True
    return keep


def lower_hull(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    lx, ly = np.log(x), np.log(y)
    order = np.lexsort((ly, lx))
    hull: list[int] = []
    for i in order:  # Andrew's monotone chain, lower half
        if hull and lx[hull[-1]] == lx[i]:
            continue  # same compute, higher y: never on the lower hull
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            cross = (lx[b] - lx[a]) * (ly[i] - ly[a]) - (ly[b] - ly[a]) * (lx[i] - lx[a])
            if cross <= 0:
                hull.pop()
            else:
                break
        hull.append(i)
    # Past the lowest y the hull climbs again: those runs are dominated, not frontier.
    best = int(np.argmin([ly[i] for i in hull]))
    keep = np.zeros(len(x), dtype=bool)
    keep[hull[: best + 1]] = True
    return keep
