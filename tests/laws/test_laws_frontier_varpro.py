"""Frontier selection on hand-made points, and the batched NNLS against scipy's."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import nnls

from scaling.laws.frontier import frontier
from scaling.laws.varpro import batched_nnls

#                 a     b     c     d     e     f     g
X = np.array([1e18, 2e18, 3e18, 1e19, 2e19, 1e20, 1e21])
Y = np.array([0.50, 0.55, 0.40, 0.42, 0.30, 0.31, 0.25])


def test_pareto_keeps_only_non_dominated_runs() -> None:
    assert frontier(X, Y, "pareto").tolist() == [True, False, True, False, True, False, True]


def test_pareto_keeps_one_of_equal_compute_runs() -> None:
    keep = frontier(np.array([1.0, 1.0, 2.0]), np.array([0.5, 0.4, 0.3]), "pareto")
    assert keep.tolist() == [False, True, True]


def test_binned_keeps_the_best_per_log_bin() -> None:
    keep = frontier(X, Y, "binned", bins_per_decade=1)
    # bins: [1e18, 1e19) -> c, [1e19, 1e20) -> e, [1e20, 1e21) -> f, [1e21, ...) -> g
    assert keep.tolist() == [False, False, True, False, True, True, True]


def test_lower_hull_in_log_log_stops_at_the_lowest_point() -> None:
    keep = frontier(X, Y, "hull")
    lx, ly = np.log(X[keep]), np.log(Y[keep])
    # every kept point is a vertex of a convex, decreasing chain
    slopes = np.diff(ly) / np.diff(lx)
    assert np.all(slopes < 0) and np.all(np.diff(slopes) > 0)
    assert keep[0] and keep[np.argmin(Y)]
    assert not keep[1] and not keep[3]  # dominated runs are never on it


def test_unknown_frontier_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown frontier 'top'"):
        frontier(X, Y, "top")


def test_batched_nnls_equals_scipy_per_problem() -> None:
    rng = np.random.default_rng(0)
    G, n, k = 40, 30, 3
    M = rng.normal(size=(G, n, k))
    w = rng.uniform(0.2, 1.0, size=(G, n))
    got = batched_nnls(M, w)
    for g in range(G):
        sw = np.sqrt(w[g])
        want, _ = nnls(M[g] * sw[:, None], sw)
        assert got[g] == pytest.approx(want, abs=1e-8), f"problem {g}"
