"""Fit a declared law: variable-projection grid for starting points, then an L-BFGS-B refine with analytic
gradients of the Huber-on-log objective over all parameters.

Groups (recipes, runs) get their own copy of every parameter except the `shared` ones, which is how a
recipe comparison with shared exponents is fitted: one joint objective, summed over groups.
"""

from __future__ import annotations

import warnings

import numpy as np

from scaling.laws.laws import Law
from scaling.laws.problem import Fit, FitData, FitWarning, Layout
from scaling.laws.refine import refine
from scaling.laws.varpro import best_indices, profile


def fit(
    law: Law,
    data: FitData,
    shared: tuple[str, ...] = (),
    starts: int = 4,
    warm: np.ndarray | None = None,
    coarse: bool = False,
    warn: bool = True,
) -> Fit:
    """Fit `law` to `data`: grid (variable projection) -> `starts` refines -> best; `warm` adds a start."""
    _check_counts(law, data, shared)
    if len(data.groups) > 1 and not shared:
        return _fit_groups_apart(law, data, starts, warm, coarse, warn)
    layout = Layout(law, data.groups, shared)
    best = None
    if warm is not None and coarse:
        # Bootstrap refit: start at the full-data optimum; a thinned grid only overrides it when one of
        # its cells already beats the refined warm start, i.e. the replicate's optimum moved basin.
        best = refine(law, layout, data, np.asarray(warm, dtype=float), ftol=1e-12)
        candidates = [t for t, v in _grid_starts(law, layout, data, 1, coarse=True) if v < best[1]]
    else:
        candidates = [t for t, _ in _grid_starts(law, layout, data, starts, coarse=False)]
        if warm is not None:
            candidates.append(np.asarray(warm, dtype=float))
    for theta0 in candidates:
        theta, obj, ok, msg = refine(law, layout, data, theta0)
        if best is None or obj < best[1]:
            best = (theta, obj, ok, msg)
    result = Fit(law, layout, best[0], best[1], best[2], best[3])
    if warn:
        _warn_if_doubtful(result)
    return result


def _fit_groups_apart(law, data, starts, warm, coarse, warn) -> Fit:
    # Nothing shared: the joint objective separates, so each group is its own smaller fit.
    layout = Layout(law, data.groups)
    theta = np.zeros(len(layout.names))
    objective_sum, ok, messages = 0.0, True, []
    for g, name in enumerate(data.groups):
        sub = data.subset(data.group == g)
        sub = FitData(sub.X, sub.y, sub.run, np.zeros(len(sub.y), dtype=int), [name], sub.weight)
        w = None if warm is None else layout.group_theta(np.asarray(warm), g)
        one = fit(law, sub, (), starts, w, coarse, warn=False)
        theta[layout.index[g]] = one.values
        objective_sum += one.objective
        ok &= one.converged
        if not one.converged:
            messages.append(f"{name}: {one.message}")
    result = Fit(law, layout, theta, objective_sum, ok, "; ".join(messages) or "converged")
    if warn:
        _warn_if_doubtful(result)
    return result


def _grid_starts(law: Law, layout: Layout, data: FitData, count: int, coarse: bool) -> list[tuple[np.ndarray, float]]:
    """Up to `count` starting vectors from the variable-projection grid, with their grid objective."""
    axes = law.grid(data.X)
    if coarse:
        axes = {p: a[::4] if len(a) > 12 else a for p, a in axes.items()}
    m = len(law.nonlinear)
    profs = []
    for g in range(len(layout.groups)):
        sel = data.group == g
        X = {k: v[sel] for k, v in data.X.items()}
        w = None if data.weight is None else data.weight[sel]
        profs.append(profile(law, X, data.y[sel], w, axes, irls_steps=1 if coarse else 3))
    # Shared nonlinear parameters index the joint grid; the others are minimised per group first.
    free_axes = tuple(j for j, p in enumerate(law.nonlinear) if p not in layout.shared and len(profs) > 1)
    joint = sum(p.objective.min(axis=free_axes, keepdims=True) if free_axes else p.objective for p in profs)
    starts = []
    for cell in best_indices(joint, count):
        theta = np.zeros(len(layout.names))
        lin_sum = np.zeros(len(law.linear))
        for g, prof in enumerate(profs):
            sub = prof.objective[tuple(slice(None) if j in free_axes else slice(c, c + 1) for j, c in enumerate(cell))]
            inner = np.unravel_index(np.argmin(sub), sub.shape)
            idx = tuple(inner[j] if j in free_axes else cell[j] for j in range(m))
            nl = [axes[p][i] for p, i in zip(law.nonlinear, idx)]
            theta[layout.index[g]] = np.concatenate([nl, prof.linear[idx]])
            lin_sum += prof.linear[idx]
        for j, p in enumerate(law.linear):  # a shared linear parameter starts at the groups' mean
            if p in layout.shared:
                theta[layout.index[0, m + j]] = lin_sum[j] / len(profs)
        starts.append((theta, float(joint[cell])))
    return starts


def _check_counts(law: Law, data: FitData, shared: tuple[str, ...]) -> None:
    for g, name in enumerate(data.groups):
        sel = data.group == g
        n = int(sel.sum()) if data.weight is None else int((data.weight[sel] > 0).sum())
        own = len(law.params) if len(data.groups) == 1 else len([p for p in law.params if p not in shared])
        if n <= own:
            where = f" in group {str(name)!r}" if len(data.groups) > 1 else ""
            raise ValueError(
                f"law {law.name} has {own} free parameters{where} but only {n} points to fit them; "
                f"add runs, use a law with fewer parameters (e.g. power), or share parameters across groups"
            )


def _warn_if_doubtful(result: Fit) -> None:
    if not result.converged:
        warnings.warn(
            f"{result.law.name} fit did not converge ({result.message}); reporting the best attempt "
            f"(objective {result.objective:.6g}). Check the data or try another law.",
            FitWarning,
            stacklevel=3,
        )
    for b in at_bound(result):
        warnings.warn(
            f"{result.law.name}: parameter {b['param']} = {b['value']:.4g} sits on its {b['side']} bound "
            f"{b['bound']:g}; the data do not pin it down",
            FitWarning,
            stacklevel=3,
        )


def at_bound(result: Fit) -> list[dict]:
    """Nonlinear parameters whose optimum sits on a search limit: [{param, value, bound, side}]. The
    optimizer may well have converged there; the data still do not determine that parameter."""
    out = []
    for name, (lo, hi), v in zip(result.names, result.layout.bounds(), result.values):
        if name.split("[")[0] not in result.law.nonlinear:
            continue
        # A bound of exactly 0 is a legitimate value (saturating d = 0 is a plain power law plus floor);
        # the others are search limits, and an optimum there means the data do not determine it.
        for side, bound in (("lower", lo), ("upper", hi)):
            if bound != 0 and np.isfinite(bound) and np.isclose(v, bound, rtol=1e-6):
                out.append({"param": name, "value": float(v), "bound": float(bound), "side": side})
    return out
