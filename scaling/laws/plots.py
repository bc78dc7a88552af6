"""Figures from a results table and a fit: compute vs accuracy/loss per recipe, isoFLOP curves, compute-
optimal N and D, and training curves with their convergence fits.

Conventions: Okabe-Ito colours (distinguishable with the common colour-vision deficiencies), log compute
with its unit on the axis, the fit solid where it has data and dashed where it extrapolates, the
bootstrap band shaded, held-out runs drawn as black-edged crosses. Every function returns the Figure, so
tests and notebooks can inspect it; `save` writes PNG, PDF or SVG by the file's suffix.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures are files, never windows
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from scaling.laws.bootstrap import percentile_band  # noqa: E402
from scaling.laws.convergence import Curve, annealing_areas, curve_decay  # noqa: E402
from scaling.laws.decisions import allocate  # noqa: E402
from scaling.laws.frontier import frontier  # noqa: E402
from scaling.laws.problem import Fit  # noqa: E402
from scaling.laws.results import Selection  # noqa: E402

PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]
FORMATS = (".png", ".pdf", ".svg")


def save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise ValueError(f"--out {path}: write .png, .pdf or .svg")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return path


def _band(ax, x, draws_fn, draws, level, color, widen: float = 1.0) -> None:
    # widened like FIT.json's intervals (t / z with few degrees of freedom, 1 with many: see bootstrap.py)
    if draws is None or len(draws) < 2:
        return
    ys = np.array([draws_fn(t) for t in draws if np.all(np.isfinite(t))])
    if len(ys) < 2:
        return
    lo, hi = percentile_band(ys, level, widen)
    ax.fill_between(x, lo, hi, color=color, alpha=0.18, linewidth=0)


def _solid_dashed(ax, x, y, inside, color, label) -> None:
    ax.plot(np.where(inside, x, np.nan), np.where(inside, y, np.nan), "-", color=color, lw=1.8, label=label)
    ax.plot(
        np.where(~inside | np.roll(inside, 1) | np.roll(inside, -1), x, np.nan),
        np.where(~inside | np.roll(inside, 1) | np.roll(inside, -1), y, np.nan),
        "--",
        color=color,
        lw=1.4,
    )


# The compute axis says which compute it is: MAE->WSP's stage 1 is in total_flops and not in flops.
COMPUTE_LABELS = {
    "total_flops": "total training compute, incl. stage-1 pre-pretraining (FLOPs)",
    "flops": "training compute of this stage only (FLOPs)",
}


def compute_figure(
    sel: Selection,
    fit: Fit | None = None,
    draws: np.ndarray | None = None,
    frontier_mode: str = "pareto",
    held_runs: tuple[str, ...] = (),
    level: float = 0.9,
    extend: float = 10.0,
    widen: float = 1.0,
) -> plt.Figure:
    """Compute (log FLOPs) vs accuracy or loss, one colour per group, frontier marked, fit with band."""
    d = sel.data
    x = d.X["x"] if "x" in d.X else sel.size
    to_plot = (lambda e: 1.0 - e) if sel.y_is_accuracy else (lambda v: v)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    lo_x, hi_x = x.min(), x.max() * extend
    grid = np.geomspace(lo_x / 1.5, hi_x, 300)
    for g, name in enumerate(d.groups):
        color = PALETTE[g % len(PALETTE)]
        sel_g = d.group == g
        held = sel_g & np.isin(d.run, held_runs)
        fitted = sel_g & ~held
        on_front = np.zeros(len(x), dtype=bool)
        idx = np.flatnonzero(fitted)
        on_front[idx] = frontier(x[idx], d.y[idx], frontier_mode)
        label = name if len(d.groups) > 1 else sel.y_name
        ax.scatter(
            x[fitted & ~on_front],
            to_plot(d.y[fitted & ~on_front]),
            s=18,
            color=color,
            alpha=0.35,
            linewidths=0,
        )
        order = np.argsort(x[on_front])
        ax.plot(
            x[on_front][order],
            to_plot(d.y[on_front][order]),
            "o",
            color=color,
            ms=5,
            mec="white",
            mew=0.6,
            label=f"{label} runs" + (f" ({frontier_mode} frontier filled)" if frontier_mode != "none" else ""),
        )
        if held.any():
            ax.plot(x[held], to_plot(d.y[held]), "X", color=color, mec="black", ms=8, label=f"{label} held out")
        if fit is not None and "x" in d.X and g < len(fit.layout.groups):
            gi = fit.layout.groups.index(name) if name in fit.layout.groups else g
            pred = fit.predict({"x": grid}, gi)
            inside = (grid >= x[fitted].min()) & (grid <= x[fitted].max())
            _solid_dashed(ax, grid, to_plot(pred), inside, color, f"{label} fit ({fit.law.name})")
            _band(ax, grid, lambda t, gi=gi: to_plot(fit.predict({"x": grid}, gi, t)), draws, level, color, widen)
    ax.set_xscale("log")
    if not sel.y_is_accuracy:
        ax.set_yscale("log")
    xname = sel.x_columns[0] if len(sel.x_columns) == 1 else "flops"
    ax.set_xlabel(COMPUTE_LABELS.get(xname, f"{xname} (log scale)"))
    ax.set_ylabel(f"{sel.y_name} (accuracy)" if sel.y_is_accuracy else sel.y_name)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    return fig


def isoflop_figure(sel: Selection, fit: Fit, k: float, bins_per_decade: float = 2.0) -> plt.Figure:
    """Loss vs parameters at (binned) equal compute, the fitted isoFLOP curve and its optimum."""
    d = sel.data
    N, D = d.X["N"], d.X["D"]
    C = k * N * D
    bins = np.round(np.log10(C) * bins_per_decade) / bins_per_decade
    budgets = [b for b in np.unique(bins) if (bins == b).sum() >= 3]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    p = fit.params()
    for i, b in enumerate(budgets):
        color = PALETTE[i % len(PALETTE)]
        m = bins == b
        c = 10.0**b
        ax.scatter(N[m], d.y[m], s=16, color=color, alpha=0.6, linewidths=0)
        n_grid = np.geomspace(N[m].min() / 2, N[m].max() * 2, 200)
        ax.plot(
            n_grid,
            fit.law.predict({"N": n_grid, "D": c / (k * n_grid)}, fit.values),
            color=color,
            lw=1.5,
            label=f"C = 1e{b:g} FLOPs",
        )
        opt = allocate(p, c, k)
        ax.plot([opt["N_opt"]], [opt["loss"]], "*", color=color, mec="black", ms=12)
    ax.plot([], [], "*", color="grey", mec="black", ms=10, label="fitted optimum N_opt(C)")
    ax.set_xscale("log")
    ax.set_xlabel("parameters N")
    ax.set_ylabel(sel.y_name)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    return fig


def allocation_figure(
    fit: Fit,
    draws: np.ndarray | None,
    k: float,
    compute: tuple[float, float],
    data_compute: tuple[float, float] | None = None,
    level: float = 0.9,
    widen: float = 1.0,
) -> plt.Figure:
    """N_opt(C) and D_opt(C) with bootstrap bands; solid over the data's compute range, dashed beyond."""
    grid = np.geomspace(*compute, 200)
    inside = (
        np.ones(len(grid), dtype=bool)
        if data_compute is None
        else (grid >= data_compute[0]) & (grid <= data_compute[1])
    )
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax, key, what, color in zip(axes, ("N_opt", "D_opt"), ("parameters N_opt", "samples D_opt"), PALETTE):
        f = lambda t, key=key: np.array([allocate(dict(zip(fit.law.params, t)), c, k)[key] for c in grid])
        _solid_dashed(ax, grid, f(fit.values), inside, color, f"{key} (fit)")
        _band(ax, grid, f, draws, level, color, widen)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training compute C (FLOPs)")
        ax.set_ylabel(f"compute-optimal {what}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, frameon=False)
    return fig


def curves_figure(
    curves: list[Curve],
    fit: Fit | None = None,
    draws: np.ndarray | None = None,
    fitted_until: float | None = None,
    by_run: bool = False,
    decay: float = 0.999,
    level: float = 0.9,
    anneal_delay: float | None = None,
    widen: float = 1.0,
) -> plt.Figure:
    """Loss (or error) against samples seen (steps where samples are unknown), with the curve fit (a
    convergence law in the schedule's areas, or a one-input law in the step)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for i, c in enumerate(curves):
        color = PALETTE[i % len(PALETTE)]
        use_samples = c.samples is not None and np.all(np.isfinite(c.samples))
        x = c.samples if use_samples else c.step.astype(float)
        ax.plot(x, c.loss, "o", ms=3, color=color, alpha=0.7, label=c.run)
        if fit is None:
            continue
        groups = fit.layout.groups
        g = groups.index(c.run) if by_run and c.run in groups else (groups.index(c.group) if c.group in groups else 0)
        s1, s2 = annealing_areas(c.lr, curve_decay(c, decay, anneal_delay))
        # From the first logged step on: before it (warmup) S1 is tiny and the law is not meant to hold.
        steps = np.unique(np.geomspace(c.step[0], len(c.lr), 200).astype(int))
        X = {"x": steps.astype(float), "S1": s1[steps - 1], "S2": s2[steps - 1], "N": np.full(len(steps), c.params)}
        X = {k: v for k, v in X.items() if k in fit.law.inputs}
        # samples per step is the batch size: constant, so the planned schedule maps to samples linearly
        xs = steps * (x[-1] / c.step[-1]) if use_samples else steps.astype(float)
        limit = c.step[-1] if fitted_until is None else fitted_until * c.step[-1]
        _solid_dashed(ax, xs, fit.predict(X, g), steps <= limit, color, None)
        _band(ax, xs, lambda t, X=X, g=g: fit.predict(X, g, t), draws, level, color, widen)
    ax.set_xscale("log")
    ax.set_xlabel("samples seen" if curves and curves[0].samples is not None else "step")
    ax.set_ylabel("loss")
    ax.grid(True, alpha=0.3)
    if len(curves) <= 12:
        ax.legend(fontsize=7, frameon=False)
    return fig
