"""`--law auto`: choose the law by a rolling-origin backtest inside the data being fitted.

Each candidate law is fitted to the points with the smallest x and scored on the points with larger x, at
several origins (cuts), the way the final fit will be used: to extrapolate. A law's score is its mean over
the cuts of the log-RMSE on the points after the cut, sqrt(mean((log predicted - log actual)^2)) (the
protocol of Alabdulmohsin et al. 2022, applied inside the fitted data). The law with the lowest score wins
and is then fitted to all of it; exact ties go to the law with fewer parameters.

Only the points handed to `choose` are read: the pipeline splits off --holdout / --holdout-where points
before (backtest.py), so a held-out run can never influence which law is chosen.

Cuts: for every fraction f in CUTS, each group fits its first max(ceil(f n), p + 1) distinct x values (n of
them in the group, p the most parameters of any candidate, so all laws are scored on the same cuts) and is
scored on the rest. A law whose parameters need more points than a cut can give is left out, with the
reason, rather than compared on other cuts. Given the inputs where the fit will be used (`horizon`: the
--predict values, a curve's planned steps; never held-out values), a winner whose fit predicts a value <= 0
there is passed over for the next law (a convergence law fitted before the lr decays can extrapolate its
annealing term below zero; no backtest inside the fitted data can see that). The inverse-MSE weights
(Bates and Granger 1969) of a backtest-weighted average are recorded too;
benchmarks/bench_extrapolation.py measures whether that average extrapolates better than the winner
(it is not what the fit uses).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from scaling.laws.fit import fit
from scaling.laws.laws import Law, get_law
from scaling.laws.problem import FitData, FitWarning

AUTO = "auto"
CANDIDATES = ("power", "power_offset", "saturating", "m4")  # the one-input laws of a results table
# training curves (run directories, a curves CSV) carry their lr schedule: the schedule-aware law joins in
CURVE_CANDIDATES = (*CANDIDATES, "convergence")
CUTS = (0.5, 0.65, 0.8)
BACKTEST_STARTS = 1  # grid starts per backtest fit (speed: one per law and cut); the final fit uses the default 4


@dataclass
class Choice:
    law: str
    scores: dict[str, float]  # mean log-RMSE over the cuts, per scored law
    per_cut: dict[str, list[float]]
    cuts: list[dict]  # per cut: {"fraction", "fit_points", "scored_points"}
    weights: dict[str, float]  # inverse-MSE weights of a backtest-weighted average
    excluded: dict[str, str] = field(default_factory=dict)  # law -> why it was not scored
    reason: str = ""

    def report(self) -> dict:
        return {
            "chosen": self.law,
            "candidates": list(self.scores) + list(self.excluded),
            "backtest_log_rmse": self.scores,
            "backtest_log_rmse_per_cut": self.per_cut,
            "cuts": self.cuts,
            "average_weights": self.weights,
            "excluded": self.excluded,
            "why": self.reason,
        }


def log_rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    """sqrt(mean((log p - log a)^2)); a non-positive prediction counts as a log error of 10 (never a winner)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(predicted > 0, np.log(np.maximum(predicted, 1e-300)) - np.log(actual), 10.0)
    r = np.where(np.isfinite(r), r, 10.0)
    return float(np.sqrt(np.mean(r * r)))


def cut_masks(data: FitData, order: np.ndarray, min_fit: int) -> list[tuple[float, np.ndarray]]:
    """[(fraction, fit mask)] per cut: per group, the points with the first k distinct `order` values."""
    out = []
    for f in CUTS:
        mask = np.zeros(len(data.y), dtype=bool)
        ok = True
        for g in range(len(data.groups)):
            sel = data.group == g
            levels = np.unique(order[sel])
            k = min(max(math.ceil(f * len(levels)), min_fit), len(levels) - 1)
            if k < min_fit:
                ok = False
                break
            mask |= sel & (order <= levels[k - 1])
        if ok and not any(np.array_equal(mask, m) for _, m in out):
            out.append((f, mask))
    return out


def _own_params(law: Law, data: FitData, shared: tuple[str, ...]) -> int:
    return len(law.params) if len(data.groups) == 1 else len([p for p in law.params if p not in shared])


def choose(
    data: FitData,
    order: np.ndarray,
    candidates: Sequence[Law | str] = CANDIDATES,
    shared: tuple[str, ...] = (),
    horizon: Mapping[str, np.ndarray] | None = None,
) -> Choice:
    """The law with the lowest rolling-origin backtest log-RMSE on `data`, ordered by `order` (x, or step).

    `horizon`: inputs (no values) where the chosen law will be used, e.g. the --predict x values or a
    curve's planned steps; a law whose fit to all of `data` predicts a non-positive or non-finite value
    there (a loss or error rate below zero: outside any law's domain) is passed over for the next best."""
    laws = [get_law(c) if isinstance(c, str) else c for c in candidates]
    excluded: dict[str, str] = {}
    for law in [law for law in laws if not set(shared) <= set(law.params)]:
        excluded[law.name] = f"has no parameter {', '.join(sorted(set(shared) - set(law.params)))} to share"
        laws.remove(law)
    if not laws:
        raise ValueError(f"--law auto --share {','.join(shared)}: no candidate law has those parameters")
    smallest = min(int(np.unique(order[data.group == g]).size) for g in range(len(data.groups)))
    while laws:
        need = max(_own_params(law, data, shared) for law in laws) + 1
        cuts = cut_masks(data, order, need)
        if cuts:
            break
        big = max(laws, key=lambda law: _own_params(law, data, shared))
        excluded[big.name] = (
            f"{_own_params(big, data, shared)} parameters: a backtest cut needs {need} points to fit and one to "
            f"score, and the smallest group has {smallest}"
        )
        laws = [law for law in laws if law is not big]
    if not laws:
        raise ValueError(
            f"--law auto: {smallest} distinct x values are too few to backtest any candidate law "
            f"({', '.join(excluded)}); add runs or choose a law with --law"
        )
    per_cut: dict[str, list[float]] = {law.name: [] for law in laws}
    for _, mask in cuts:
        train, test = data.subset(mask), data.subset(~mask)
        for law in laws:
            per_cut[law.name].append(_score(law, train, test, shared))
    scores = {name: float(np.mean(v)) for name, v in per_cut.items()}
    rank = sorted(laws, key=lambda law: (scores[law.name], len(law.params)))
    invalid: dict[str, str] = {}
    while horizon is not None and rank:
        bad = _invalid_on(rank[0], data, shared, horizon)
        if bad is None:
            break
        invalid[rank[0].name] = bad
        rank.pop(0)
    if not rank:
        raise ValueError(f"--law auto: every candidate law predicts a non-positive value where it is asked to "
                         f"predict ({'; '.join(invalid.values())}); choose a law with --law")
    winner = rank[0].name
    inv = {n: 1.0 / max(s, 1e-12) ** 2 for n, s in scores.items() if np.isfinite(s) and n not in invalid}
    total = sum(inv.values())
    weights = {n: v / total for n, v in inv.items()} if total > 0 else {}
    cut_info = [
        {"fraction": f, "fit_points": int(m.sum()), "scored_points": int((~m).sum())} for f, m in cuts
    ]
    sizes = ", ".join(str(c["fit_points"]) for c in cut_info)
    reason = (
        f"{winner} extrapolated best in a rolling-origin backtest inside the fitted data: mean log-RMSE "
        f"{scores[winner]:.4g} over {len(cuts)} cut(s) (fit on the first {sizes} of {len(data.y)} points, "
        f"scored on the rest)"
    )
    if len(rank) > 1:
        reason += f"; runner-up {rank[1].name} {scores[rank[1].name]:.4g}"
    if excluded:
        reason += "; not scored: " + ", ".join(excluded)
    for name, why in invalid.items():
        reason += f"; {name} scored better but was passed over: {why}"
    return Choice(winner, scores, per_cut, cut_info, weights, {**excluded, **invalid}, reason)


def _invalid_on(law: Law, data: FitData, shared: tuple[str, ...], horizon: Mapping[str, np.ndarray]) -> str | None:
    """Why `law` fitted to all of `data` cannot be used at `horizon` (None: it can)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FitWarning)
            result = fit(law, data, shared if len(data.groups) > 1 else (), warn=False)
    except (ValueError, np.linalg.LinAlgError) as e:
        return f"its fit to all points failed ({e})"
    for g, name in enumerate(data.groups):
        with np.errstate(all="ignore"):
            pred = result.predict({k: np.asarray(v, dtype=float) for k, v in horizon.items()}, g)
        if not np.all(np.isfinite(pred) & (pred > 0)):
            where = "" if len(data.groups) == 1 else f" for {name}"
            return f"it predicts {np.nanmin(pred):.3g}{where} where it is to be used (a value must be > 0)"
    return None


def _score(law: Law, train: FitData, test: FitData, shared: tuple[str, ...]) -> float:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FitWarning)
            result = fit(law, train, shared if len(train.groups) > 1 else (), starts=BACKTEST_STARTS, warn=False)
    except (ValueError, np.linalg.LinAlgError):
        return float("inf")
    pred = np.empty(len(test.y))
    for g in range(len(test.groups)):
        sel = test.group == g
        if sel.any():
            pred[sel] = result.predict({k: v[sel] for k, v in test.X.items()}, g)
    return log_rmse(pred, test.y)
