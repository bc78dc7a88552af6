"""One fit, start to end: split off the backtest, select the frontier, fit, bootstrap, derive, report.

`fit_table` serves results tables (one point per run), `fit_curves` whole training curves. Both return
the FIT.json dictionary; the CLI only parses arguments, prints and writes.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field

import numpy as np
import scipy

from scaling import __version__
from scaling.laws import auto, backtest
from scaling.laws.bootstrap import Bootstrap, run_bootstrap
from scaling.laws.convergence import DECAY, Curve, curve_points
from scaling.laws.decisions import (
    allocate,
    compute_multiplier,
    evaluate,
    flops_per_param_sample,
    params_table,
)
from scaling.laws.fit import at_bound, fit
from scaling.laws.frontier import frontier
from scaling.laws.laws import Law, get_law
from scaling.laws.problem import Fit, FitData
from scaling.laws.results import Selection, apply_where
from scaling.laws.table import DataError


@dataclass
class FitOptions:
    frontier: str = "none"
    bins_per_decade: float = 4.0
    holdout: int = 0  # number of largest runs held out
    holdout_where: list[str] = field(default_factory=list)  # COLUMN=VALUE: rows held out whatever their x
    fit_fraction: float | None = None  # curves: fit the first fraction of each, predict the end
    bootstrap: int = 200
    level: float = 0.9
    seed: int = 0
    share: tuple[str, ...] = ()
    allocate: list[float] = field(default_factory=list)  # compute budgets for N_opt, D_opt
    flops_per_param_sample: float | None = None
    predict: list[float] = field(default_factory=list)  # x values to predict y at
    compare: tuple[str, str] | None = None  # (base recipe, new recipe) for the compute multiplier
    at: list[float] = field(default_factory=list)  # y values (in table units) for the multiplier


@dataclass
class Outcome:
    fit: Fit
    boot: Bootstrap | None
    report: dict


def _frontier_select(mode: str, bins: float):
    def select(d: FitData) -> np.ndarray:
        x = d.X["x"] if "x" in d.X else np.prod(list(d.X.values()), axis=0)
        live = np.ones(len(d.y), dtype=bool) if d.weight is None else d.weight > 0
        keep = np.zeros(len(d.y), dtype=bool)
        for g in range(len(d.groups)):  # one frontier per recipe
            idx = np.flatnonzero((d.group == g) & live)
            keep[idx] = frontier(x[idx], d.y[idx], mode, bins)
        return keep

    return select


def _held_where(sel: Selection, where: list[str]) -> np.ndarray:
    """Rows matching every --holdout-where filter (e.g. split=test), whatever their x."""
    if not where:
        return np.zeros(len(sel.data.y), dtype=bool)
    rows = {int(n) for n in apply_where(sel.table, where).lines}
    held = np.array([int(n) in rows for n in sel.table.lines])
    if held.all():
        raise DataError(f"--holdout-where {' '.join(where)} holds out every row; nothing is left to fit")
    return held


def fit_table(law: Law | str, sel: Selection, opt: FitOptions) -> Outcome:
    """`law` is a Law, or "auto": chosen by a rolling-origin backtest on the fitted runs (auto.py), after
    the held-out runs are split off, so their values never influence the choice (their x, like --predict's,
    tells auto where the fit will be used)."""
    data = sel.data
    if opt.holdout and opt.holdout_where:
        raise DataError("give --holdout (the largest runs) or --holdout-where (marked rows), not both")
    min_points = 2 if law == auto.AUTO else len(law.params) + 1
    held = backtest.split_largest(data, sel.size, opt.holdout, min_points) | _held_where(sel, opt.holdout_where)
    train = data.subset(~held)
    select = _frontier_select(opt.frontier, opt.bins_per_decade) if opt.frontier != "none" else None
    fit_data = train.subset(select(train)) if select else train
    choice = None
    if law == auto.AUTO:
        # where the fit will be used: --predict, and the held-out runs' x (their inputs, never their values)
        where = np.concatenate([np.array(opt.predict, dtype=float), data.X["x"][held]])
        horizon = {"x": where} if len(where) else None
        choice = auto.choose(fit_data, fit_data.X["x"], auto.CANDIDATES, opt.share, horizon)
        law = get_law(choice.law)
    _check_runs(law, fit_data, opt.share, bool(select))
    result = fit(law, fit_data, opt.share)
    boot = run_bootstrap(result, train, opt.bootstrap, opt.seed, select, opt.level) if opt.bootstrap else None
    derived = _derived(law, result, boot, sel, opt, ~held)
    x_report = data.X["x"] if "x" in data.X else sel.size
    report = _report(law, result, boot, opt, fit_data, derived)
    report.update(
        {
            "x": list(sel.x_columns) if len(sel.x_columns) > 1 else sel.x_columns[0],
            "y": sel.y_name,
            "y_kind": sel.y_kind,
            "y_transform": "1 - value (accuracy fitted as error rate)" if sel.y_is_accuracy else None,
            "n_runs": int(len(np.unique(fit_data.run))),
            "frontier_runs": sorted(set(fit_data.run.tolist())) if select else None,
            "holdout_where": opt.holdout_where,
            "holdout": backtest.holdout_rows(
                result, boot, data.subset(held), x_report[held], opt.level, train=fit_data
            ),
        }
    )
    report["holdout_summary"] = backtest.summarise(report["holdout"])
    if choice is not None:
        report["auto"] = choice.report()
    return Outcome(result, boot, report)


def _check_runs(law: Law, data: FitData, share: tuple[str, ...], frontier: bool) -> None:
    """A results table has one point per run: a group needs more runs than the law has own parameters."""
    own = len(law.params) if len(data.groups) == 1 else len([p for p in law.params if p not in share])
    for g, name in enumerate(data.groups):
        n = len(np.unique(data.run[data.group == g]))
        if n < own + 1:
            where = f"group {name!r} has" if len(data.groups) > 1 else "the fit has"
            kept = " on the frontier" if frontier else ""
            raise DataError(
                f"{where} {n} runs{kept} but law {law.name} has {own} free parameters: it needs at least "
                f"{own + 1} runs; add runs, use a law with fewer parameters (e.g. power), or --share parameters"
            )


def fit_curves(
    law: Law | str,
    curves: list[Curve],
    opt: FitOptions,
    group_by: str | None = None,
    decay: float = DECAY,
    y: str = "loss",
    y_kind: str = "loss",
    anneal_delay: float | None = None,
) -> Outcome:
    """`law` is a Law (a convergence law, or a one-input law in x = step), or "auto": chosen among
    auto.CURVE_CANDIDATES (the one-input laws and the schedule-aware convergence law) by a rolling-origin
    backtest in step on the fitted part of the curves, after --fit-fraction / --holdout split the rest off;
    it is told the inputs (steps, lr areas; never the values) of the held-out points, where it will predict."""
    candidates = auto.CURVE_CANDIDATES if law == auto.AUTO else None
    laws = [get_law(n) for n in candidates] if candidates else [law]
    inputs = tuple(dict.fromkeys(i for c in laws for i in c.inputs))
    if "N" not in inputs:
        label = {"run": lambda c: c.run, "recipe": lambda c: c.group or "all", None: lambda c: "all"}[group_by]
        sizes: dict[str, set] = {}
        for c in curves:
            if np.isfinite(c.params):
                sizes.setdefault(label(c), set()).add(c.params)
        mixed = [g for g, s in sizes.items() if len(s) > 1]
        if mixed:
            name = "auto's candidates have" if candidates else f"law {law.name} has"
            raise DataError(
                f"group {mixed[0]!r} spans {len(sizes[mixed[0]])} model sizes but {name} no size "
                f"term; use --law convergence_size, --group-by run|recipe, or --where to keep one model"
            )
    data = curve_points(curves, inputs, decay, group_by, anneal_delay)
    step = np.concatenate([c.step for c in curves]).astype(float)
    if group_by == "run" and opt.holdout and opt.fit_fraction is None:
        raise DataError(
            "--group-by run fits each run alone, so a wholly held-out run has no parameters; "
            "add --fit-fraction to hold out only the end of each curve"
        )
    size = np.concatenate(
        [np.full(len(c.step), (c.params if np.isfinite(c.params) else 1.0) * c.step[-1]) for c in curves]
    )
    min_points = 2 if candidates else len(law.params) + 1
    if opt.fit_fraction is not None:
        # The end of every curve, or with --holdout K only of the K largest runs: short complete runs
        # plus the early part of the long ones predict where the long ones end.
        held = backtest.split_early(data, step, opt.fit_fraction)
        if opt.holdout:
            held &= backtest.split_largest(data, size, opt.holdout, min_points)
    else:
        held = backtest.split_largest(data, size, opt.holdout, min_points)
    train = data.subset(~held)
    choice = None
    if candidates:
        horizon = {k: v[held] for k, v in data.X.items()} if held.any() else None
        choice = auto.choose(train, train.X["x"], candidates, opt.share, horizon)
        law = get_law(choice.law)
    result = fit(law, train, opt.share)
    boot = run_bootstrap(result, train, opt.bootstrap, opt.seed, level=opt.level) if opt.bootstrap else None
    report = _report(law, result, boot, opt, train, {})
    report.update(
        {
            "x": "step",
            "y": y,
            "y_kind": y_kind,
            "y_transform": "1 - value (accuracy fitted as error rate)" if y_kind == "accuracy" else None,
            "n_runs": len(curves),
            "decay": decay,
            "anneal_delay": anneal_delay,
            "group_by": group_by,
            "fit_fraction": opt.fit_fraction,
            "holdout": backtest.holdout_rows(
                result, boot, data.subset(held), step[held], opt.level, last_only=True, train=train
            ),
            "curves": [{"run": c.run, "group": c.group, "params": c.params} for c in curves],
        }
    )
    report["holdout_summary"] = backtest.summarise(report["holdout"])
    if choice is not None:
        report["auto"] = choice.report()
    return Outcome(result, boot, report)


def _derived(law: Law, result: Fit, boot: Bootstrap | None, sel: Selection, opt: FitOptions, train: np.ndarray) -> dict:
    out: dict = {}
    level = opt.level
    if opt.allocate:
        if law.name != "chinchilla":
            raise DataError("--allocate needs --law chinchilla (a law in both N and D)")
        k = opt.flops_per_param_sample
        if k is None:
            if not sel.table.has("flops"):
                raise DataError(
                    "--allocate: the table has no flops column to infer C = k N D from; pass "
                    "--flops-per-param-sample (6 for dense transformers per token)"
                )
            # from the fitted runs only: held-out runs inform nothing, not even this unit constant
            X = sel.data.X
            k = flops_per_param_sample(sel.table.numbers("flops")[train], X["N"][train], X["D"][train])
        out["flops_per_param_sample"] = k
        rows = []
        for c in opt.allocate:
            funcs = {
                key: (lambda t, key=key, c=c: allocate(dict(zip(law.params, t)), c, k)[key])
                for key in ("N_opt", "D_opt", "D_per_N", "loss")
            }
            rows.append({"compute": c, **evaluate(result, boot, funcs, level)})
        out["allocation"] = rows
    if opt.predict:
        if "x" not in law.inputs:
            raise DataError(f"--predict takes x values of a one-input law; {law.name} has inputs {law.inputs}")
        preds = []
        for x in opt.predict:
            for g, name in enumerate(result.layout.groups):
                f = {"y": lambda t, x=x, g=g: float(result.predict({"x": np.array([x])}, g, t)[0])}
                preds.append({"x": x, "group": name, **evaluate(result, boot, f, level)["y"]})
        out["predictions"] = preds
    if opt.compare:
        groups = result.layout.groups
        missing = [r for r in opt.compare if r not in groups]
        if missing:
            raise DataError(
                f"--compare {','.join(opt.compare)}: no group {', '.join(missing)}; groups are "
                f"{', '.join(groups)} (set them with --group-by)"
            )
        if not opt.at:
            raise DataError("--compare needs --at Y: the accuracy (or loss) at which to compare compute")
        base, new = groups.index(opt.compare[0]), groups.index(opt.compare[1])
        rows = []
        for y in opt.at:
            y_fit = 1.0 - y if sel.y_is_accuracy else y
            f = {"m": lambda t, y_fit=y_fit: compute_multiplier(result, base, new, y_fit, t)}
            rows.append(
                {
                    "at": y,
                    "base": opt.compare[0],
                    "new": opt.compare[1],
                    **evaluate(result, boot, f, level)["m"],
                }
            )
        out["compute_multiplier"] = rows
    return out


def _report(law: Law, result: Fit, boot: Bootstrap | None, opt: FitOptions, fitted: FitData, derived: dict) -> dict:
    return {
        "law": law.name,
        "formula": law.formula,
        "n_points": int(len(fitted.y)),
        "groups": result.layout.groups,
        "shared": list(result.layout.shared),
        "params": params_table(result, boot, opt.level),
        "objective": result.objective,
        "converged": result.converged,
        # an optimum on a search limit can be "converged": the data still do not pin that parameter down
        "at_bound": at_bound(result),
        "message": result.message,
        "level": opt.level,
        "frontier": opt.frontier,
        "bootstrap": None if boot is None else {**boot.summary(), "seed": opt.seed},
        "bootstrap_samples": None if boot is None else np.where(np.isfinite(boot.samples), boot.samples, None).tolist(),
        "derived": derived,
        "versions": {
            "scaling": __version__,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
        },
    }
