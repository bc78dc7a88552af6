"""`scaling results`, `scaling fit`, `scaling plot`: thin argument parsing over scaling.laws.

main(argv) takes the command name first (the top-level dispatcher passes it), then its arguments.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import warnings
from pathlib import Path

# A fit is thousands of tiny BLAS calls; OpenBLAS worker threads spin between them and double the CPU
# time for no speed-up. One thread, unless the user asked otherwise (only effective before numpy loads).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from scaling.laws.auto import CANDIDATES, CURVE_CANDIDATES
from scaling.laws.backtest import parse_holdout
from scaling.laws.convergence import DECAY, read_run_curves, table_curves
from scaling.laws.frontier import FRONTIERS
from scaling.laws.laws import LAWS, get_law
from scaling.laws.results import ACCURACY_NAMES, ERROR_NAMES, LOSS_NAMES
from scaling.laws.table import DataError, Table, read_table, sha256_of, write_table

MULTI_COMMAND = True

_RESULTS_EXAMPLE = """examples:
  scaling results collect runs/* --out results.csv
  scaling results curves runs/vit_b_* --out curves.csv"""

_FIT_EXAMPLE = (
    "laws:\n"
    + "\n".join(f"  {n:<17} {law.formula}" for n, law in LAWS.items())
    + """

examples:
  scaling fit results.csv --law saturating --x flops --y linear_top1 --where recipe=mae_wsp \\
      --frontier pareto --holdout largest --out fit.json
  scaling fit results.csv --law chinchilla --x params,samples --y loss --allocate 1e21 1e22 --out fit.json
  scaling fit results.csv --law power --y linear_top1 --group-by recipe --share b \\
      --compare wsp,mae_wsp --at 0.80 --out compare.json
  scaling fit runs/* --law convergence --fit-fraction 0.5 --out curves_fit.json"""
)

_PLOT_EXAMPLE = """examples:
  scaling plot results.csv --fit fit.json --out compute.png
  scaling plot results.csv --kind isoflop --fit chinchilla_fit.json --out isoflop.pdf
  scaling plot results.csv --kind allocation --fit chinchilla_fit.json --out allocation.svg
  scaling plot runs/* --kind curves --fit curves_fit.json --out curves.png"""


_Y_KIND_HELP = (
    "accuracy (fitted as 1 - value), error or loss (fitted as they are); inferred only from these exact "
    "names, else required: accuracy: "
    + ", ".join(sorted(ACCURACY_NAMES))
    + ", lowshot{K}_top1/5; error: "
    + ", ".join(sorted(ERROR_NAMES))
    + "; loss: "
    + ", ".join(sorted(LOSS_NAMES))
)


def _compute_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--compute",
        default="total_flops",
        choices=["total_flops", "flops"],
        help="the compute axis when --x is not given: total_flops (default; this stage plus its init_from "
        "chain, so MAE->WSP counts the MAE pre-pretraining) or flops (this stage only)",
    )


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected numbers separated by commas") from None


def _parser(command: str) -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    if command == "results":
        p = argparse.ArgumentParser(
            prog="scaling results",
            formatter_class=fmt,
            epilog=_RESULTS_EXAMPLE,
            description="Build the results table (one row per run x metric) or the "
            "training-curves table from run directories.",
        )
        p.add_argument("action", choices=["collect", "curves"])
        p.add_argument("run_dirs", nargs="+", help="run directories (with summary.json / metrics.jsonl)")
        p.add_argument("--out", required=True, help="CSV to write")
        p.add_argument("--skip-incomplete", action="store_true",
                       help="leave out runs without summary.json or cut before their end (preempted, cancelled)")
        p.add_argument(
            "--compute",
            default="total_flops",
            choices=["total_flops", "flops"],
            help="total_flops (default): refuse runs whose stage-1 compute is unknown; flops: allow them "
            "(their total_flops cell is left empty)",
        )
        return p
    if command == "fit":
        p = argparse.ArgumentParser(
            prog="scaling fit",
            formatter_class=fmt,
            epilog=_FIT_EXAMPLE,
            description="Fit a scaling law with bootstrap-over-runs intervals, "
            "backtest it, and derive decisions; writes FIT.json.",
        )
        p.add_argument("inputs", nargs="+", help="a results/curves CSV, or run directories")
        p.add_argument(
            "--law",
            required=True,
            choices=[*sorted(LAWS), "auto"],
            help=f"auto: the law that extrapolates best in a rolling-origin backtest on the fitted runs, among "
            f"{', '.join(CANDIDATES)} on a results table, {', '.join(CURVE_CANDIDATES)} on training curves (run "
            "directories with --fit-fraction or --x step, or a CSV with step and lr columns); "
            "FIT.json's 'auto' says which won and why",
        )
        p.add_argument(
            "--x",
            help="input column(s), comma-separated, one per law input (default: the --compute column; "
            "params,samples for chinchilla)",
        )
        _compute_arg(p)
        p.add_argument(
            "--y",
            default=None,
            help="metric or column to fit (default: loss); accuracies are fitted as error rates 1 - acc",
        )
        p.add_argument("--y-kind", choices=["accuracy", "error", "loss"], help=_Y_KIND_HELP)
        p.add_argument("--where", action="append", default=[], help="row filter COLUMN=VALUE[,VALUE]; repeatable")
        p.add_argument(
            "--group-by",
            help="fit one curve per value of these columns, comma-separated (e.g. recipe, task,model, or run)",
        )
        p.add_argument("--share", default="", help="parameters shared across groups, e.g. b or alpha,beta")
        p.add_argument("--frontier", default="none", choices=FRONTIERS)
        p.add_argument("--bins-per-decade", type=float, default=4.0, help="for --frontier binned")
        p.add_argument("--holdout", help="'largest' or K: fit without the K largest runs, report them")
        p.add_argument(
            "--holdout-where",
            action="append",
            default=[],
            help="COLUMN=VALUE (e.g. split=test): hold out the rows it matches, whatever their x; repeatable",
        )
        p.add_argument("--fit-fraction", type=float, help="curves: fit the first fraction of each, predict its end")
        p.add_argument("--bootstrap", type=int, default=200, help="bootstrap refits (0: no intervals)")
        p.add_argument("--level", type=float, default=0.9, help="interval coverage (default 0.9)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument(
            "--allocate",
            type=float,
            nargs="+",
            default=[],
            metavar="C",
            help="chinchilla: compute budgets (FLOPs) for N_opt, D_opt",
        )
        p.add_argument("--flops-per-param-sample", type=float, help="k in C = k N D (default: from the table)")
        p.add_argument("--predict", type=float, nargs="+", default=[], metavar="X", help="x values to predict at")
        p.add_argument("--compare", help="BASE,NEW groups: compute multiplier of BASE over NEW (needs --at)")
        p.add_argument("--at", type=_floats, default=[], help="y values (accuracy or loss) for --compare")
        p.add_argument("--decay", type=float, default=DECAY, help="convergence: S2 momentum lambda per step")
        p.add_argument(
            "--anneal-delay",
            type=float,
            help="convergence: S2 momentum as a delay of this fraction of each run (lambda = 1 - 1/(F T)) "
            "instead of --decay; 0.2 fits OpenCLIP zero-shot error curves (see convergence.curve_decay)",
        )
        p.add_argument("--out", required=True, help="FIT.json to write")
        return p
    p = argparse.ArgumentParser(
        prog="scaling plot",
        formatter_class=fmt,
        epilog=_PLOT_EXAMPLE,
        description="Draw figures from a results table (or curves) and a fit.",
    )
    p.add_argument("inputs", nargs="+", help="a results/curves CSV, or run directories")
    p.add_argument("--kind", default="compute", choices=["compute", "isoflop", "allocation", "curves"])
    p.add_argument("--fit", help="FIT.json from `scaling fit`; its x, y, filters and frontier are the defaults")
    p.add_argument("--x")
    _compute_arg(p)
    p.add_argument("--y")
    p.add_argument("--y-kind", choices=["accuracy", "error", "loss"], help=_Y_KIND_HELP)
    p.add_argument("--where", action="append", default=None)
    p.add_argument("--group-by")
    p.add_argument("--frontier", choices=FRONTIERS)
    p.add_argument("--compute-range", type=_floats, help="allocation: LO,HI FLOPs (default: data range x 100)")
    p.add_argument("--out", required=True, help="figure file: .png, .pdf or .svg")
    return p


def _input_files(inputs: list[str]) -> list[Path]:
    files = []
    for i in map(Path, inputs):
        if i.is_dir():
            files += sorted(p for p in i.rglob("*") if p.is_file() and p.suffix in (".json", ".jsonl"))
        elif i.is_file():
            files.append(i)
        else:
            raise DataError(f"{i}: no such file or directory")
    return files


def _load_table(inputs: list[str], skip_incomplete: bool = False, compute: str = "total_flops") -> Table:
    from scaling.laws.results import collect

    if len(inputs) == 1 and Path(inputs[0]).is_file():
        return read_table(inputs[0])
    if any(Path(i).is_file() for i in inputs):
        raise DataError("give one CSV, or run directories; not several files")
    rows = collect(inputs, skip_incomplete, compute)
    cols = {k: [str(r.get(k, "")) for r in rows] for k in dict.fromkeys(k for r in rows for k in r)}
    return Table(cols, np.arange(1, len(rows) + 1), "collected runs (row numbers count from 1)")


def _load_curves(inputs: list[str], y: str | None, where: list[str] | None = None, y_kind: str | None = None):
    from scaling.laws.results import apply_where

    if len(inputs) == 1 and Path(inputs[0]).is_file():
        return table_curves(apply_where(read_table(inputs[0]), where or []), y or "loss", y_kind)
    if where:
        raise DataError("--where filters a curves CSV; with run directories, pass only the runs you want")
    return read_run_curves(inputs)


def _reads_curves(args: argparse.Namespace, law) -> bool:
    """Whether `scaling fit` reads its inputs as training curves (one point per logged step) rather than a
    results table (one row per run x metric): always for the convergence laws; for auto and the one-input
    laws when --fit-fraction is given, --x is step, or --x is not given and the one CSV has step and lr
    columns (what `scaling results curves` writes)."""
    if law != "auto" and "S1" in law.inputs:
        return True
    if law != "auto" and law.inputs != ("x",):
        return False
    if args.fit_fraction is not None or args.x == "step":
        return True
    if args.x is None and len(args.inputs) == 1 and Path(args.inputs[0]).is_file():
        with open(args.inputs[0], newline="") as fh:
            header = next(csv.reader(fh), [])
        return {"step", "lr"} <= set(header)
    return False


def _group_by(text: str | None) -> list[str] | None:
    return [c.strip() for c in text.split(",") if c.strip()] if text else None


def _compute_of(x: list[str]) -> str | None:
    """What the compute axis counts, for FIT.json and the report."""
    if "total_flops" in x:
        return "total_flops: this stage plus its init_from chain (stage-1 pre-pretraining included)"
    if "flops" in x:
        return "flops: this stage only"
    return None


def _default_x(law_inputs: tuple[str, ...], table: Table | None = None, compute: str = "total_flops") -> str:
    """The law's input columns when --x is not given: the --compute column for one-input laws."""
    if law_inputs == ("N", "D"):
        return "params,samples"
    if compute == "flops" or table is None:
        return compute
    if not table.has("total_flops"):
        stage1 = table.has("recipe") and any("mae" in str(r) for r in set(table.column("recipe")))
        if stage1:
            raise DataError(
                f"{table.source}: no total_flops column, and some runs start from a stage-1 checkpoint "
                f"(recipe mae_*): re-collect it with `scaling results collect` (it writes total_flops), or "
                f"pass --compute flops to put this stage's compute only on the axis"
            )
        return "flops" if table.has("flops") else "total_flops"  # old tables without init_from: the same
    empty = [v == "" for v in table.column("total_flops")]
    if any(empty):
        raise DataError(
            f"{table.source}: total_flops is empty at {table.where(np.array(empty))} (stage-1 compute "
            f"unknown when collected); re-collect with the stage-1 runs, or pass --compute flops"
        )
    return "total_flops"


def _results(args: argparse.Namespace) -> int:
    if args.action == "collect":
        from scaling.laws.results import collect

        n = write_table(collect(args.run_dirs, args.skip_incomplete, args.compute), args.out)
        print(f"wrote {n} rows to {args.out}")
        return 0
    rows = []
    for c in read_run_curves(args.run_dirs):
        for i, s in enumerate(c.step):
            rows.append(
                {
                    "run": c.run,
                    "step": int(s),
                    "samples_seen": None if c.samples is None else c.samples[i],
                    "lr": c.lr[s - 1],
                    "loss": c.loss[i],
                    "params": c.params,
                    "recipe": c.group,
                }
            )
    n = write_table(rows, args.out, first=("run", "step", "samples_seen", "lr", "loss", "params", "recipe"))
    print(f"wrote {n} curve points to {args.out}")
    return 0


def _fit(args: argparse.Namespace) -> int:
    from scaling.laws.pipeline import FitOptions, fit_curves, fit_table
    from scaling.laws.report import format_report, write_fit
    from scaling.laws.results import select, y_kind_of

    law = args.law if args.law == "auto" else get_law(args.law)
    compare = tuple(args.compare.split(",")) if args.compare else None
    if compare is not None and len(compare) != 2:
        raise DataError(f"--compare {args.compare!r}: give BASE,NEW, e.g. --compare wsp,mae_wsp")
    opt = FitOptions(
        frontier=args.frontier,
        bins_per_decade=args.bins_per_decade,
        holdout=parse_holdout(args.holdout),
        holdout_where=args.holdout_where,
        fit_fraction=args.fit_fraction,
        bootstrap=args.bootstrap,
        level=args.level,
        seed=args.seed,
        share=tuple(s for s in args.share.split(",") if s),
        allocate=args.allocate,
        flops_per_param_sample=args.flops_per_param_sample,
        predict=args.predict,
        compare=compare,
        at=args.at,
    )
    if not 0 < args.level < 1:
        raise DataError(f"--level {args.level}: give a coverage between 0 and 1, e.g. 0.9")
    if _reads_curves(args, law):
        if args.holdout_where:
            raise DataError("--holdout-where marks rows of a results table; for curves use --fit-fraction")
        y = args.y or "loss"
        kind = y_kind_of(y, args.y_kind) if args.y else (args.y_kind or "loss")
        curves = _load_curves(args.inputs, args.y, args.where, kind)
        outcome = fit_curves(law, curves, opt, args.group_by, args.decay, y, kind, args.anneal_delay)
    else:
        if opt.fit_fraction is not None:
            raise DataError(
                f"--fit-fraction backtests training curves, which law {law.name} does not fit; use --law "
                f"auto, convergence or a one-input law ({', '.join(CANDIDATES)})"
            )
        group_by = _group_by(args.group_by) or (["recipe"] if compare else None)
        table = _load_table(args.inputs, compute=args.compute)
        inputs = ("x",) if law == "auto" else law.inputs
        x = (args.x or _default_x(inputs, table, args.compute)).split(",")
        if law == "auto" and len(x) != 1:
            raise DataError(
                f"--law auto chooses among one-input laws ({', '.join(CANDIDATES)}) but --x gave "
                f"{len(x)} columns ({','.join(x)}); give one column, or use --law chinchilla for params,samples"
            )
        sel = select(table, get_law("power") if law == "auto" else law, x, args.y or "loss", args.where, group_by,
                     args.y_kind)
        outcome = fit_table(law, sel, opt)
        outcome.report.update({"where": args.where, "group_by": group_by, "compute": _compute_of(x)})
    outcome.report["inputs"] = [str(i) for i in args.inputs]
    outcome.report["data_sha256"] = sha256_of(_input_files(args.inputs))
    write_fit(outcome.report, args.out)
    print(format_report(outcome.report))
    print(f"\nwrote {args.out}")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from scaling.laws import plots
    from scaling.laws.decisions import flops_per_param_sample
    from scaling.laws.report import load_fit
    from scaling.laws.results import select

    fit, draws, report = load_fit(args.fit) if args.fit else (None, None, {})
    level = report.get("level", 0.9)
    # bands widened like the FIT.json intervals they draw (few runs: t / z > 1)
    widen = max(((report.get("bootstrap") or {}).get("interval_widening") or {"": 1.0}).values())
    if args.kind == "curves":
        curves = _load_curves(args.inputs, args.y, args.where, args.y_kind or report.get("y_kind"))
        fig = plots.curves_figure(
            curves,
            fit,
            draws,
            report.get("fit_fraction"),
            report.get("group_by") == "run",
            report.get("decay", DECAY),
            level,
            report.get("anneal_delay"),
            widen,
        )
        print(f"wrote {plots.save(fig, args.out)}")
        return 0
    if args.kind in ("isoflop", "allocation") and (fit is None or fit.law.name != "chinchilla"):
        raise DataError(f"--kind {args.kind} needs --fit with a chinchilla FIT.json")
    law = fit.law if fit is not None else get_law("power")
    fit_x = report.get("x")
    table = _load_table(args.inputs, compute=args.compute)
    x = args.x or (",".join(fit_x) if isinstance(fit_x, list) else fit_x) or _default_x(law.inputs, table, args.compute)
    where = report.get("where", []) if args.where is None else args.where
    group_by = _group_by(args.group_by) or report.get("group_by") or (["recipe"] if fit is None else None)
    y = args.y or report.get("y") or "loss"
    y_kind = args.y_kind or (report.get("y_kind") if y == report.get("y") else None)
    sel = select(table, law, x.split(","), y, where, group_by, y_kind)
    if args.kind == "compute":
        frontier_mode = args.frontier or report.get("frontier") or "pareto"
        held = tuple(h["run"] for h in report.get("holdout", []))
        fig = plots.compute_figure(sel, fit, draws, frontier_mode, held, level, widen=widen)
    else:
        k = (report.get("derived") or {}).get("flops_per_param_sample")
        if k is None:
            k = flops_per_param_sample(sel.size, sel.data.X["N"], sel.data.X["D"]) if sel.table.has("flops") else 6.0
        if args.kind == "isoflop":
            fig = plots.isoflop_figure(sel, fit, k)
        else:
            span = (sel.size.min(), sel.size.max())
            rng = tuple(args.compute_range) if args.compute_range else (span[0], span[1] * 100)
            fig = plots.allocation_figure(fit, draws, k, rng, span, level, widen)
    print(f"wrote {plots.save(fig, args.out)}")
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("results", "fit", "plot"):
        print("scaling.laws.cli: expected the command name results, fit or plot first", file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    args = _parser(command).parse_args(rest)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            code = {"results": _results, "fit": _fit, "plot": _plot}[command](args)
        except (DataError, ValueError) as e:
            code = 2
            print(f"scaling {command}: error: {e}", file=sys.stderr)
    for w in caught:  # never silent: every warning reaches the user, once, in plain words
        print(f"scaling {command}: warning: {w.message}", file=sys.stderr)
    return code
