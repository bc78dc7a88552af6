"""Uncertainty by bootstrap, carried to every derived number.

Points of one run (a training curve, or several metrics of it) are not independent, so where a group has
enough runs the unit resampled is the run, stratified by group (recipe): each replicate draws as many runs
as the group has, with replacement, and refits. A `select` step (frontier) is redone inside every replicate
because choosing the frontier is part of the procedure whose spread we want.

A real sweep has 4 to 7 sizes, and there the run resample breaks: a replicate that draws no more distinct
runs than the law has parameters cannot be fitted (6 runs, 4 parameters: 75% of replicates). Keeping the
survivors keeps a biased subset (the replicates that drew many distinct runs). So the scheme is chosen per
group from runs versus parameters (`choose_scheme`): with one point per run, the run resample only where a
replicate falls short with probability <= RUN_FAIL_MAX, otherwise log residuals resampled across runs
(a residual bootstrap keeps every run's x, so it always fits). Training curves have enough points in any
replicate; they are resampled whole from MIN_CURVES curves on, and below that their log residuals are
resampled in moving blocks along the curve (they are autocorrelated). Replicates that still fail are
redrawn and counted; an interval resting on fewer than 90% of the requested draws gets a warning.

With few runs the residuals' spread is itself uncertain, and percentile intervals from a handful of degrees
of freedom under-cover; each interval is widened about the draws' median by t_{dof}/z (the expanded
percentile interval of Hesterberg 2015), dof = independent units (runs, or residual blocks) - parameters.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import norm
from scipy.stats import t as student_t

from scaling.laws.fit import fit
from scaling.laws.problem import Fit, FitData, FitWarning, Layout

RUN_FAIL_MAX = 0.02  # the run resample is used only where at most this share of replicates falls short
MIN_CURVES = 5  # whole curves: fewer than this and a run resample is mostly copies of one or two curves
MIN_SHARE = 0.9  # warn when an interval rests on fewer than this share of the requested draws


@dataclass
class Scheme:
    method: str  # "runs", "residuals" (one point per run) or "residual-blocks" (curves)
    reason: str
    dof: int  # independent units - parameters, for the small-sample widening


@dataclass
class Bootstrap:
    samples: np.ndarray  # [B, n_params]; rows without a result are nan
    method: str  # the scheme, or "mixed" when groups use different ones (see `schemes`)
    failed: int  # requested draws left without a result after redrawing
    not_converged: int
    redrawn: int = 0  # replicates that failed and were drawn again
    expand: np.ndarray | None = None  # [n_params] interval widening t_dof / z per parameter column
    schemes: dict[str, Scheme] = field(default_factory=dict)  # per group
    level: float = 0.9

    def factor(self, columns: np.ndarray | None = None) -> float:
        """The widening for an interval that depends on these parameter columns (all: the largest)."""
        if self.expand is None:
            return 1.0
        e = self.expand if columns is None else self.expand[np.asarray(columns)]
        return float(np.max(e)) if len(e) else 1.0

    def summary(self) -> dict:
        """FIT.json's "bootstrap" entry (without the seed and the samples)."""
        ok = int(np.isfinite(self.samples).all(axis=1).sum())
        return {
            "n": len(self.samples),
            "ok": ok,
            "method": self.method,
            "failed": self.failed,
            "redrawn": self.redrawn,
            "not_converged": self.not_converged,
            "schemes": {g: {"method": s.method, "reason": s.reason, "dof": s.dof} for g, s in self.schemes.items()},
            "interval_widening": {g: _widening(s.dof, self.level) for g, s in self.schemes.items()},
            "warning": shortfall_message(ok, len(self.samples)),
        }


def shortfall_message(ok: int, n: int) -> str | None:
    if n and ok < MIN_SHARE * n:
        return (
            f"intervals rest on {ok} of {n} bootstrap draws ({ok / n:.0%}, under {MIN_SHARE:.0%}); "
            f"they are less reliable: add runs or use a law with fewer parameters"
        )
    return None


def _widening(dof: int, level: float) -> float:
    q = (1 + level) / 2
    return float(student_t.ppf(q, max(dof, 1)) / norm.ppf(q))


def percentile_band(draws: np.ndarray, level: float, expand: float = 1.0, axis: int = 0) -> tuple:
    """(lo, hi) percentile bounds of `draws` along `axis`, widened `expand` times about their median."""
    lo, mid, hi = np.nanquantile(draws, [(1 - level) / 2, 0.5, (1 + level) / 2], axis=axis)
    return mid - expand * (mid - lo), mid + expand * (hi - mid)


def interval(value: float, draws: np.ndarray, level: float, expand: float = 1.0) -> dict[str, float]:
    """{"value", "lo", "hi"}: the full-data estimate and percentile bounds of the bootstrap draws, widened
    `expand` times about the draws' median (1: plain percentile interval).

    A NaN draw is a replicate without a result (a failed refit, a value undefined there) and is left out.
    An infinite draw is a result: a near-degenerate fit whose replicate puts the value at a limit (N_opt
    is infinite where a draw's data term B is 0). It stays in the ranking, so when more than (1 - level) / 2
    of the draws are infinite the bound on that side is infinite: dropping them would report the spread of
    the well-behaved replicates only, an interval too narrow exactly when the fit is least determined."""
    draws = np.asarray(draws, dtype=float)
    ok = draws[~np.isnan(draws)]
    if np.isfinite(ok).sum() < 2:
        return {"value": float(value), "lo": float("nan"), "hi": float("nan")}
    # quantiles interpolate: stand-ins for +-inf keep them ordered and finite, mapped back below
    lo, hi = percentile_band(np.clip(ok, -_HUGE, _HUGE), level, expand)
    lo, hi = (float(v) if abs(v) < _HUGE * 1e-10 else math.copysign(math.inf, v) for v in (lo, hi))
    return {"value": float(value), "lo": lo, "hi": hi}


_HUGE = 1e300


def p_short(n_runs: int, k: int) -> float:
    """P(a resample of n_runs runs, drawn with replacement, has <= k distinct runs): sum over j <= k of
    C(n, j) S(n, j) j! / n^n, with S the Stirling numbers of the second kind (exact, in integers)."""
    if k >= n_runs:
        return 1.0
    if n_runs > 60 and k < n_runs / 4:
        return 0.0  # below 1e-12: not worth the big integers
    # S(m, j) for j <= k, row by row: S(m, j) = j S(m-1, j) + S(m-1, j-1)
    s = [1] + [0] * k
    for _ in range(n_runs):
        s = [0] + [j * s[j] + s[j - 1] for j in range(1, k + 1)]
    total = sum(math.comb(n_runs, j) * s[j] * math.factorial(j) for j in range(1, k + 1))
    return total / n_runs**n_runs


def choose_scheme(n_runs: int, n_points: int, k: int) -> Scheme:
    """The resampling scheme for one group of `n_runs` runs (`n_points` points) and `k` own parameters."""
    if n_points > n_runs and n_runs >= MIN_CURVES:
        # Training curves: every replicate has enough points whatever runs it draws, so the run resample
        # always fits; its degrees of freedom are those of a cluster bootstrap, runs - 1.
        return Scheme("runs", f"{n_runs} curves for {k} parameters: whole curves resampled", n_runs - 1)
    p = p_short(n_runs, k) if n_points == n_runs else 1.0
    if p <= RUN_FAIL_MAX:
        return Scheme("runs", f"{n_runs} runs for {k} parameters: runs resampled", n_runs - k)
    if n_points == n_runs:
        return Scheme(
            "residuals",
            f"{n_runs} runs for {k} parameters: {p:.0%} of run resamples would draw <= {k} distinct runs; "
            f"log residuals resampled across runs instead",
            n_runs - k,
        )
    block = _block(n_points)
    return Scheme(
        "residual-blocks",
        f"{n_runs} curve(s), under {MIN_CURVES}: too few to resample whole curves; "
        f"log residuals resampled in blocks of {block} along the curves instead",
        max(n_points // block - k, 1),
    )


def run_bootstrap(
    full: Fit,
    data: FitData,
    n: int,
    seed: int = 0,
    select: Callable[[FitData], np.ndarray] | None = None,
    level: float = 0.9,
    warn: bool = True,
) -> Bootstrap:
    """`n` refits of `full.law` on resampled data, each warm-started at the full-data optimum. Groups
    fitted apart (nothing shared) are bootstrapped apart, each with its own scheme."""
    layout = full.layout
    if len(layout.groups) > 1 and not layout.shared:
        samples = np.full((n, len(full.values)), np.nan)
        expand = np.ones(len(full.values))
        out = Bootstrap(samples, "", 0, 0, 0, expand, {}, level)
        for g, name in enumerate(layout.groups):
            cols = layout.index[g]
            one_layout = Layout(full.law, [name])
            one = Fit(full.law, one_layout, full.values[cols], full.objective, full.converged, full.message)
            sub = data.subset(data.group == g)
            sub = FitData(sub.X, sub.y, sub.run, np.zeros(len(sub.y), dtype=int), [name], sub.weight)
            b = _bootstrap(one, sub, n, seed + g, select, level)
            samples[:, cols] = b.samples
            expand[cols] = b.expand
            out.failed, out.not_converged, out.redrawn = (
                out.failed + b.failed,
                out.not_converged + b.not_converged,
                out.redrawn + b.redrawn,
            )
            out.schemes[name] = b.schemes[name]
        out.failed = int((~np.isfinite(samples).all(axis=1)).sum())
        methods = {s.method for s in out.schemes.values()}
        out.method = methods.pop() if len(methods) == 1 else "mixed"
    else:
        out = _bootstrap(full, data, n, seed, select, level)
    message = shortfall_message(int(np.isfinite(out.samples).all(axis=1).sum()), n)
    if warn and message:
        warnings.warn(message, FitWarning, stacklevel=2)
    return out


def _bootstrap(full: Fit, data: FitData, n: int, seed: int, select, level: float) -> Bootstrap:
    rng = np.random.default_rng(seed)
    layout = full.layout
    own = [p for p in full.law.params if len(layout.groups) == 1 or p not in layout.shared]
    schemes = {}
    for g, name in enumerate(layout.groups):
        sel = data.group == g
        schemes[name] = choose_scheme(len(np.unique(data.run[sel])), int(sel.sum()), len(own))
    runs_ok = all(s.method == "runs" for s in schemes.values())
    if not runs_ok:  # one scheme for a joint fit: the residual one wherever any group needs it
        for name, s in schemes.items():
            if s.method == "runs":
                sel = data.group == layout.groups.index(name)
                schemes[name] = Scheme(
                    "residuals" if sel.sum() == len(np.unique(data.run[sel])) else "residual-blocks",
                    s.reason + "; residuals resampled like the other groups of this joint fit",
                    s.dof,
                )
    dof = sum(s.dof for s in schemes.values()) - (len(full.values) - len(own) * len(layout.groups))
    # With a frontier, the residuals to resample are those of the frontier points the law was fitted to.
    fitted = None if runs_ok or select is None else select(data.with_weight(np.ones(len(data.y))))
    samples = np.full((n, len(full.values)), np.nan)
    done = redrawn = not_converged = attempts = 0
    max_attempts = n + max(10, n // 2)
    while done < n and attempts < max_attempts:
        attempts += 1
        rep = _resample_runs(data, rng) if runs_ok else _resample_residuals(full, data, schemes, rng, fitted)
        if select is not None:
            keep = select(rep) & (rep.weight > 0)
            rep = rep.subset(keep)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FitWarning)
                one = fit(full.law, rep, layout.shared, warm=full.values, coarse=True, warn=False)
        except (ValueError, np.linalg.LinAlgError):
            redrawn += 1  # e.g. a frontier with too few points: drawn again, and counted
            continue
        samples[done] = one.values
        not_converged += not one.converged
        done += 1
    expand = np.full(len(full.values), _widening(max(dof, 1), level))
    method = "runs" if runs_ok else next(iter(schemes.values())).method
    return Bootstrap(samples, method, n - done, not_converged, redrawn, expand, schemes, level)


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


def _block(n: int) -> int:
    return max(1, round(n ** (1 / 3)))


def log_residuals(full: Fit, data: FitData, g: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Centred log residuals of group g (of the points in `mask`: those the law was fitted to), scaled up
    by sqrt(n / (n - p)): p fitted parameters absorbed some of the noise, so fitted residuals are smaller."""
    idx = np.flatnonzero((data.group == g) & (True if mask is None else mask))
    X = {k: v[idx] for k, v in data.X.items()}
    resid = np.log(data.y[idx]) - np.log(np.maximum(full.predict(X, g), 1e-300))
    n, p = len(idx), len(full.law.params)
    return (resid - np.median(resid)) * np.sqrt(n / max(n - p, 1))


def _resample_residuals(
    full: Fit, data: FitData, schemes: dict[str, Scheme], rng: np.random.Generator, fitted: np.ndarray | None
) -> FitData:
    y_new = data.y.copy()
    for g, name in enumerate(data.groups):
        idx = np.flatnonzero(data.group == g)
        X = {k: v[idx] for k, v in data.X.items()}
        pred = full.predict(X, g)
        resid = log_residuals(full, data, g, fitted)
        n = len(idx)
        # Residuals of a training curve are autocorrelated: resampled in blocks. Runs of a table are not.
        block = _block(n) if schemes[name].method == "residual-blocks" else 1
        m = len(resid)
        starts = rng.integers(0, m, int(np.ceil(n / block)))
        picks = (starts[:, None] + np.arange(block)[None, :]).ravel()[:n] % m
        y_new[idx] = pred * np.exp(resid[picks])
    weight = np.ones(len(data.y)) if data.weight is None else data.weight.copy()
    return FitData(data.X, y_new, data.run, data.group, data.groups, weight)
