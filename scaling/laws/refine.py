"""Local refine of all parameters at once: L-BFGS-B with analytic gradients of the Huber-on-log objective.

Conditioning matters more than the optimiser here. In the raw parameters, moving an exponent moves every
N^-alpha by orders of magnitude and its coefficient must follow (A and alpha are nearly collinear), so
L-BFGS-B crawls along a narrow valley. We optimise instead the coefficients of *normalised* basis columns,
c'_j = c_j * rms_j(theta), where rms_j is the root-mean-square of column j over the points at the current
exponents: an exponent step then leaves the column's typical size alone. That halves the iterations on the
Chinchilla points. Zero-size columns (S2 of a constant-lr curve) keep rms 1.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from scaling.laws.blas_threads import single_blas_thread
from scaling.laws.laws import Law
from scaling.laws.objective import huber_log
from scaling.laws.problem import FitData, Layout

MAXCOR = 20  # L-BFGS history pairs; with at most ~10 parameters, memory is no concern


class _Problem:
    """One refine: the data split by group once, and the objective in normalised coordinates."""

    def __init__(self, law: Law, layout: Layout, data: FitData):
        self.law, self.layout = law, layout
        self.m = len(law.nonlinear)
        self.parts = []
        for g in range(len(layout.groups)):
            sel = data.group == g
            X = {k: v[sel] for k, v in data.X.items()}
            w = np.ones(int(sel.sum())) if data.weight is None else data.weight[sel]
            self.parts.append((X, data.y[sel], w))
        # Shared coefficients are one number for several groups; normalising per group would split them.
        shared = np.array([p in layout.shared for p in law.linear])
        self.normalise = ~shared if len(layout.groups) > 1 else np.ones(len(law.linear), dtype=bool)

    def basis(self, g: int, nl: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Normalised basis Bn [n, k], the raw gradient dB [n, k, m], rms [k] and d log rms / d nl [k, m].

        d Bn / d nl = dB / rms - Bn * dlog; callers contract it with vectors instead of forming it.
        """
        X = self.parts[g][0]
        B, dB = self.law.basis(X, list(nl)), self.law.basis_grad(X, list(nl))
        ms = np.einsum("nk,nk->k", B, B) / len(B)
        keep = self.normalise & (ms > 0)
        rms = np.where(keep, np.sqrt(ms), 1.0)
        dlog = np.einsum("nk,nkm->km", B, dB) / len(B) / rms[:, None] ** 2
        dlog[~keep] = 0.0
        return B / rms, dB, rms, dlog

    def to_normalised(self, theta: np.ndarray) -> np.ndarray:
        return self._convert(theta, lambda c, rms: c * rms)

    def from_normalised(self, z: np.ndarray) -> np.ndarray:
        return self._convert(z, lambda c, rms: c / rms)

    def _convert(self, vec: np.ndarray, op) -> np.ndarray:
        out = vec.copy()
        for g in range(len(self.parts)):
            idx = self.layout.index[g]
            rms = self.basis(g, vec[idx[: self.m]])[2]
            out[idx[self.m :]] = op(vec[idx[self.m :]], rms)
        return out

    def objective(self, z: np.ndarray) -> tuple[float, np.ndarray]:
        total, grad = 0.0, np.zeros_like(z)
        for g, (_, y, w) in enumerate(self.parts):
            if len(y) == 0:
                continue
            idx = self.layout.index[g]
            nl, c = z[idx[: self.m]], z[idx[self.m :]]
            Bn, dB, rms, dlog = self.basis(g, nl)
            # einsum, not @: these are tiny, and OpenBLAS may wake worker threads for them that then spin
            # against the main thread (measured 5x slower under pytest on 2 shared cores).
            value, dvalue = huber_log(np.einsum("nk,k->n", Bn, c), y)
            total += float(np.einsum("n,n->", value, w))
            gpred = dvalue * w  # d objective / d prediction, [n]
            g_lin = np.einsum("nk,n->k", Bn, gpred)
            # sum_n gpred_n sum_k c_k dBn[n, k, :], with dBn = dB / rms - Bn * dlog
            g_nl = np.einsum("k,km->m", c / rms, np.einsum("n,nkm->km", gpred, dB)) - np.einsum(
                "k,km->m", c * g_lin, dlog
            )
            np.add.at(grad, idx, np.concatenate([g_nl, g_lin]))
        return total, grad


def refine(
    law: Law, layout: Layout, data: FitData, theta0: np.ndarray, ftol: float = 1e-15
) -> tuple[np.ndarray, float, bool, str]:
    """(theta, objective, converged, message) of an L-BFGS-B run from theta0. Bootstrap refits pass
    ftol 1e-12: 30% fewer evaluations, parameters equal to ~1e-6, far inside any interval."""
    prob = _Problem(law, layout, data)
    z0 = prob.to_normalised(np.asarray(theta0, dtype=float))
    # Every coordinate is scaled to ~1 and the objective to ~1, so tolerances mean the same for every law.
    scale = np.where(np.abs(z0) > 0, np.abs(z0), _zero_scale(law, layout, prob, z0))
    f0 = max(prob.objective(z0)[0], 1e-300)

    def fun(u: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = prob.objective(u * scale)
        return f / f0, g * scale / f0

    bounds = [(lo / s, hi / s) for (lo, hi), s in zip(layout.bounds(), scale)]
    u0 = np.clip(z0 / scale, [b[0] for b in bounds], [b[1] for b in bounds])
    with single_blas_thread():
        res = minimize(
            fun,
            u0,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": 5000, "ftol": ftol, "gtol": ftol * 1e5, "maxcor": MAXCOR},
        )
    theta = prob.from_normalised(res.x * scale)
    # L-BFGS-B stops with "abnormal line search" when f no longer decreases in floating point: that is
    # convergence when the projected gradient is already negligible.
    converged = bool(res.success) or (res.status == 2 and _projected_grad(res.jac, res.x, bounds) < 1e-4)
    message = "converged" if converged else str(res.message)
    return theta, float(res.fun * f0), converged, message


def _zero_scale(law: Law, layout: Layout, prob: _Problem, z0: np.ndarray) -> np.ndarray:
    """Step sizes for coordinates that start at exactly 0 (a coefficient NNLS switched off, saturating d)."""
    out = np.ones_like(z0)
    m = len(law.nonlinear)
    for g, (X, y, _) in enumerate(prob.parts):
        idx = layout.index[g]
        grid = law.grid(X)
        for j, p in enumerate(law.nonlinear):
            positive = grid[p][grid[p] > 0]
            out[idx[j]] = positive.min() if len(positive) else 1.0
        rms = prob.basis(g, z0[idx[:m]])[2]
        # A normalised column has rms 1, so its coefficient is on the scale of y; an unnormalised one's
        # on the scale of y / rms.
        out[idx[m:]] = np.median(y) / np.where(prob.normalise, 1.0, rms) if len(y) else 1.0
    return out


def _projected_grad(g: np.ndarray, z: np.ndarray, bounds: list[tuple[float, float]]) -> float:
    lo = np.array([b[0] for b in bounds], dtype=float)
    hi = np.array([b[1] if b[1] is not None else np.inf for b in bounds], dtype=float)
    pg = np.where((z <= lo) & (g > 0), 0.0, g)
    pg = np.where((z >= hi) & (pg < 0), 0.0, pg)
    return float(np.max(np.abs(pg))) if len(pg) else 0.0
