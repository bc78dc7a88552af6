"""M4 of Alabdulmohsin, Neyshabur and Zhai 2022 ("Revisiting Neural Scaling Laws in Language and Vision"):

    (L - eps_inf) / (eps_0 - L)^alpha = beta x^c,     c < 0, alpha >= 0, eps_inf < L < eps_0,

an error or loss L that falls from eps_0 (random guessing) towards eps_inf along a power law in x with a
sigmoid-like transition in log x. L is implicit: it is solved per point.

How it fits our variable-projection fitter. Write L = eps_inf + span u with span = eps_0 - eps_inf and u in
(0, 1). Dividing the relation by span^(1 - alpha):

    u / (1 - u)^alpha = (x / x0)^c,     x0 = (beta / span^(1 - alpha))^(-1/c),

so u depends only on (c, alpha, x0), and L = eps_inf * 1 + span * u(x) is *linear* in (eps_inf, span), both
>= 0: the basis is [1, u(x; c, alpha, x0)], exactly the shape every other law has. x0 is where u = 1/2 for
alpha = 1 (the middle of the transition on the x axis); it spans decades, so it is fitted as log_x0 = ln x0.
The paper's beta = span^(1 - alpha) x0^(-c) and eps_0 = eps_inf + span are reported beside the fitted ones.

Solving for u: with v = logit(u), log u = -softplus(-v) and log(1 - u) = -softplus(v), the relation is
G(v) = -softplus(-v) + alpha softplus(v) = r with r = c (ln x - log_x0). G is increasing with slope
G'(v) = (1 - u) + alpha u between min(1, alpha) and max(1, alpha), and convex or concave throughout
(G'' = (alpha - 1) u (1 - u)), so Newton's method from a point on the asymptote converges in a few steps.
alpha = 0 is the limit u = min((x / x0)^c, 1): below the transition L stops at eps_0 (the paper's code drops the
bound there; we keep L inside its range).

Gradients by implicit differentiation of G(v(theta)) = r(theta), with du/dv = u (1 - u):
    du/dr = u (1 - u) / G'(v),   dr/dc = ln x - log_x0,   dr/dlog_x0 = -c,
    du/dalpha = -u (1 - u) softplus(v) / G'(v)   (from dG/dalpha = softplus(v)).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

Arrays = Mapping[str, np.ndarray]

_MIN_ALPHA = 1e-9  # alpha = 0 is solved as this: u = min((x / x0)^c, 1) to within 1e-9 in log u
_NEWTON_STEPS = 40


def _softplus(v: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, v)


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * v))  # no overflow for large |v|


def solve_logit(r: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """v = logit(u) solving -softplus(-v) + alpha softplus(v) = r, elementwise (arrays broadcast)."""
    r, alpha = np.broadcast_arrays(np.asarray(r, dtype=float), np.asarray(alpha, dtype=float))
    shape = r.shape
    r, a = r.ravel(), np.maximum(alpha, _MIN_ALPHA).ravel()
    # Start on the asymptote of the side r lies on: G ~ v for v << 0, G ~ alpha v for v >> 0.
    v = np.where(r < 0, r, r / a)
    live = np.arange(len(r))  # only unconverged points are iterated: on a grid, most converge in ~5 steps
    for _ in range(_NEWTON_STEPS):
        vl, al = v[live], a[live]
        sp = _softplus(-vl)  # -log u; softplus(v) = sp + v: one logaddexp per step (the hot path of a grid)
        u = np.exp(-sp)
        step = (al * vl + (al - 1.0) * sp - r[live]) / ((1.0 - u) + al * u)
        v[live] = vl - step
        live = live[np.abs(step) > 1e-12 * (1.0 + np.abs(vl))]
        if len(live) == 0:
            break
    return v.reshape(shape)


def transition(X: Arrays, nl: Sequence) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u, v, r) for the nonlinear parameters (c, alpha, log_x0), each a scalar or a [G, 1] grid column."""
    c, alpha, log_x0 = (np.asarray(p, dtype=float) for p in nl)
    r = c * (np.log(X["x"]) - log_x0)
    v = solve_logit(r, alpha)
    return _sigmoid(v), v, r


def basis(X: Arrays, nl: Sequence) -> np.ndarray:
    u = transition(X, nl)[0]
    return np.stack([np.ones_like(u), u], axis=-1)


def basis_grad(X: Arrays, nl: Sequence[float]) -> np.ndarray:
    c, alpha, log_x0 = (float(p) for p in nl)
    u, v, _ = transition(X, nl)
    a = max(alpha, _MIN_ALPHA)
    slope = (1.0 - u) + a * u  # G'(v)
    du_dr = u * (1.0 - u) / slope
    g = np.zeros((len(u), 2, 3))
    g[:, 1, 0] = du_dr * (np.log(X["x"]) - log_x0)
    g[:, 1, 1] = -u * (1.0 - u) * _softplus(v) / slope
    g[:, 1, 2] = du_dr * -c
    return g


def grid(X: Arrays) -> dict[str, np.ndarray]:
    lo, hi = np.log(X["x"].min()), np.log(X["x"].max())
    span = max(hi - lo, 1e-9)
    # x0 from far below the data (power-law regime: only the tail is seen) to beyond it (the data sit
    # before the transition's middle), on the data's own scale.
    return {
        "c": -np.geomspace(0.02, 3.0, 14),
        "alpha": np.array([0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0]),
        "log_x0": np.linspace(lo - 2.0 * span, hi + 0.5 * span, 14),
    }


def inverse(p: Mapping[str, float], y: np.ndarray) -> np.ndarray:
    """x at which L = y: u = (y - eps_inf) / span, x = x0 (u / (1 - u)^alpha)^(1/c); nan outside (eps_inf, eps_0)."""
    u = (np.asarray(y, dtype=float) - p["eps_inf"]) / p["span"] if p["span"] > 0 else np.full(np.shape(y), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = u / (1.0 - u) ** p["alpha"]
        x = np.exp(p["log_x0"] + np.log(k) / p["c"])
    return np.where((u > 0) & (u < 1) & np.isfinite(x), x, np.nan)


def reported(p: Mapping[str, float]) -> dict[str, float]:
    """The paper's parameters not fitted directly: eps_0 = eps_inf + span, beta = span^(1 - alpha) x0^(-c)."""
    with np.errstate(all="ignore"):
        beta = float(np.exp((1.0 - p["alpha"]) * np.log(p["span"]) - p["c"] * p["log_x0"])) if p["span"] > 0 else 0.0
    return {"eps_0": p["eps_inf"] + p["span"], "beta": beta}
