"""FIT.json in and out, and the readable table `scaling fit` prints."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from scaling.laws.laws import get_law
from scaling.laws.problem import Fit, Layout
from scaling.laws.table import DataError


def write_fit(report: dict, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(report), indent=1, allow_nan=False) + "\n")


def _jsonable(v):
    # JSON has no NaN: an interval the bootstrap could not fill is written as null.
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


def load_fit(path: str | Path) -> tuple[Fit, np.ndarray | None, dict]:
    """The Fit a FIT.json describes, its bootstrap draws [B, p] (or None), and the raw report."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; write one with `scaling fit ... --out {path}`")
    try:
        report = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not JSON ({e})") from e
    for key in ("law", "params", "groups", "objective"):
        if key not in report:
            raise DataError(f"{path}: no {key!r}; is this a FIT.json from `scaling fit`?")
    law = get_law(report["law"])
    layout = Layout(law, report["groups"], tuple(report.get("shared") or ()))
    values = np.array([report["params"][n]["value"] for n in layout.names], dtype=float)
    fit = Fit(law, layout, values, report["objective"], report.get("converged", True), report.get("message", ""))
    samples = report.get("bootstrap_samples")
    draws = None if not samples else np.array([[np.nan if v is None else v for v in row] for row in samples])
    return fit, draws, report


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.4g}"


def format_report(report: dict) -> str:
    """The fit as a plain-text table: parameters with intervals, backtest, derived numbers."""
    pct = round(100 * report["level"])
    kind = report.get("y_kind")
    lines = [
        f"law {report['law']}: {report['formula']}",
        f"y = {report['y']}"
        + (f" ({kind})" if kind else "")
        + (f"  [{report['y_transform']}]" if report.get("y_transform") else "")
        + f"   x = {report['x']}   points {report['n_points']}   runs {report['n_runs']}"
        + (f"   frontier {report['frontier']}" if report.get("frontier", "none") != "none" else ""),
        f"objective {report['objective']:.6e} (Huber on log residuals)"
        + ("" if report["converged"] else f"   NOT CONVERGED: {report['message']}"),
    ]
    if report.get("compute"):
        lines.append(f"compute axis: {report['compute']}")
    if report.get("auto"):
        scores = report["auto"]["backtest_log_rmse"]
        lines.append(f"--law auto: {report['auto']['why']}")
        lines.append("  backtest log-RMSE: " + ", ".join(f"{k} {_fmt(v)}" for k, v in scores.items()))
    for b in report.get("at_bound") or []:
        lines.append(
            f"AT BOUND: {b['param']} = {b['value']:.4g} sits on its {b['side']} bound {b['bound']:g}; the data "
            f"do not pin it down (its interval means little): add data or use a law with fewer parameters"
        )
    boot = report.get("bootstrap")
    if boot:
        ok = boot.get("ok", boot["n"] - boot["failed"])
        lines.append(
            f"intervals: {pct}% bootstrap over {boot['method']}, {ok} of {boot['n']} draws"
            + (f" ({boot['redrawn']} redrawn)" if boot.get("redrawn") else "")
        )
        schemes = boot.get("schemes") or {}
        if len(schemes) > 4:  # many curves: one line, the reasons per group are in FIT.json
            counts: dict[str, int] = {}
            for sc in schemes.values():
                counts[sc["method"]] = counts.get(sc["method"], 0) + 1
            lines.append("  schemes: " + ", ".join(f"{m} for {c} groups" for m, c in counts.items()))
            schemes = {}
        for g, sc in schemes.items():
            if sc["method"] != "runs" or len(schemes) == 1:
                widen = (boot.get("interval_widening") or {}).get(g)
                lines.append(
                    f"  {g}: {sc['reason']}" + (f"; widened x{widen:.2f} (t, {sc['dof']} dof)" if widen else "")
                )
        if boot.get("warning"):
            lines.append(f"WARNING: {boot['warning']}")
    else:
        lines.append("intervals: none (--bootstrap 0)")
    lines += ["", f"{'parameter':<20} {'value':>12} {'lo':>12} {'hi':>12}"]
    for name, p in report["params"].items():
        lines.append(f"{name:<20} {_fmt(p['value']):>12} {_fmt(p['lo']):>12} {_fmt(p['hi']):>12}")
    derived = report.get("derived") or {}
    if derived.get("allocation"):
        lines += [
            "",
            f"compute-optimal allocation (C = {derived['flops_per_param_sample']:.3g} N D)",
            f"{'compute':>10} {'N_opt [lo, hi]':>34} {'D_opt [lo, hi]':>34} {'D/N':>8} {'loss':>8}",
        ]
        for a in derived["allocation"]:
            n, d = a["N_opt"], a["D_opt"]
            lines.append(
                f"{a['compute']:>10.3g} {_fmt(n['value']):>10} [{_fmt(n['lo'])}, {_fmt(n['hi'])}]".ljust(46)
                + f" {_fmt(d['value']):>10} [{_fmt(d['lo'])}, {_fmt(d['hi'])}]".ljust(35)
                + f" {_fmt(a['D_per_N']['value']):>8} {_fmt(a['loss']['value']):>8}"
            )
    acc = bool(report.get("y_transform"))
    for p in derived.get("predictions", []):
        val, lo, hi = (1 - p["value"], 1 - p["hi"], 1 - p["lo"]) if acc else (p["value"], p["lo"], p["hi"])
        what = "accuracy" if acc else report["y"]
        lines.append(f"predicted {what} at x = {p['x']:.4g} ({p['group']}): {_fmt(val)} [{_fmt(lo)}, {_fmt(hi)}]")
    for m in derived.get("compute_multiplier", []):
        lines.append(
            f"compute multiplier at {report['y']} = {m['at']}: {m['base']} needs {_fmt(m['value'])}x "
            f"the compute of {m['new']} [{_fmt(m['lo'])}, {_fmt(m['hi'])}]"
        )
    if report.get("holdout"):
        w = max(34, *(len(h["run"]) for h in report["holdout"]))  # whole run names: they are typed again
        lines += [
            "",
            "backtest (held out; values in fit space"
            + (": error rate" if acc else "")
            + f"; lo, hi: {pct}% prediction interval of a run; mean lo, hi: the mean curve's)",
            f"{'run':<{w}} {'x':>10} {'actual':>10} {'predicted':>10} {'lo':>10} {'hi':>10} {'mean lo':>10} "
            f"{'mean hi':>10}",
        ]
        for h in report["holdout"]:
            lines.append(
                f"{h['run']:<{w}} {h['x']:>10.4g} {h['actual']:>10.4g} {h['predicted']:>10.4g} "
                f"{_fmt(h['lo']):>10} {_fmt(h['hi']):>10} {_fmt(h.get('ci_lo')):>10} {_fmt(h.get('ci_hi')):>10}"
            )
        s = report.get("holdout_summary") or {}
        if s:
            lines.append(
                f"median |relative error| {s['median_abs_rel_error']:.3%}, max {s['max_abs_rel_error']:.3%}"
                f", actual inside prediction interval {s['inside_interval']}/{s['with_interval']}"
            )
    return "\n".join(lines)
