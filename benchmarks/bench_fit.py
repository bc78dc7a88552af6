"""Benchmark the scaling-law fitter against the plain procedure, and measure what the tests only bound.

    python benchmarks/bench_fit.py                      # everything (the plain grid takes minutes)
    python benchmarks/bench_fit.py --plain-starts 450   # a tenth of the plain grid
    python benchmarks/bench_fit.py --skip-coverage --skip-curves

Sections, all written to benchmarks/results/fit_bench_cpu.json and printed:
- plain: Besiroglu et al. 2024's procedure on the 240 Chinchilla points: 4,500 L-BFGS-B starts
  (alpha, beta in 0..2 step 0.5; e in -1..1 step 0.5; a, b in 0..25 step 5) with numerical gradients,
  Huber (delta 1e-3) on log L against logsumexp(a - alpha log N, b - beta log D, e). Best objective kept.
- ours: scaling.laws.fit (variable-projection grid + analytic-gradient refine) on the same points;
  the ratio of times, and the relative objective difference (ours - plain) / plain.
- bootstrap: 1,000 run-bootstrap refits of the Chinchilla fit.
- curves: how well the first half of each training curve predicts its end (Tissue demo, OpenCLIP
  zero-shot error curves, (Mis)fitting checkpoints).
- coverage: fraction of seeded draws whose 90% intervals contain the true parameters, per law.
- coverage_few_runs: the same as FIT.json reports intervals (scheme chosen from runs vs parameters,
  t-widened) at 4, 5, 6, 8 and 12 runs per law, against the nominal 0.9; designs in tests/laws/laws_simulate.
Both procedures run with single-threaded OpenBLAS (set below, before numpy loads), which is also the
faster setting for scipy's L-BFGS-B since 1.15 (scipy/scipy#22438); the JSON records it.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy  # noqa: E402
from scipy.optimize import minimize  # noqa: E402
from scipy.special import huber, logsumexp  # noqa: E402

from scaling.laws import reference_data as ref  # noqa: E402
from scaling.laws.bootstrap import run_bootstrap  # noqa: E402
from scaling.laws.convergence import curve_points  # noqa: E402
from scaling.laws.fit import fit  # noqa: E402
from scaling.laws.laws import LAWS, get_law  # noqa: E402
from scaling.laws.pipeline import FitOptions, fit_curves  # noqa: E402
from scaling.laws.problem import FitData  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# ../shared/data beside the checkout (for a worktree /work/wt/x that is /work/shared/data)
DATA = next(
    (p / "shared" / "data" for p in REPO.parents if (p / "shared" / "data").is_dir()), REPO.parent / "shared" / "data"
)


def chinchilla_points(data_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = ref.chinchilla_rows(data_dir / "chinchilla_fig4_points.csv")
    return (
        np.array([r["params"] for r in rows]),
        np.array([r["samples"] for r in rows]),
        np.array([r["value"] for r in rows]),
    )


def plain_procedure(N, D, L, starts: int) -> dict:
    grid = list(
        itertools.product(
            np.arange(0, 30, 5),
            np.arange(0, 30, 5),
            np.arange(-1, 1.5, 0.5),
            np.arange(0, 2.5, 0.5),
            np.arange(0, 2.5, 0.5),
        )
    )
    picks = grid if starts >= len(grid) else [grid[i] for i in np.linspace(0, len(grid) - 1, starts).astype(int)]
    logN, logD, logL = np.log(N), np.log(D), np.log(L)

    def objective(p):
        a, b, e, alpha, beta = p
        pred = logsumexp([a - alpha * logN, b - beta * logD, np.full_like(logN, e)], axis=0)
        return np.sum(huber(1e-3, logL - pred))

    best = None
    t0 = time.perf_counter()
    for start in picks:
        res = minimize(objective, np.array(start, dtype=float), method="L-BFGS-B")
        if best is None or res.fun < best.fun:
            best = res
    seconds = time.perf_counter() - t0
    a, b, e, alpha, beta = best.x
    return {
        "starts": len(picks),
        "of": len(grid),
        "seconds": seconds,
        "objective": float(best.fun),
        "params": {
            "E": float(np.exp(e)),
            "A": float(np.exp(a)),
            "B": float(np.exp(b)),
            "alpha": float(alpha),
            "beta": float(beta),
        },
    }


def ours(N, D, L) -> tuple[dict, object, FitData]:
    data = FitData({"N": N, "D": D}, L, np.array([f"r{i}" for i in range(len(L))]))
    law = get_law("chinchilla")
    times = []
    for _ in range(5):  # one fit is a fraction of a second: the minimum of 5 is the speed to compare
        t0 = time.perf_counter()
        result = fit(law, data)
        times.append(time.perf_counter() - t0)
    return (
        {
            "seconds": times[0],
            "seconds_min_of_5": min(times),
            "objective": result.objective,
            "converged": result.converged,
            "params": result.params(),
        },
        result,
        data,
    )


def bootstrap_section(result, data, n: int) -> dict:
    t0 = time.perf_counter()
    boot = run_bootstrap(result, data, n, seed=0)
    seconds = time.perf_counter() - t0
    lo, hi = np.nanquantile(boot.samples, [0.05, 0.95], axis=0)
    return {
        "n": n,
        "seconds": seconds,
        "ms_per_refit": 1e3 * seconds / n,
        "failed": boot.failed,
        "not_converged": boot.not_converged,
        "intervals_90": {p: [float(a), float(b)] for p, a, b in zip(result.names, lo, hi)},
    }


def _rel_summary(rel: np.ndarray) -> dict:
    return {
        "runs": len(rel),
        "median_abs_rel_error": float(np.median(np.abs(rel))),
        "mean_rel_error": float(np.mean(rel)),
        "max_abs_rel_error": float(np.max(np.abs(rel))),
        "within_1pct": int((np.abs(rel) < 0.01).sum()),
        "within_5pct": int((np.abs(rel) < 0.05).sum()),
    }


def _first_half(curves, group_by, anneal_delay=None) -> dict:
    opt = FitOptions(fit_fraction=0.5, bootstrap=0)
    out = fit_curves(get_law("convergence"), curves, opt, group_by, anneal_delay=anneal_delay)
    return _rel_summary(np.array([(h["predicted"] - h["actual"]) / h["actual"] for h in out.report["holdout"]]))


def _whole_curve_end_residual(curves, anneal_delay=None) -> dict:
    """Each curve fitted whole: how far the law's own best fit misses the last point (a floor on what any
    backtest of the end can reach with that law's form)."""
    law = get_law("convergence")
    rel = []
    for c in curves:
        d = curve_points([c], law.inputs, anneal_delay=anneal_delay)
        r = fit(law, d, warn=False)
        rel.append((r.predict(d.X)[-1] - d.y[-1]) / d.y[-1])
    return _rel_summary(np.array(rel))


def curves_section(data_dir: Path) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # per-run fits on short halves put some exponents on bounds
        tissue = ref.tissue_curves(data_dir / "lr_annealing_tissue2024_demo_curves.csv")
        openclip = ref.openclip_curves(
            data_dir / "openclip_cherti2023_imagenet_zeroshot_learning_curves.csv",
            data_dir / "openclip_cherti2023_trained_models_info.csv",
        )
        openclip = [c for c in openclip if (c.step <= 0.5 * c.step[-1]).sum() >= 5]
        # 5 of the 26 runs (3B samples) warm up for 34% of the run: their first half is 1.5 warmups
        past_warmup = [c for c in openclip if np.argmax(c.lr) < 0.3 * len(c.lr)]
        long_warmup = [c for c in openclip if np.argmax(c.lr) >= 0.3 * len(c.lr)]
        misfit = ref.misfitting_curves(data_dir / "misfitting_li2025_scaling_results_all_ckpts.csv", min_points=16)
        out = {
            "tissue_joint_fit_both_schedules": _first_half(tissue, None),
            "openclip_zeroshot_error_per_run": _first_half(openclip, "run"),
            "misfitting_loss_per_run": _first_half(misfit, "run"),
            "openclip_warmup_under_30pct": _first_half(past_warmup, "run"),
            "openclip_warmup_34pct_3B_runs": _first_half(long_warmup, "run"),
            "openclip_whole_curve_end_residual": _whole_curve_end_residual(openclip),
        }
        for f in (0.1, 0.2, 0.3):  # the annealing gain arriving over a fraction f of the run (--anneal-delay)
            out[f"openclip_zeroshot_error_per_run_anneal_delay_{f}"] = _first_half(openclip, "run", f)
            out[f"openclip_warmup_under_30pct_anneal_delay_{f}"] = _first_half(past_warmup, "run", f)
        out["openclip_warmup_34pct_3B_runs_anneal_delay_0.2"] = _first_half(long_warmup, "run", 0.2)
        out["openclip_whole_curve_end_residual_anneal_delay_0.2"] = _whole_curve_end_residual(openclip, 0.2)
        out["misfitting_loss_per_run_anneal_delay_0.2"] = _first_half(misfit, "run", 0.2)
        out["tissue_joint_fit_both_schedules_anneal_delay_0.2"] = _first_half(tissue, None, 0.2)
        return out


def coverage_section(draws: int, boots: int, noise: float, laws: list[str]) -> dict:
    sys.path.insert(0, str(REPO / "tests" / "laws"))
    from laws_simulate import TRUTH, draw  # the tests' seeded simulation, one source of truth

    out = {}
    for name in laws:
        law = get_law(name)
        rng = np.random.default_rng(11)
        hits = np.zeros(len(law.params))
        t0 = time.perf_counter()
        for i in range(draws):
            data = draw(name, noise, rng)
            full = fit(law, data, warn=False)
            lo, hi = np.nanquantile(run_bootstrap(full, data, boots, seed=i).samples, [0.05, 0.95], axis=0)
            truth = np.array([TRUTH[name][p] for p in law.params])
            hits += (lo <= truth) & (truth <= hi)
        out[name] = {
            "coverage_90": dict(zip(law.params, (hits / draws).round(3).tolist())),
            "draws": draws,
            "bootstrap": boots,
            "noise_log_sd": noise,
            "seconds": time.perf_counter() - t0,
        }
    return out


def coverage_runs_section(draws: int, boots: int, noise: float, laws: list[str]) -> dict:
    sys.path.insert(0, str(REPO / "tests" / "laws"))
    from laws_simulate import RUN_COUNTS, interval_coverage

    out = {}
    for name in laws:
        law = get_law(name)
        out[name] = {}
        for n in RUN_COUNTS:
            if name in ("chinchilla", "saturating", "power", "power_offset", "m4") and n < len(law.params) + 1:
                out[name][str(n)] = {"refused": f"{n} runs for {len(law.params)} parameters"}
                continue
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got = interval_coverage(name, n, draws, boots, noise, seed=5)
            got["seconds"] = time.perf_counter() - t0
            out[name][str(n)] = got
            print(
                f"coverage {name} {n:>2} runs: mean {got['mean']:.2f} min {got['min']:.2f} {got['methods']} "
                f"({got['seconds']:.0f} s)",
                flush=True,
            )
    return {"nominal": 0.9, "draws": draws, "bootstrap": boots, "noise_log_sd": noise, "laws": out}


def _stamp() -> dict:
    """When and from which commit a section was measured (a --merge run updates only some sections)."""

    def git(*cmd: str) -> str:
        return subprocess.run(["git", *cmd], cwd=REPO, capture_output=True, text=True).stdout.strip()

    dirty = git("status", "--porcelain", "--", "scaling/laws", "benchmarks/bench_fit.py", "tests/laws")
    return {
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": git("rev-parse", "--short", "HEAD") + ("+uncommitted" if dirty else ""),
        "load_average": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--plain-starts", type=int, default=4500, help="starts of the plain grid (of 4,500)")
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--coverage-draws", type=int, default=50)
    p.add_argument("--coverage-laws", default=",".join(LAWS), help="comma-separated laws for the coverage run")
    p.add_argument("--skip-plain", action="store_true", help="also leaves ours/speedup out: they go together")
    p.add_argument("--skip-bootstrap", action="store_true")
    p.add_argument("--skip-curves", action="store_true")
    p.add_argument("--skip-coverage", action="store_true")
    p.add_argument("--skip-coverage-runs", action="store_true")
    p.add_argument("--coverage-runs-draws", type=int, default=30, help="seeded draws per law x run count")
    p.add_argument("--coverage-runs-bootstrap", type=int, default=25, help="bootstrap refits per draw")
    p.add_argument(
        "--merge", action="store_true", help="update only the sections measured now in an existing --out JSON"
    )
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "fit_bench_cpu.json")
    args = p.parse_args(argv)
    if not (args.data / "chinchilla_fig4_points.csv").is_file():
        print(f"no reference data in {args.data} (see shared/data/README.md); pass --data", file=sys.stderr)
        return 2

    report = json.loads(args.out.read_text()) if args.merge and args.out.is_file() else {}
    measured = report.setdefault("measured", {})
    for key in ("ours", "plain", "speedup", "objective_rel_diff", "bootstrap", "curves_first_half_predicts_end"):
        if key in report:
            measured.setdefault(key, "unstamped: an earlier full run of this script")
    for c in report.get("coverage", {}).values():
        c.setdefault("measured", "unstamped: an earlier full run of this script")
    report.setdefault("machine", {}).update(
        {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
        }
    )
    report["versions"] = {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__}
    N, D, L = chinchilla_points(args.data)
    fitted, result, data = ours(N, D, L)
    print(
        f"ours:  {fitted['seconds']:.2f} s, objective {fitted['objective']:.8e}, "
        f"{ {k: round(v, 4) for k, v in fitted['params'].items()} }",
        flush=True,
    )
    if not args.skip_plain:
        plain = plain_procedure(N, D, L, args.plain_starts)
        report["ours"], report["plain"] = fitted, plain
        report["speedup"] = plain["seconds"] / fitted["seconds"]
        report["objective_rel_diff"] = (fitted["objective"] - plain["objective"]) / plain["objective"]
        for key in ("ours", "plain", "speedup", "objective_rel_diff"):
            measured[key] = _stamp()
        print(
            f"plain: {plain['seconds']:.1f} s for {plain['starts']} of {plain['of']} starts, objective "
            f"{plain['objective']:.8e}; ours is {report['speedup']:.0f}x faster, objective "
            f"(ours - plain) / plain = {report['objective_rel_diff']:.2e}",
            flush=True,
        )
    if not args.skip_bootstrap:
        report["bootstrap"] = b = bootstrap_section(result, data, args.bootstrap)
        measured["bootstrap"] = _stamp()
        print(
            f"bootstrap: {b['n']} refits in {b['seconds']:.1f} s ({b['ms_per_refit']:.1f} ms each), "
            f"{b['failed']} failed, {b['not_converged']} not converged",
            flush=True,
        )
    if not args.skip_curves:
        report["curves_first_half_predicts_end"] = curves_section(args.data)
        measured["curves_first_half_predicts_end"] = _stamp()
        for name, c in report["curves_first_half_predicts_end"].items():
            print(
                f"curves {name}: {c['runs']} runs, median |rel err| {c['median_abs_rel_error']:.2%}, "
                f"mean rel err {c['mean_rel_error']:+.2%}, max {c['max_abs_rel_error']:.2%}",
                flush=True,
            )
    if not args.skip_coverage:
        laws = [n for n in args.coverage_laws.split(",") if n]
        coverage = coverage_section(args.coverage_draws, 100, 0.01, laws)
        report.setdefault("coverage", {}).update(coverage)
        for name, c in coverage.items():
            c["measured"] = _stamp()
            print(f"coverage {name}: {c['coverage_90']} ({c['seconds']:.0f} s)", flush=True)
    if not args.skip_coverage_runs:
        laws = [n for n in args.coverage_laws.split(",") if n]
        report["coverage_few_runs"] = coverage_runs_section(
            args.coverage_runs_draws, args.coverage_runs_bootstrap, 0.02, laws
        )
        measured["coverage_few_runs"] = _stamp()
    if args.skip_plain:  # fit speed is measured every run: the timing section the regressions are read from
        report["ours_timing"] = fitted
        measured["ours_timing"] = _stamp()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
