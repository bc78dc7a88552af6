"""The results table: built from run directories, and turned into points for a law.

A run directory holds `summary.json` (run, stage, model, params, samples_seen, flops, loss, recipe, eval)
and maybe `eval/*.json` ({"protocol", "metric", "value"}). The table has one row per run x metric:
`run, model, params, samples, flops, recipe, metric, value` (the training loss is metric "loss").
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scaling.laws.laws import Law
from scaling.laws.problem import FitData
from scaling.laws.table import DataError, Table

_SUMMARY_REQUIRED = ("stage", "model", "params", "samples_seen", "flops")


def collect(run_dirs: Sequence[str | Path], skip_incomplete: bool = False) -> list[dict]:
    """One row per run x metric from run directories; duplicate run names are an error naming both."""
    rows: list[dict] = []
    seen: dict[str, Path] = {}
    for d in map(Path, run_dirs):
        summary_path = d / "summary.json"
        if not summary_path.is_file():
            msg = f"{d}: no summary.json (the run has not finished, or this is not a run directory)"
            if skip_incomplete:
                warnings.warn(msg + "; skipped", stacklevel=2)
                continue
            raise DataError(msg + "; pass --skip-incomplete to leave such runs out")
        try:
            summary = json.loads(summary_path.read_text())
        except json.JSONDecodeError as e:
            raise DataError(f"{summary_path}: not valid JSON ({e}); re-run the eval or fix the file") from e
        missing = [k for k in _SUMMARY_REQUIRED if k not in summary]
        if missing:
            raise DataError(
                f"{summary_path}: missing {', '.join(missing)}; summary.json needs {', '.join(_SUMMARY_REQUIRED)}"
            )
        run = str(summary.get("run") or d.name)
        if run in seen:
            raise DataError(
                f"run {run!r} appears twice: {seen[run]} and {d}; rename one run "
                f"(summary.json 'run') or collect them separately"
            )
        seen[run] = d
        base = {
            "run": run,
            "model": summary["model"],
            "params": summary["params"],
            "samples": summary["samples_seen"],
            "flops": summary["flops"],
            "recipe": summary.get("recipe") or summary["stage"],
            "stage": summary["stage"],
        }
        for metric, value in _metrics(d, summary).items():
            rows.append({**base, "metric": metric, "value": value})
    if not rows:
        raise DataError("no runs collected; pass run directories that contain summary.json")
    return rows


def _number(value: object, where: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: {value!r} is not a number; eval metrics must be plain numbers") from None
    if not math.isfinite(out):
        raise DataError(f"{where}: {value!r} is not finite; re-run that eval or drop the metric")
    return out


def _metrics(run_dir: Path, summary: dict) -> dict[str, float]:
    metrics: dict[str, float] = {}
    loss = summary.get("loss")
    if loss is None:  # fall back to the last logged training loss
        loss = _last_logged_loss(run_dir / "metrics.jsonl")
    if loss is not None:
        metrics["loss"] = _number(loss, f"{run_dir}/summary.json loss")
    for name, value in (summary.get("eval") or {}).items():
        metrics[name] = _number(value, f"{run_dir}/summary.json eval.{name}")
    for path in sorted((run_dir / "eval").glob("*.json")) if (run_dir / "eval").is_dir() else []:
        try:
            rec = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: not valid JSON ({e}); re-run that eval") from e
        if "metric" not in rec or "value" not in rec:
            raise DataError(f"{path}: an eval output needs 'metric' and 'value' (and 'protocol')")
        name, protocol = str(rec["metric"]), str(rec.get("protocol") or "")
        # summary.json names evals "<protocol>_<metric>" (linear_top1); eval files may give them apart.
        if protocol and not name.startswith(protocol + "_"):
            name = f"{protocol}_{name}"
        value = _number(rec["value"], str(path))
        if name in metrics and not math.isclose(metrics[name], value, rel_tol=1e-9):
            warnings.warn(
                f"{path}: {name} = {value} differs from summary.json ({metrics[name]}); using the eval file",
                stacklevel=3,
            )
        metrics[name] = value
    return metrics


def _last_logged_loss(path: Path) -> float | None:
    if not path.is_file():
        return None
    last = None
    for line in path.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            last = rec.get("loss", last)
    return last


@dataclass
class Selection:
    """Points for a law, with what they came from (for reports and plots)."""

    data: FitData
    table: Table  # the rows used, in the order of data
    y_name: str
    y_is_accuracy: bool  # then data.y is the error rate 1 - accuracy
    x_columns: tuple[str, ...]
    size: np.ndarray  # per point: what "largest" means for --holdout (compute where known)


def is_accuracy(name: str) -> bool:
    n = name.lower()
    return "loss" not in n and any(k in n for k in ("acc", "top1", "top5", "top-1", "top-5"))


def apply_where(table: Table, where: Sequence[str]) -> Table:
    """Keep rows matching every `column=value[,value...]` filter."""
    mask = np.ones(len(table), dtype=bool)
    for cond in where:
        if "=" not in cond:
            raise DataError(f"--where {cond!r}: expected COLUMN=VALUE (e.g. recipe=mae_wsp)")
        col, _, values = cond.partition("=")
        col_values = table.column(col.strip())
        wanted = {v.strip() for v in values.split(",")}
        mask &= np.isin(col_values.astype(str), list(wanted))
        if not mask.any():
            raise DataError(
                f"--where {cond!r} leaves no rows; {col.strip()} takes values: "
                f"{', '.join(sorted(set(col_values.astype(str))))}"
            )
    return table.take(mask)


def select(
    table: Table,
    law: Law,
    x_columns: Sequence[str],
    y: str,
    where: Sequence[str] = (),
    group_by: str | None = None,
) -> Selection:
    """The points of `table` that `law` fits: X from `x_columns` (one per law input), y from a metric or
    column. Accuracies become error rates. Every bad value is an error naming its rows."""
    if len(x_columns) != len(law.inputs):
        raise DataError(
            f"law {law.name} takes {len(law.inputs)} input column(s) ({', '.join(law.inputs)}) "
            f"but --x gave {len(x_columns)}: {','.join(x_columns)}"
        )
    table = apply_where(table, where)
    if table.has("metric") and table.has("value") and not table.has(y):
        metrics = table.column("metric").astype(str)
        if y not in set(metrics):
            raise DataError(f"{table.source}: no metric {y!r}; metrics present: {', '.join(sorted(set(metrics)))}")
        table = table.take(metrics == y)
        values = table.numbers("value")
    else:
        values = table.numbers(y)
    run = table.column("run").astype(str) if table.has("run") else np.array([f"line{n}" for n in table.lines])
    names, counts = np.unique(run, return_counts=True)
    if (counts > 1).any():
        dup = np.isin(run, names[counts > 1])
        raise DataError(
            f"{table.source}: duplicate runs for {y!r} at {table.where(dup)}; keep one row per run "
            f"(filter with --where) or give the runs distinct names"
        )
    accuracy = is_accuracy(y)
    if accuracy:
        bad = (values < 0) | (values > 1)
        if bad.any():
            raise DataError(
                f"{table.source}: {y!r} looks like an accuracy but is outside [0, 1] at "
                f"{table.where(bad)}; give accuracies as fractions"
            )
        values = 1.0 - values  # fitted as an error rate: bounded below by 0, never an unbounded number
        if (values <= 0).any():
            raise DataError(
                f"{table.source}: {y!r} is 1.0 at {table.where(values <= 0)}; an error rate of 0 "
                f"cannot be fitted on a log scale; drop those rows"
            )
    elif (values <= 0).any():
        raise DataError(
            f"{table.source}: {y!r} must be > 0 (fitted on a log scale) but is <= 0 at "
            f"{table.where(values <= 0)}; drop those rows"
        )
    X = {}
    for role, col in zip(law.inputs, x_columns):
        X[role] = table.numbers(col, positive=role in law.log_inputs)
    groups, group = ["all"], np.zeros(len(values), dtype=int)
    if group_by:
        labels = table.column(group_by).astype(str)
        groups = sorted(set(labels))
        group = np.searchsorted(groups, labels)
    size = np.prod(list(X.values()), axis=0)  # "largest" run: by compute when the table has it
    if "flops" in x_columns:
        size = X[law.inputs[list(x_columns).index("flops")]]
    elif table.has("flops"):
        flops = np.array([_float_or_nan(v) for v in table.column("flops")])
        size = np.where(np.isfinite(flops), flops, size)
    data = FitData(X, values, run, group, groups)
    return Selection(data, table, y, accuracy, tuple(x_columns), size)


def _float_or_nan(v: object) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan
