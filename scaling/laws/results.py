"""The results table: built from run directories, and turned into points for a law.

A run directory holds `summary.json` (run, stage, model, params, samples_seen, flops, total_flops,
init_from, loss, recipe, eval) and maybe `eval/*.json` ({"protocol", "metric", "value"}). The table has one
row per run x metric: `run, model, params, samples, flops, total_flops, recipe, metric, value` (+ seed when
known; the training loss is metric "loss"). A directory with a `sweep.csv` stands for the runs it lists.

The two compute columns:
- `flops`: what this run's own stage computed (summary.json "flops").
- `total_flops`: this stage plus its whole init_from chain, i.e. for MAE->WSP the MAE pre-pretraining too.
  From summary.json "total_flops"; where that is absent or null: `flops` if the run has no init_from, else
  flops + init_from_flops, else the stage-1 run's own total (its run directory or exported .safetensors
  named by init_from, or a collected run of that name). Still unknown: an error, unless `--compute flops`
  (then the cell is left empty and only `flops` can be the compute axis).
`scaling fit` and `scaling plot` put `total_flops` on the compute axis by default (`--compute flops`
for one stage only): a fair MAE->WSP vs WSP comparison counts the pre-pretraining compute.
"""

from __future__ import annotations

import csv
import json
import math
import re
import struct
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scaling.laws.laws import Law
from scaling.laws.problem import FitData
from scaling.laws.table import DataError, Table

_SUMMARY_REQUIRED = ("stage", "model", "params", "samples_seen", "flops")


COMPUTE_COLUMNS = ("total_flops", "flops")


def expand_sweeps(paths: Sequence[str | Path]) -> tuple[list[Path], dict[str, str]]:
    """Run directories, with every directory holding a sweep.csv replaced by the runs in its `run_dir`
    column (relative to it); and each listed run's stage-1 run name (sweep.csv `depends_on`)."""
    out: list[Path] = []
    depends: dict[str, str] = {}
    for d in map(Path, paths):
        sweep = d / "sweep.csv"
        if not sweep.is_file():
            out.append(d)
            continue
        with sweep.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        if rows and "run_dir" not in rows[0]:
            raise DataError(f"{sweep}: no run_dir column; is this a sweep.csv written by `scaling sweep`?")
        for r in rows:
            out.append(d / r["run_dir"])
            if r.get("depends_on"):
                depends[str(r.get("run") or Path(r["run_dir"]).name)] = r["depends_on"]
    return out, depends


def collect(run_dirs: Sequence[str | Path], skip_incomplete: bool = False, compute: str = "total_flops") -> list[dict]:
    """One row per run x metric from run directories (or sweep directories); duplicate run names are an
    error naming both. `compute` "total_flops" refuses runs whose total compute is unknown."""
    if compute not in COMPUTE_COLUMNS:
        raise DataError(f"--compute {compute!r}: choose total_flops (incl. stage 1) or flops (this stage only)")
    dirs, depends = expand_sweeps(run_dirs)
    summaries: dict[str, tuple[Path, dict]] = {}
    incomplete: list[str] = []
    cut: list[str] = []
    for d in dirs:
        summary_path = d / "summary.json"
        if not summary_path.is_file():
            incomplete.append(str(d))
            continue
        try:
            summary = json.loads(summary_path.read_text())
        except json.JSONDecodeError as e:
            raise DataError(f"{summary_path}: not valid JSON ({e}); re-run the eval or fix the file") from e
        missing = [k for k in _SUMMARY_REQUIRED if k not in summary]
        if missing:
            raise DataError(
                f"{summary_path}: missing {', '.join(missing)}; summary.json needs {', '.join(_SUMMARY_REQUIRED)}"
            )
        if summary.get("preempted"):  # cut by a preemption or a cancel: `sweep status` does not call it done either
            cut.append(f"{d} (at {summary.get('samples_seen')} samples)")
            continue
        run = str(summary.get("run") or d.name)
        if run in summaries:
            raise DataError(
                f"run {run!r} appears twice: {summaries[run][0]} and {d}; rename one run "
                f"(summary.json 'run') or collect them separately"
            )
        summaries[run] = (d, summary)
    if incomplete or cut:
        msg = "; ".join(
            [f"{len(incomplete)} run(s) without summary.json (not finished, or not run directories): "
             + ", ".join(incomplete)] * bool(incomplete)
            + [f"{len(cut)} run(s) cut before their end (preempted or cancelled): " + ", ".join(cut)] * bool(cut))
        if not skip_incomplete:
            raise DataError(msg + "; pass --skip-incomplete to leave such runs out")
        warnings.warn(msg + "; skipped", stacklevel=2)
    rows: list[dict] = []
    unknown: list[str] = []
    for run, (d, summary) in summaries.items():
        total = total_flops(d, summary, summaries, depends.get(run))
        if total is None:
            unknown.append(f"{run} (init_from {summary.get('init_from') or depends.get(run)!r})")
        base = {
            "run": run,
            "model": summary["model"],
            "params": summary["params"],
            "samples": summary["samples_seen"],
            "flops": summary["flops"],
            "total_flops": "" if total is None else total,
            "recipe": summary.get("recipe") or summary["stage"],
            "stage": summary["stage"],
        }
        if summary.get("seed") is not None:
            base["seed"] = summary["seed"]
        for metric, value in _metrics(d, summary).items():
            rows.append({**base, "metric": metric, "value": value})
    if unknown and compute == "total_flops":
        raise DataError(
            f"total compute unknown for {len(unknown)} run(s) that start from a stage-1 checkpoint: "
            f"{', '.join(unknown[:8])}{' ...' if len(unknown) > 8 else ''}; collect the stage-1 run too, re-run "
            f"export/train with init_from_flops=FLOPS, or pass --compute flops to count this stage only"
        )
    if not rows:
        raise DataError("no runs collected; pass run directories that contain summary.json")
    return rows


def total_flops(
    run_dir: Path, summary: dict, collected: dict[str, tuple[Path, dict]] | None = None, depends_on: str | None = None
) -> float | None:
    """This stage's FLOPs plus its init_from chain's (see the module docstring); None where unknown."""
    if summary.get("total_flops") is not None:
        return float(summary["total_flops"])
    flops = float(summary["flops"])
    init = str(summary.get("init_from") or "") or (depends_on or "")
    if not init:
        return flops
    if summary.get("init_from_flops"):
        return flops + float(summary["init_from_flops"])
    stage1 = _stage1_flops(run_dir, init, collected or {})
    return None if stage1 is None else flops + stage1


def _stage1_flops(run_dir: Path, init: str, collected: dict[str, tuple[Path, dict]]) -> float | None:
    if init in collected:
        d, s = collected[init]
        return total_flops(d, s, collected)
    for cand in (Path(init), run_dir / init, run_dir.parent / init):
        if cand.is_dir() and (cand / "summary.json").is_file():
            try:
                s = json.loads((cand / "summary.json").read_text())
            except json.JSONDecodeError:
                return None
            return None if "flops" not in s else total_flops(cand, s, collected)
        if cand.is_file() and cand.suffix == ".safetensors":
            meta = _safetensors_metadata(cand)
            value = meta.get("total_flops") or meta.get("flops")
            return float(value) if value else None
    for d, s in collected.values():  # a run named by its directory
        if d.name == Path(init).name and Path(init).name:
            return total_flops(d, s, collected)
    return None


def _safetensors_metadata(path: Path) -> dict:
    # The format: 8 bytes little-endian header length, then a JSON header whose "__metadata__" holds strings.
    with path.open("rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        if n > 100_000_000:
            return {}
        try:
            return json.loads(fh.read(n)).get("__metadata__") or {}
        except json.JSONDecodeError:
            return {}


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
        for name, value in _eval_file_metrics(rec, path).items():
            if name in metrics and not math.isclose(metrics[name], value, rel_tol=1e-9):
                warnings.warn(
                    f"{path}: {name} = {value} differs from summary.json ({metrics[name]}); using the eval file",
                    stacklevel=3,
                )
            metrics[name] = value
    return metrics


def _eval_file_metrics(rec: dict, path: Path) -> dict[str, float]:
    """{name: value} of one eval output: `scaling eval`'s EVAL.json ({"metrics": {"linear_top1": ...}}), or a
    single {"metric", "value", "protocol"} record."""
    if isinstance(rec.get("metrics"), dict):
        return {str(k): _number(v, f"{path} metrics.{k}") for k, v in rec["metrics"].items()}
    if "metric" not in rec or "value" not in rec:
        raise DataError(f"{path}: an eval output needs 'metrics' ({{name: value}}, as `scaling eval` writes) or "
                        "'metric' and 'value' (and 'protocol')")
    name, protocol = str(rec["metric"]), str(rec.get("protocol") or "")
    # summary.json names evals "<protocol>_<metric>" (linear_top1); eval files may give them apart.
    if protocol and not name.startswith(protocol + "_"):
        name = f"{protocol}_{name}"
    return {name: _number(rec["value"], str(path))}


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
    y_kind: str  # accuracy (then data.y is the error rate 1 - accuracy), error or loss
    x_columns: tuple[str, ...]
    size: np.ndarray  # per point: what "largest" means for --holdout (compute where known)

    @property
    def y_is_accuracy(self) -> bool:
        return self.y_kind == "accuracy"


# --y-kind is inferred from these exact names only (case-insensitive); any other metric needs --y-kind.
# accuracy: fitted as the error rate 1 - value; error and loss: fitted as they are.
Y_KINDS = ("accuracy", "error", "loss")
ACCURACY_NAMES = frozenset(
    {"accuracy", "acc", "acc1", "acc5", "top1", "top5", "linear_top1", "linear_top5", "knn_top1", "knn_top5"}
    | {"finetune_top1", "finetune_top5", "imagenet_zeroshot_top1", "imagenet-zeroshot-val-top1"}
)
ACCURACY_PATTERN = re.compile(r"lowshot\d+_top[15]")  # lowshot{K}_top1, lowshot{K}_top5
ERROR_NAMES = frozenset({"err", "error", "error_rate", "val_error", "top1_err", "top5_err", "top1_error", "top5_error"})
LOSS_NAMES = frozenset({"loss", "val_loss", "train_loss", "eval_loss"})


def infer_y_kind(name: str) -> str | None:
    n = name.lower()
    if n in ACCURACY_NAMES or ACCURACY_PATTERN.fullmatch(n):
        return "accuracy"
    return "error" if n in ERROR_NAMES else "loss" if n in LOSS_NAMES else None


def y_kind_of(name: str, given: str | None) -> str:
    """The metric's direction: `given` (--y-kind), else inferred from the exact name lists above."""
    if given is not None:
        if given not in Y_KINDS:
            raise DataError(f"--y-kind {given!r}: choose accuracy, error or loss")
        return given
    kind = infer_y_kind(name)
    if kind is None:
        raise DataError(
            f"--y-kind is needed for {name!r}: its name is not one of the known accuracy, error or loss names "
            f"(see `scaling fit --help`); pass --y-kind accuracy (fitted as 1 - value), error or loss"
        )
    return kind


def group_labels(table: Table, group_by: Sequence[str] | str | None) -> np.ndarray | None:
    """One label per row from one or several columns ('a|b' for --group-by task,model); None: one group."""
    if not group_by:
        return None
    cols = [group_by] if isinstance(group_by, str) else list(group_by)
    parts = [table.column(c).astype(str) for c in cols]
    return np.array(["|".join(v) for v in zip(*parts)], dtype=object) if len(parts) > 1 else parts[0]


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
    group_by: Sequence[str] | str | None = None,
    y_kind: str | None = None,
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
    kind = y_kind_of(y, y_kind)
    if kind == "accuracy":
        bad = (values < 0) | (values > 1)
        if bad.any():
            raise DataError(
                f"{table.source}: {y!r} is an accuracy but is outside [0, 1] at "
                f"{table.where(bad)}; give accuracies as fractions (or pass --y-kind error|loss)"
            )
        values = 1.0 - values  # fitted as an error rate: bounded below by 0, never an unbounded number
        if (values <= 0).any():
            raise DataError(
                f"{table.source}: {y!r} is 1.0 at {table.where(values <= 0)}; an error rate of 0 "
                f"cannot be fitted on a log scale; drop those rows"
            )
    elif kind == "error" and (values > 1).any():
        raise DataError(
            f"{table.source}: {y!r} is an error rate but is above 1 at {table.where(values > 1)}; give error "
            f"rates as fractions, or pass --y-kind loss"
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
    labels = group_labels(table, group_by)
    if labels is not None:
        groups = sorted(set(labels))
        group = np.searchsorted(groups, labels)
    size = np.prod(list(X.values()), axis=0)  # "largest" run: by compute when the table has it
    compute = [c for c in x_columns if c in COMPUTE_COLUMNS]
    if compute:
        size = X[law.inputs[list(x_columns).index(compute[0])]]
    else:
        for col in COMPUTE_COLUMNS:
            if table.has(col):
                flops = np.array([_float_or_nan(v) for v in table.column(col)])
                size = np.where(np.isfinite(flops), flops, size)
                break
    data = FitData(X, values, run, group, groups)
    return Selection(data, table, y, kind, tuple(x_columns), size)


def _float_or_nan(v: object) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan
