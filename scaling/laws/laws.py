"""The scaling laws we fit, each one declared object: formula, parameters, bounds, starting grid.

Every law here is *linear in some parameters* given the others: prediction = basis(X; nonlinear) @ linear,
with the linear coefficients constrained to be >= 0. That is what lets the fitter use variable projection
(a grid over the few nonlinear parameters with a non-negative linear solve inside) instead of a 5-D
multi-start search. Adding a law is one `Law(...)` entry in `LAWS`.

Shapes: `X[name]` is `[n]`; nonlinear parameters passed to `basis` may be arrays of shape `[G, 1]` (one row
per grid point), so `basis` returns `[G, n, k]` on a grid and `[n, k]` for scalars. `basis_grad` takes
scalars and returns `[n, k, m]`: d basis[:, j] / d nonlinear[l].
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from scaling.laws import m4

Arrays = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Law:
    name: str
    formula: str
    inputs: tuple[str, ...]  # roles of the input arrays, e.g. ("N", "D"); the CLI maps columns onto them
    nonlinear: tuple[str, ...]  # searched on a grid, then refined
    linear: tuple[str, ...]  # coefficients of the basis columns, all >= 0
    basis: Callable[[Arrays, Sequence], np.ndarray]
    basis_grad: Callable[[Arrays, Sequence[float]], np.ndarray]
    bounds: Mapping[str, tuple[float, float]]  # for the nonlinear parameters
    grid: Callable[[Arrays], dict[str, np.ndarray]]  # starting grid, may depend on the data's range
    log_inputs: tuple[str, ...]  # inputs raised to a power or logged: must be > 0
    # x at which the law reaches y (1-D laws only), used for compute multipliers; nan where unreachable.
    inverse: Callable[[Mapping[str, float], np.ndarray], np.ndarray] | None = None
    description: str = ""
    # parameters of the published form that are functions of the fitted ones (M4's eps_0 and beta)
    reported: Callable[[Mapping[str, float]], dict[str, float]] | None = None

    @property
    def params(self) -> tuple[str, ...]:
        return self.nonlinear + self.linear

    def predict(self, X: Arrays, theta: Sequence[float]) -> np.ndarray:
        m = len(self.nonlinear)
        return self.basis(X, list(theta[:m])) @ np.asarray(theta[m:], dtype=float)


def _pow(x: np.ndarray, e) -> np.ndarray:
    # x ** -e computed in log space: stable for x up to 1e25 and broadcast over grid rows.
    return np.exp(-np.asarray(e) * np.log(x))


# --- chinchilla: L(N, D) = E + A / N^alpha + B / D^beta (Hoffmann et al. 2022) -----------------------------
def _chinchilla_basis(X: Arrays, nl: Sequence) -> np.ndarray:
    alpha, beta = nl
    n_term, d_term = _pow(X["N"], alpha), _pow(X["D"], beta)
    return np.stack([np.ones_like(n_term * d_term), n_term, d_term], axis=-1)


def _chinchilla_grad(X: Arrays, nl: Sequence[float]) -> np.ndarray:
    alpha, beta = nl
    n = len(X["N"])
    g = np.zeros((n, 3, 2))
    g[:, 1, 0] = -np.log(X["N"]) * _pow(X["N"], alpha)
    g[:, 2, 1] = -np.log(X["D"]) * _pow(X["D"], beta)
    return g


# --- saturating: err(x) = a (x + d)^-b + c (Zhai et al. 2022) --------------------------------------------
def _saturating_basis(X: Arrays, nl: Sequence) -> np.ndarray:
    b, d = nl
    t = _pow(X["x"] + np.asarray(d), b)
    return np.stack([t, np.ones_like(t)], axis=-1)


def _saturating_grad(X: Arrays, nl: Sequence[float]) -> np.ndarray:
    b, d = nl
    xd = X["x"] + d
    t = _pow(xd, b)
    g = np.zeros((len(xd), 2, 2))
    g[:, 0, 0] = -np.log(xd) * t
    g[:, 0, 1] = -b * t / xd
    return g


def _saturating_grid(X: Arrays) -> dict[str, np.ndarray]:
    lo, hi = np.log10(X["x"].min()), np.log10(X["x"].max())
    # d shifts the power law's knee; it lives on the data's own scale, from far below to beyond the range.
    return {"b": np.geomspace(0.01, 2.0, 24), "d": np.concatenate([[0.0], np.logspace(lo - 3, hi + 1, 17)])}


def _saturating_inverse(p: Mapping[str, float], y: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        x = ((y - p["c"]) / p["a"]) ** (-1.0 / p["b"]) - p["d"]
    return np.where((y > p["c"]) & (x > 0), x, np.nan)


# --- power: y = a x^b, and power_offset: y = a x^b + c ----------------------------------------------------
def _power_basis(X: Arrays, nl: Sequence) -> np.ndarray:
    return _pow(X["x"], -np.asarray(nl[0]))[..., None]


def _power_grad(X: Arrays, nl: Sequence[float]) -> np.ndarray:
    return (np.log(X["x"]) * _pow(X["x"], -nl[0]))[:, None, None]


def _power_offset_basis(X: Arrays, nl: Sequence) -> np.ndarray:
    t = _pow(X["x"], -np.asarray(nl[0]))
    return np.stack([t, np.ones_like(t)], axis=-1)


def _power_offset_grad(X: Arrays, nl: Sequence[float]) -> np.ndarray:
    g = np.zeros((len(X["x"]), 2, 1))
    g[:, 0, 0] = np.log(X["x"]) * _pow(X["x"], -nl[0])
    return g


def _power_inverse(p: Mapping[str, float], y: np.ndarray) -> np.ndarray:
    c = p.get("c", 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = ((y - c) / p["a"]) ** (1.0 / p["b"])
    return np.where(y > c, x, np.nan)


# --- convergence: L(s) = L0 + A S1(s)^-alpha - C S2(s) (Tissue et al. 2024) ---------------------------------
def _convergence_basis(X: Arrays, nl: Sequence) -> np.ndarray:
    t = _pow(X["S1"], nl[0])
    return np.stack([np.ones_like(t), t, np.broadcast_to(-X["S2"], t.shape)], axis=-1)


def _convergence_grad(X: Arrays, nl: Sequence[float]) -> np.ndarray:
    g = np.zeros((len(X["S1"]), 3, 1))
    g[:, 1, 0] = -np.log(X["S1"]) * _pow(X["S1"], nl[0])
    return g


# ... with a model-size term: L(s, N) = L0 + A S1^-alpha - C S2 + B N^-beta (Tissue et al. 2024, sec. 5)
def _convergence_size_basis(X: Arrays, nl: Sequence) -> np.ndarray:
    t, u = _pow(X["S1"], nl[0]), _pow(X["N"], nl[1])
    shape = np.broadcast_shapes(t.shape, u.shape)
    cols = [
        np.ones(shape),
        np.broadcast_to(t, shape),
        np.broadcast_to(-X["S2"], shape),
        np.broadcast_to(u, shape),
    ]
    return np.stack(cols, axis=-1)


def _convergence_size_grad(X: Arrays, nl: Sequence[float]) -> np.ndarray:
    g = np.zeros((len(X["S1"]), 4, 2))
    g[:, 1, 0] = -np.log(X["S1"]) * _pow(X["S1"], nl[0])
    g[:, 3, 1] = -np.log(X["N"]) * _pow(X["N"], nl[1])
    return g


_EXPONENT_GRID = np.linspace(0.02, 2.0, 45)

LAWS: dict[str, Law] = {
    law.name: law
    for law in [
        Law(
            name="chinchilla",
            formula="L(N, D) = E + A / N^alpha + B / D^beta",
            inputs=("N", "D"),
            nonlinear=("alpha", "beta"),
            linear=("E", "A", "B"),
            basis=_chinchilla_basis,
            basis_grad=_chinchilla_grad,
            bounds={"alpha": (1e-3, 3.0), "beta": (1e-3, 3.0)},
            grid=lambda X: {"alpha": _EXPONENT_GRID, "beta": _EXPONENT_GRID},
            log_inputs=("N", "D"),
            description="loss against parameters N and samples/tokens D (Hoffmann et al. 2022)",
        ),
        Law(
            name="saturating",
            formula="err(x) = a (x + d)^-b + c",
            inputs=("x",),
            nonlinear=("b", "d"),
            linear=("a", "c"),
            basis=_saturating_basis,
            basis_grad=_saturating_grad,
            bounds={"b": (1e-4, 5.0), "d": (0.0, np.inf)},
            grid=_saturating_grid,
            log_inputs=("x",),
            inverse=_saturating_inverse,
            description="error rate with a floor c against compute, params or samples (Zhai et al. 2022)",
        ),
        Law(
            name="power",
            formula="y = a x^b",
            inputs=("x",),
            nonlinear=("b",),
            linear=("a",),
            basis=_power_basis,
            basis_grad=_power_grad,
            bounds={"b": (-5.0, 5.0)},
            grid=lambda X: {"b": np.linspace(-2.0, 2.0, 161)},
            log_inputs=("x",),
            inverse=_power_inverse,
            description="pure power law (a straight line on log-log axes)",
        ),
        Law(
            name="power_offset",
            formula="y = a x^b + c",
            inputs=("x",),
            nonlinear=("b",),
            linear=("a", "c"),
            basis=_power_offset_basis,
            basis_grad=_power_offset_grad,
            bounds={"b": (-5.0, 5.0)},
            grid=lambda X: {"b": np.linspace(-2.0, 2.0, 161)},
            log_inputs=("x",),
            inverse=_power_inverse,
            description="power law plus a constant floor c",
        ),
        Law(
            name="convergence",
            formula="L(s) = L0 + A S1(s)^-alpha - C S2(s)",
            inputs=("S1", "S2"),
            nonlinear=("alpha",),
            linear=("L0", "A", "C"),
            basis=_convergence_basis,
            basis_grad=_convergence_grad,
            bounds={"alpha": (1e-3, 5.0)},
            grid=lambda X: {"alpha": np.geomspace(0.01, 4.0, 60)},
            log_inputs=("S1",),
            description="whole training curves, schedule-aware (Tissue et al. 2024); one model size",
        ),
        Law(
            name="convergence_size",
            formula="L(s, N) = L0 + A S1(s)^-alpha - C S2(s) + B / N^beta",
            inputs=("S1", "S2", "N"),
            nonlinear=("alpha", "beta"),
            linear=("L0", "A", "C", "B"),
            basis=_convergence_size_basis,
            basis_grad=_convergence_size_grad,
            bounds={"alpha": (1e-3, 5.0), "beta": (1e-3, 3.0)},
            grid=lambda X: {"alpha": np.geomspace(0.01, 4.0, 40), "beta": _EXPONENT_GRID[::2]},
            log_inputs=("S1", "N"),
            description="training curves across model sizes N (Tissue et al. 2024, model-size extension)",
        ),
        Law(
            name="m4",
            formula="(L - eps_inf) / (eps_0 - L)^alpha = beta x^c, L solved per point; eps_0 = eps_inf + span",
            inputs=("x",),
            nonlinear=("c", "alpha", "log_x0"),
            linear=("eps_inf", "span"),
            basis=m4.basis,
            basis_grad=m4.basis_grad,
            bounds={"c": (-5.0, 0.0), "alpha": (0.0, 10.0), "log_x0": (-230.0, 230.0)},
            grid=m4.grid,
            log_inputs=("x",),
            inverse=m4.inverse,
            description="error falling from eps_0 to eps_inf with a sigmoid-like transition in log x "
            "(Alabdulmohsin et al. 2022, M4)",
            reported=m4.reported,
        ),
    ]
}


def get_law(name: str) -> Law:
    if name not in LAWS:
        raise ValueError(f"unknown law {name!r}; choose one of: {', '.join(LAWS)}")
    return LAWS[name]
