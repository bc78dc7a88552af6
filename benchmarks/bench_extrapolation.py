"""Extrapolation of learning curves: every applicable law, `auto` and M4 side by side on the shared curve sets,
with the protocol of Alabdulmohsin, Neyshabur and Zhai 2022: fit on the first part of each curve up to a
cut in x, report the log-RMSE on the rest, sqrt(mean((log predicted - log actual)^2)), at several cuts.

    python benchmarks/bench_extrapolation.py                  # all sets (~10 min on 2 busy cores)
    python benchmarks/bench_extrapolation.py --sets tissue --max-curves 5

Curve sets (../shared/data, see its README), each curve ordered by x:
- openclip: Cherti et al. 2023, ImageNet zero-shot error after every epoch, x = step (cosine schedule known);
- misfitting: Li et al. 2025, loss at every checkpoint of every run, x = step (cosine schedule known);
- tissue: Tissue et al. 2024's two demo loss curves (cosine and constant lr), x = step;
- chinchilla: Hoffmann et al. 2022 fig. 4 runs, as loss vs compute along the Pareto frontier (one curve) and
  loss vs tokens D for runs of one model size (N binned to 0.1 decade).
Curves with fewer than MIN_POINTS points are left out (the 5-parameter laws need 6 to fit and 1 to score).

Cuts: fit the first ceil(f n) points, f in CUTS (on evenly logged steps that is the first 25/50/75% of
training; on geometric x, of the log range), score the rest. A curve's score for a method is its mean
log-RMSE over the cuts. Every fit runs through the code `scaling fit` runs (scaling.laws.pipeline): a
training curve as `scaling fit CURVES --law LAW --fit-fraction F` (F halfway between the last fitted and
the first held-out step, so the split falls exactly at the cut), the chinchilla points as a results table
with `--holdout K` (the K = n - ceil(f n) largest runs). Methods:
- the one-input laws power, power_offset, saturating, m4 on x;
- convergence (Tissue et al.) on the training curves, on S1, S2 of the lr schedule (default decay 0.999);
- auto: `--law auto`, the law chosen per curve by scaling.laws.auto's rolling-origin backtest *inside the
  fitted part only*, among auto.CURVE_CANDIDATES on training curves (convergence included) and
  auto.CANDIDATES on a table; it is told where it will predict (the held-out steps' x, S1, S2, or the
  held-out runs' x: the plan, not the values) and passes over a law that predicts a value <= 0 there;
- auto_x: a contrast, the same choice among the one-input laws only (what `--law auto` did on curves
  before it weighed convergence);
- auto_avg: the backtest-weighted (inverse-MSE) average of the applicable laws' log predictions.
chinchilla and convergence_size need a model size N that varies: a single curve has none, so they are not
among the methods. Nothing here is tuned on these sets: laws, grids, cuts and the backtest are the package's.
Wins vs M4: curves where a method's score is strictly lower than M4's.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy  # noqa: E402

from scaling.laws import auto  # noqa: E402
from scaling.laws import reference_data as ref  # noqa: E402
from scaling.laws.convergence import DECAY, Curve, curve_points  # noqa: E402
from scaling.laws.frontier import pareto  # noqa: E402
from scaling.laws.laws import get_law  # noqa: E402
from scaling.laws.pipeline import FitOptions, Outcome, fit_curves, fit_table  # noqa: E402
from scaling.laws.problem import FitData  # noqa: E402
from scaling.laws.results import Selection, select  # noqa: E402
from scaling.laws.table import Table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = next(
    (p / "shared" / "data" for p in REPO.parents if (p / "shared" / "data").is_dir()), REPO.parent / "shared" / "data"
)
CUTS = (0.25, 0.5, 0.75)
MIN_POINTS = 10


@dataclass
class BenchCurve:
    name: str
    x: np.ndarray
    y: np.ndarray
    curve: Curve | None = None  # a training curve with its lr schedule; None: points of a results table


def curve_sets(data: Path) -> dict[str, list[BenchCurve]]:
    out: dict[str, list[BenchCurve]] = {}
    oc = ref.openclip_curves(data / "openclip_cherti2023_imagenet_zeroshot_learning_curves.csv",
                             data / "openclip_cherti2023_trained_models_info.csv")
    mf = ref.misfitting_curves(data / "misfitting_li2025_scaling_results_all_ckpts.csv")
    ts = ref.tissue_curves(data / "lr_annealing_tissue2024_demo_curves.csv")
    for name, curves in (("openclip", oc), ("misfitting", mf), ("tissue", ts)):
        out[name] = [BenchCurve(c.run, c.step.astype(float), np.asarray(c.loss, float), c) for c in curves]
    rows = ref.chinchilla_rows(data / "chinchilla_fig4_points.csv")
    n, d, c, y = (np.array([r[k] for r in rows], float) for k in ("params", "samples", "flops", "value"))
    front = pareto(c, y)
    order = np.argsort(c[front])
    curves = [BenchCurve("chinchilla_frontier", c[front][order], y[front][order])]
    size_bin = np.round(np.log10(n) * 10) / 10
    for b in np.unique(size_bin):
        sel = np.flatnonzero(size_bin == b)
        sel = sel[np.argsort(d[sel])]
        curves.append(BenchCurve(f"chinchilla_N1e{b:.1f}", d[sel], y[sel]))
    out["chinchilla"] = curves
    return {k: [c for c in v if len(c.y) >= MIN_POINTS and np.all(c.y > 0)] for k, v in out.items()}


def _laws(c: BenchCurve) -> list[str]:
    return list(auto.CURVE_CANDIDATES if c.curve is not None else auto.CANDIDATES)


def _as_table(c: BenchCurve) -> Selection:
    cols = {"run": [f"p{i:03d}" for i in range(len(c.y))], "x": [repr(float(v)) for v in c.x],
            "loss": [repr(float(v)) for v in c.y]}
    table = Table(cols, np.arange(2, len(c.y) + 2), c.name)
    return select(table, get_law("power"), ["x"], "loss", y_kind="loss")


def _fit(method: str, c: BenchCurve, k: int) -> Outcome | None:
    """`scaling fit` on the curve's first k points (by x), predicting the rest, as the CLI runs it: a
    training curve with --fit-fraction (the midpoint between the k-th and next step, which splits exactly
    there), a table with --holdout (the n - k largest runs). None where the law cannot be fitted."""
    law = method if method == auto.AUTO else get_law(method)
    try:
        if c.curve is not None:
            s = np.sort(c.x)
            opt = FitOptions(fit_fraction=0.5 * (s[k - 1] + s[k]) / s[-1], bootstrap=0)
            return fit_curves(law, [c.curve], opt)
        return fit_table(law, _as_table(c), FitOptions(holdout=len(c.y) - k, bootstrap=0))
    except (ValueError, np.linalg.LinAlgError):  # DataError is a ValueError: too few runs for the law
        return None


def _predict(outcome: Outcome | None, X: dict[str, np.ndarray]) -> np.ndarray:
    return np.full(len(X["x"]), np.nan) if outcome is None else outcome.fit.predict(X)


def evaluate_curve(c: BenchCurve) -> dict:
    """{method: [log-RMSE per cut]}, and the seconds auto took per cut (backtest + the winner's fit)."""
    scores: dict[str, list[float]] = {}
    auto_seconds, chosen = [], []
    order = np.argsort(c.x, kind="stable")
    inputs = ("x", "S1", "S2") if c.curve is not None else ("x",)
    X = curve_points([c.curve], inputs).X if c.curve is not None else {"x": c.x}
    for f in CUTS:
        k = math.ceil(f * len(c.y))
        if k < 6 or k >= len(c.y):
            continue
        test = np.ones(len(c.y), dtype=bool)
        test[order[:k]] = False
        test_X = {key: v[test] for key, v in X.items()}
        actual = c.y[test]
        preds = {}
        for law in _laws(c):
            preds[law] = _predict(_fit(law, c, k), test_X)
            scores.setdefault(law, []).append(auto.log_rmse(preds[law], actual))
        t0 = time.perf_counter()
        outcome = _fit(auto.AUTO, c, k)  # the CLI's --law auto: backtest, then the winner fitted to all k points
        auto_seconds.append(time.perf_counter() - t0)
        choice = outcome.report["auto"]
        chosen.append(choice["chosen"])
        scores.setdefault("auto", []).append(auto.log_rmse(_predict(outcome, test_X), actual))
        logs = {n: np.log(np.maximum(preds[n], 1e-300)) for n in choice["average_weights"]}
        mix = np.exp(sum(w * logs[n] for n, w in choice["average_weights"].items()))
        scores.setdefault("auto_avg", []).append(auto.log_rmse(mix, actual))
        # contrast: the same choice among the one-input laws only (what auto did on curves before)
        train = FitData({key: v[~test] for key, v in X.items()}, c.y[~test], np.full(k, c.name))
        only_x = auto.choose(train, train.X["x"], auto.CANDIDATES, horizon=test_X)
        scores.setdefault("auto_x", []).append(auto.log_rmse(preds[only_x.law], actual))
    return {"scores": scores, "auto_seconds": auto_seconds, "auto_chosen": chosen}


def summarise(per_curve: dict[str, dict]) -> dict:
    methods = sorted({m for r in per_curve.values() for m in r["scores"]})
    mean_score = {m: {n: float(np.mean(r["scores"][m])) for n, r in per_curve.items() if m in r["scores"]}
                  for m in methods}
    out = {}
    for m in methods:
        vals = np.array(list(mean_score[m].values()))
        both = [n for n in mean_score[m] if n in mean_score.get("m4", {})]
        out[m] = {
            "curves": len(vals),
            "median_log_rmse": float(np.median(vals)),
            "mean_log_rmse": float(np.mean(vals)),
            "wins_vs_m4": int(sum(mean_score[m][n] < mean_score["m4"][n] for n in both)),
            "compared_with_m4": len(both),
        }
    secs = [s for r in per_curve.values() for s in r["auto_seconds"]]
    out["auto_fit_seconds"] = {"median": float(np.median(secs)), "max": float(np.max(secs)), "n": len(secs)}
    chosen: dict[str, int] = {}
    for r in per_curve.values():
        for law in r["auto_chosen"]:
            chosen[law] = chosen.get(law, 0) + 1
    out["auto_chose"] = chosen
    return out


def targets(summary: dict) -> dict:
    a, m = summary["auto"], summary["m4"]
    return {
        "auto_median_below_m4": a["median_log_rmse"] < m["median_log_rmse"],
        "auto_mean_below_m4": a["mean_log_rmse"] < m["mean_log_rmse"],
        "auto_wins_more_than_half": a["wins_vs_m4"] > a["compared_with_m4"] / 2,
        "auto_fit_under_1s_per_curve": summary["auto_fit_seconds"]["max"] < 1.0,
    }


def measured(since: float) -> dict:
    """When, from which commit, how long, under what load and on what machine a benchmark ran."""

    def git(*cmd: str) -> str:
        return subprocess.run(["git", *cmd], cwd=REPO, capture_output=True, text=True).stdout.strip()

    dirty = git("status", "--porcelain", "scaling/laws", "scaling/advise", "benchmarks")
    return {
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": git("rev-parse", "--short", "HEAD") + ("+uncommitted" if dirty else ""),
        "seconds": time.perf_counter() - since,
        "load_average": os.getloadavg(),
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS")},
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--sets", default="openclip,misfitting,tissue,chinchilla")
    p.add_argument("--max-curves", type=int, help="at most this many curves per set (evenly spaced), for a quick run")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "extrapolation_cpu.json")
    args = p.parse_args(argv)
    if not (args.data / "chinchilla_fig4_points.csv").is_file():
        print(f"no reference data in {args.data} (see shared/data/README.md); pass --data")
        return 2
    sets = curve_sets(args.data)
    report: dict = {"protocol": {"cuts": CUTS, "min_points": MIN_POINTS, "metric": "log-RMSE on the points after "
                                 "the cut, mean over cuts per curve", "convergence_decay": DECAY}, "sets": {}}
    pooled: dict[str, dict] = {}
    t_all = time.perf_counter()
    for name in args.sets.split(","):
        curves = sets[name]
        if args.max_curves and len(curves) > args.max_curves:
            curves = [curves[i] for i in np.linspace(0, len(curves) - 1, args.max_curves).round().astype(int)]
        per_curve = {}
        t0 = time.perf_counter()
        for i, c in enumerate(curves):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                per_curve[c.name] = evaluate_curve(c)
            print(f"\r{name}: {i + 1}/{len(curves)} curves ({time.perf_counter() - t0:.0f} s)", end="", flush=True)
        print()
        summary = summarise(per_curve)
        report["sets"][name] = {"summary": summary, "targets": targets(summary), "per_curve": per_curve}
        pooled.update({f"{name}/{k}": v for k, v in per_curve.items()})
        for m in ("m4", "auto", "auto_x", "auto_avg"):
            s = summary[m]
            print(f"  {m:<12} median {s['median_log_rmse']:.4f} mean {s['mean_log_rmse']:.4f} "
                  f"wins vs m4 {s['wins_vs_m4']}/{s['compared_with_m4']}")
    report["all"] = {"summary": summarise(pooled)}
    report["all"]["targets"] = targets(report["all"]["summary"])
    print("all:", json.dumps(report["all"]["targets"]))

    report["measured"] = measured(t_all)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
