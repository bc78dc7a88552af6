"""The decision a study is run for, as a function of the law's parameters, plus what an error in it costs.

Three forms (`--decision`):
- `n_opt@C`: the compute-optimal model size N at compute C (chinchilla: allocate(), C = k N D);
- `predict@COL=V[,COL=V]`: the metric at a point given by the --x columns (and the group columns, if any);
- `multiplier@Y`: how many times more compute the base recipe needs than the new one to reach metric Y.

Every decision is positive and is handled as its logarithm: bootstrap draws of log g are close to normal,
and an error in log g is a relative error, which is what compute waste depends on. Each decision carries the
weight w and the compute at stake that turn a variance of log g into expected wasted FLOPs (see
scaling/advise/score.py for the derivation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from scaling.laws.decisions import allocate, compute_multiplier
from scaling.laws.problem import Fit
from scaling.laws.results import COMPUTE_COLUMNS, Selection
from scaling.laws.table import DataError

# n_opt's target region: the iso-compute line at C, from a quarter to four times the fitted N_opt
REGION_SPAN = 4.0 ** np.linspace(-1.0, 1.0, 5)
FORMS = "n_opt@C (e.g. n_opt@1e22), predict@COL=V[,COL=V] (e.g. predict@params=6.4e9,samples=5e9), multiplier@Y"


@dataclass
class Decision:
    spec: str
    kind: str  # n_opt | predict | multiplier
    name: str  # what the value is: N_opt, the metric, or "compute multiplier"
    g: Callable[[np.ndarray], float]  # theta -> decision value (> 0), nan where undefined
    weight: float  # w: expected waste = stake * w / 2 * Var(log g)
    stake: float | None  # FLOPs the decision commits (None: unknown, give --stake)
    detail: dict  # what the decision is about, for ADVICE.json (C, the point, recipes)
    extra: dict[str, Callable[[np.ndarray], float]]  # reported beside it (D_opt for n_opt)
    # draws [B, p] -> [B, T] log predictions in the decision's target region (None: the decision itself)
    region: Callable[[np.ndarray], np.ndarray] | None = None


def _number(text: str, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise DataError(f"--decision: {what} {text!r} is not a number; forms: {FORMS}") from None
    if not np.isfinite(v):
        raise DataError(f"--decision: {what} {text!r} is not finite")
    return v


def parse(
    spec: str,
    fit: Fit,
    sel: Selection,
    group_by: list[str] | None,
    k: float | None,
    compare: tuple[str, str] | None,
) -> Decision:
    """The Decision for `spec`, checked against the fitted law and its columns; bad specs are DataErrors.
    `k` is C = k N D's constant (from the runs), `group_by` the columns that name the fit's groups."""
    kind, at, rest = spec.partition("@")
    if not at or kind not in ("n_opt", "predict", "multiplier") or not rest:
        raise DataError(f"--decision {spec!r}: unknown decision; use one of {FORMS}")
    if kind == "n_opt":
        return _n_opt(spec, fit, sel, _number(rest, "compute C"), k)
    if kind == "predict":
        return _predict(spec, fit, sel, group_by, k, rest)
    return _multiplier(spec, fit, sel, _number(rest, "metric value Y"), compare)


def _n_opt(spec: str, fit: Fit, sel: Selection, c: float, k: float | None) -> Decision:
    if fit.law.name != "chinchilla":
        raise DataError(f"--decision {spec}: n_opt needs --law chinchilla (a law in N and D), not {fit.law.name}")
    if len(fit.layout.groups) > 1:
        raise DataError(f"--decision {spec}: n_opt takes one group; filter with --where instead of --group-by")
    if k is None:
        raise DataError(f"--decision {spec}: no flops column to infer C = k N D from; pass --flops-per-param-sample")
    if c <= 0:
        raise DataError(f"--decision {spec}: the compute C must be > 0")

    def part(key: str) -> Callable[[np.ndarray], float]:
        return lambda t: allocate(dict(zip(fit.law.params, t)), c, k)[key]

    p = fit.params()
    center = part("N_opt")(fit.values)
    if not (np.isfinite(center) and center > 0):  # a degenerate fit: the runs' shape N / D, scaled to C
        center = float(np.sqrt(c / k * np.median(sel.data.X["N"] / sel.data.X["D"])))
    line = {"N": center * REGION_SPAN, "D": c / (k * center * REGION_SPAN)}

    def region(draws: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.log(np.stack([fit.law.predict(line, t) for t in draws]))

    return Decision(spec, "n_opt", "N_opt", part("N_opt"), p["alpha"] + p["beta"], c,
                    {"compute": c, "flops_per_param_sample": k}, {"D_opt": part("D_opt")}, region)


def _point(
    spec: str, sel: Selection, fit: Fit, group_by: list[str] | None, text: str
) -> tuple[dict[str, np.ndarray], int, dict[str, float]]:
    given: dict[str, str] = {}
    for item in text.split(","):
        col, eq, value = item.partition("=")
        if not eq:
            raise DataError(f"--decision {spec!r}: expected COL=V items, e.g. predict@params=6.4e9,samples=5e9")
        given[col.strip()] = value.strip()
    missing = [c for c in sel.x_columns if c not in given]
    if missing:
        raise DataError(f"--decision {spec}: give every --x column ({', '.join(sel.x_columns)}); missing "
                        f"{', '.join(missing)}")
    X = {role: np.array([_number(given.pop(col), col)]) for role, col in zip(fit.law.inputs, sel.x_columns)}
    group = 0
    if len(fit.layout.groups) > 1:
        label = "|".join(given.pop(c, "") for c in (group_by or []))
        if label not in fit.layout.groups:
            raise DataError(f"--decision {spec}: name the group ({', '.join(group_by or [])}), one of "
                            f"{', '.join(fit.layout.groups)}")
        group = fit.layout.groups.index(label)
    if given:
        raise DataError(f"--decision {spec}: {', '.join(given)} is not an --x or group column")
    return X, group, {c: float(X[r][0]) for r, c in zip(fit.law.inputs, sel.x_columns)}


def _predict(
    spec: str, fit: Fit, sel: Selection, group_by: list[str] | None, k: float | None, text: str
) -> Decision:
    X, group, point = _point(spec, sel, fit, group_by, text)

    def g(t: np.ndarray) -> float:
        return float(fit.predict(X, group, t)[0])

    # slope s = d log f / d log (the last input: compute for one-input laws, D for chinchilla), numerically
    last = fit.law.inputs[-1]
    up = {**X, last: X[last] * 1.01}
    slope = float(np.log(fit.predict(up, group)[0] / g(fit.values)) / np.log(1.01))
    stake = None
    if len(sel.x_columns) == 1 and sel.x_columns[0] in COMPUTE_COLUMNS:
        stake = float(X["x"][0])
    elif fit.law.name == "chinchilla" and k is not None:
        stake = float(k * X["N"][0] * X["D"][0])
    weight = 1.0 / slope**2 if slope != 0 and np.isfinite(slope) else float("nan")
    name = sel.y_name + (" error rate (1 - accuracy)" if sel.y_is_accuracy else "")
    return Decision(spec, "predict", name, g, weight, stake,
                    {"point": point, "group": fit.layout.groups[group], "slope_dlog_metric_dlog_" + last: slope}, {})


def _multiplier(spec: str, fit: Fit, sel: Selection, y: float, compare: tuple[str, str] | None) -> Decision:
    groups = fit.layout.groups
    if compare is None:
        if len(groups) != 2:
            raise DataError(f"--decision {spec}: multiplier compares two recipes; the fit has groups "
                            f"{', '.join(groups)}: pass --compare BASE,NEW (and --group-by)")
        compare = (groups[0], groups[1])
    missing = [r for r in compare if r not in groups]
    if missing:
        raise DataError(f"--compare {','.join(compare)}: no group {', '.join(missing)}; groups are {', '.join(groups)}")
    if fit.law.inverse is None:
        raise DataError(f"--decision {spec}: law {fit.law.name} has no inverse in x; use a one-input law")
    base, new = groups.index(compare[0]), groups.index(compare[1])
    y_fit = 1.0 - y if sel.y_is_accuracy else y

    def g(t: np.ndarray) -> float:
        return compute_multiplier(fit, base, new, y_fit, t)

    new_p = dict(zip(fit.law.params, fit.layout.group_theta(fit.values, new)))
    x_new = float(fit.law.inverse(new_p, np.array([y_fit]))[0])
    stake = x_new if sel.x_columns[0] in COMPUTE_COLUMNS and np.isfinite(x_new) else None
    return Decision(spec, "multiplier", "compute multiplier", g, 1.0, stake,
                    {"at": y, "base": compare[0], "new": compare[1], "new_compute_at_y": x_new}, {})
