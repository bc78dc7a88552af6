"""The sweep's part of report.md: the cells (model x samples x recipe), the fit, and the held-out prediction.

The prediction can come true or not: the largest-compute run of each recipe (stage-1 compute counted) is
held out of the fit (`scaling fit --holdout-where run=...`, chosen by `largest_runs` before the fit runs);
the report takes the predicted top-1 and its prediction interval from FIT.json's `holdout` rows and the
measured top-1 from that run's own summary.json, and says whether the interval covered it.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

from scaling.demo.stats import plural

METRIC = "val_top1"  # each stage-2 run's own classifier, top-1 on the 2,000 validation images after its last step
METRIC_NAME = "val top-1"
FIGURE = "figures/compute_vs_val_top1.png"


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def largest_runs(results: Path, metric: str = METRIC) -> dict[str, str]:
    """recipe -> the run with the most total compute (stage 1 counted) among the results' `metric` rows."""
    best: dict[str, tuple[float, str]] = {}
    for r in read_csv(results):
        if r["metric"] == metric and (r["recipe"] not in best or float(r["total_flops"]) > best[r["recipe"]][0]):
            best[r["recipe"]] = (float(r["total_flops"]), r["run"])
    return {recipe: run for recipe, (_, run) in sorted(best.items())}


@dataclass(frozen=True)
class HeldOut:
    recipe: str
    run: str
    compute: float  # total FLOPs
    predicted: float  # accuracy, from FIT.json
    lo: float  # the prediction interval of a run, accuracy
    hi: float
    measured: float | None  # from the run's summary.json (None: not there)

    @property
    def covered(self) -> bool | None:
        if self.measured is None or not (math.isfinite(self.lo) and math.isfinite(self.hi)):
            return None
        return self.lo <= self.measured <= self.hi


def held_out(folder: Path) -> tuple[list[HeldOut], float]:
    """The held-out runs of the sweep folder's FIT.json, each with its measured value; and the level."""
    fit = json.loads((folder / "FIT.json").read_text())
    runs = {r["run"]: r for r in read_csv(folder / "sweep.csv")}
    accuracy = bool(fit.get("y_transform"))  # accuracies are fitted as error rates: 1 - value
    out = []
    for h in fit.get("holdout", []):
        row = runs[h["run"]]
        summary = json.loads((folder / row["run_dir"] / "summary.json").read_text())
        measured = (summary.get("eval") or {}).get(fit["y"])
        pred, lo, hi = h["predicted"], h["lo"], h["hi"]
        if accuracy:  # an interval from a few runs can reach past 0 or 100%: cut at the possible values
            pred, lo, hi = 1 - pred, max(0.0, 1 - hi), min(1.0, 1 - lo)
        measured = None if measured is None else float(measured)
        out.append(HeldOut(row["recipe"], h["run"], h["x"], pred, lo, hi, measured))
    return out, float(fit.get("level", 0.9))


def _pct(v: float | None) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{100 * v:.1f}"


def held_out_verdict(rows: list[HeldOut], level: float) -> str:
    judged = [r for r in rows if r.covered is not None]
    if not judged:
        return "the held-out runs could not be checked (no measured value or no interval)"
    inside = sum(bool(r.covered) for r in judged)
    return (f"the fit's {level:.0%} prediction interval covered the measured {METRIC_NAME} of {inside} of "
            f"{plural(len(judged), 'held-out run')}")


def held_out_lines(folder: Path) -> tuple[list[str], str]:
    """(the report's held-out section, its verdict line)."""
    if not (folder / "FIT.json").is_file():
        return ["(the fit has not run yet)"], "no fit yet"
    rows, level = held_out(folder)
    if not rows:
        return ["(FIT.json holds no held-out runs)"], "no held-out runs"
    verdict = held_out_verdict(rows, level)
    lines = [f"The largest-compute run of each recipe (stage 1 counted) was left out of the fit; the law fitted to "
             f"the other runs predicts its {METRIC_NAME} with a {level:.0%} prediction interval (bootstrap over "
             "runs plus the fit's own scatter: FIT.json `holdout`; cut at 0 and 100%). Measured: the run's own "
             "`summary.json`.",
             "",
             f"| recipe | held-out run | total FLOPs | predicted (%) | {level:.0%} prediction interval (%) | "
             "measured (%) | inside the interval |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        inside = {True: "yes", False: "no", None: "not judged"}[r.covered]
        lines.append(f"| {r.recipe} | {r.run} | {r.compute:.3g} | {_pct(r.predicted)} | [{_pct(r.lo)}, {_pct(r.hi)}] "
                     f"| {_pct(r.measured)} | {inside} |")
    return [*lines, "", f"**Verdict**: {verdict}."], verdict


def _monotone(cells: dict[tuple[str, int], dict[str, dict]]) -> tuple[int, int]:
    """(steps up, steps) of the metric from each budget to the next, within each model and recipe."""
    up = steps = 0
    for model in {m for m, _ in cells}:
        budgets = sorted(n for m, n in cells if m == model)
        for recipe in ("mae_wsp", "wsp"):
            vals = [float(cells[(model, n)][recipe]["value"]) for n in budgets if recipe in cells[(model, n)]]
            up += sum(b > a for a, b in zip(vals, vals[1:]))
            steps += max(0, len(vals) - 1)
    return up, steps


def sweep_lines(out: Path) -> list[str]:
    folder = out / "sweep"
    results, fit = folder / "results.csv", folder / "FIT.json"
    if not results.is_file():
        return ["(the sweep has not run yet)"]
    cells: dict[tuple[str, int], dict[str, dict]] = {}
    for r in read_csv(results):
        if r["metric"] == METRIC:
            cells.setdefault((r["model"], int(r["samples"])), {})[r["recipe"]] = r
    lines = ["| model | params | stage-2 samples | total FLOPs, from MAE | total FLOPs, random init | "
             f"{METRIC_NAME} from MAE (%) | {METRIC_NAME} random init (%) | difference (points) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    wins = 0
    values = [float(r["value"]) for by in cells.values() for r in by.values()]
    for (model, samples), by in sorted(cells.items(), key=lambda kv: (int(next(iter(kv[1].values()))["params"]),
                                                                      kv[0][1])):
        if set(by) != {"mae_wsp", "wsp"}:
            continue
        a, b = by["mae_wsp"], by["wsp"]
        d = 100 * (float(a["value"]) - float(b["value"]))
        wins += d > 0
        lines.append(f"| {model} | {int(a['params']):,} | {samples:,} | {float(a['total_flops']):.3g} | "
                     f"{float(b['total_flops']):.3g} | {100 * float(a['value']):.1f} | {100 * float(b['value']):.1f} "
                     f"| {d:+.1f} |")
    pairs = len(lines) - 2
    up, steps = _monotone(cells)
    lines += ["", f"{METRIC_NAME} spans {100 * min(values):.1f}-{100 * max(values):.1f}% over the sweep "
              f"({100 * (max(values) - min(values)):.1f} points); it rose with compute in {up} of {steps} steps from "
              f"one budget to the next (within each model and recipe). From MAE was higher in {wins} of {pairs} "
              "cells (1 seed each: single runs, no intervals), at the cost of its stage 1. The fit, a power law of the "
              f"error rate in total compute per recipe (`{fit.relative_to(out)}`; the command is in "
              "`logs/sweep_fit.log`):", ""]
    if fit.is_file():
        from scaling.laws.report import format_report

        lines += ["```", format_report(json.loads(fit.read_text())), "```"]
    if (out / FIGURE).is_file():
        lines += ["", f"![compute vs {METRIC_NAME}]({FIGURE})"]
    return lines
