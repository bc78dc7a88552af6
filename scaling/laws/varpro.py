"""Variable projection on a grid: for every grid point of the nonlinear parameters, solve for the linear ones.

Czech et al. 2026 show that fitting Chinchilla's 5 parameters jointly is ill-conditioned while the 2-D
problem over the exponents is not. Given the exponents, the prediction is `basis @ c` with c >= 0, and the
Huber-on-log objective is close to a weighted least-squares problem in relative residuals
(log(p/y) ~ p/y - 1), so each grid point needs only a small non-negative least-squares solve, reweighted a
few times for Huber (IRLS). All grid points are solved at once: with k <= 4 linear parameters the NNLS
optimum is the best *feasible* unconstrained solution over the 2^k - 1 supports, which vectorises as
batched k x k solves instead of thousands of scipy calls.
"""

from __future__ import annotations

from itertools import combinations
from typing import NamedTuple

import numpy as np

from scaling.laws.laws import Arrays, Law
from scaling.laws.objective import huber, huber_irls_weight, log_residual

IRLS_STEPS = 3


class Profile(NamedTuple):
    objective: np.ndarray  # [*grid_shape]: Huber objective at the best linear coefficients
    linear: np.ndarray  # [*grid_shape, k]
    axes: dict[str, np.ndarray]  # the grid, one 1-D array per nonlinear parameter


def batched_nnls(M: np.ndarray, w: np.ndarray) -> np.ndarray:
    """argmin_{c >= 0} sum_n w[g, n] (M[g, n] @ c - 1)^2 for every g; M [G, n, k], w [G, n] -> [G, k]."""
    G, _, k = M.shape
    Mw = M * w[..., None]
    gram = np.matmul(Mw.transpose(0, 2, 1), M)  # [G, k, k]; matmul, not einsum: 10x faster here
    rhs = Mw.sum(axis=1)
    # A relative ridge keeps nearly collinear columns (exponent -> 0 makes N^-alpha ~ 1) solvable.
    ridge = 1e-12 * np.einsum("gkk->g", gram)[:, None, None] * np.eye(k) + 1e-300
    best_val = np.full(G, np.inf)
    best = np.zeros((G, k))
    for size in range(1, k + 1):
        for support in combinations(range(k), size):
            s = list(support)
            sub = gram[:, s][:, :, s] + ridge[:, :size, :size]
            coef = np.linalg.solve(sub, rhs[:, s, None])[..., 0]
            # For the exact LS solution on a support, the weighted SSE is const - rhs . coef.
            val = -(rhs[:, s] * coef).sum(axis=1)
            take = np.all(coef >= 0.0, axis=1) & (val < best_val)
            best_val = np.where(take, val, best_val)
            full = np.zeros((G, k))
            full[:, s] = coef
            best = np.where(take[:, None], full, best)
    return best


def profile(
    law: Law,
    X: Arrays,
    y: np.ndarray,
    weight: np.ndarray | None = None,
    axes: dict[str, np.ndarray] | None = None,
    irls_steps: int = IRLS_STEPS,
) -> Profile:
    """The objective profiled over the law's nonlinear grid (or `axes`), with its linear coefficients."""
    axes = law.grid(X) if axes is None else axes
    mesh = np.meshgrid(*[np.asarray(axes[p], dtype=float) for p in law.nonlinear], indexing="ij")
    shape = mesh[0].shape
    basis = law.basis(X, [m.reshape(-1, 1) for m in mesh])  # [G, n, k]
    data_w = np.ones_like(y) if weight is None else weight
    M = basis / y[None, :, None]
    w = np.broadcast_to(data_w, M.shape[:2]).copy()
    for _ in range(irls_steps + 1):
        coef = batched_nnls(M, w)
        r, _ = log_residual(np.matmul(basis, coef[..., None])[..., 0], y[None, :])
        w = data_w * huber_irls_weight(r)
    obj = (huber(r) * data_w).sum(axis=1)
    obj = np.where(np.isfinite(obj), obj, np.inf)
    return Profile(obj.reshape(shape), coef.reshape(*shape, -1), axes)


def best_indices(obj: np.ndarray, count: int) -> list[tuple[int, ...]]:
    """Up to `count` grid cells with the lowest objective, best first, preferring distinct local minima.

    Distinct basins make multi-start worth its cost; neighbouring cells of one basin refine to one point.
    """
    if count == 1:
        return [tuple(int(i) for i in np.unravel_index(np.argmin(obj), obj.shape))]
    flat = np.argsort(obj, axis=None)
    cells = [np.unravel_index(i, obj.shape) for i in flat[: max(200, count * 20)]]
    local = [c for c in cells if np.isfinite(obj[c]) and _is_local_min(obj, c)]
    rest = [c for c in cells if c not in local]
    return [tuple(int(i) for i in c) for c in (local + rest)[:count]]


def _is_local_min(obj: np.ndarray, idx: tuple) -> bool:
    window = tuple(slice(max(i - 1, 0), i + 2) for i in idx)
    return bool(obj[idx] <= obj[window].min())
