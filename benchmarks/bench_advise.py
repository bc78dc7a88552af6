"""Replay `scaling advise` on published pools of finished runs: does choosing runs by expected variance
reduction per FLOP reach a good N_opt with less compute than random, cheapest-first or a fixed grid?

    python benchmarks/bench_advise.py                     # 3 pools x 4 strategies x 10 repeats (~5 min)
    python benchmarks/bench_advise.py --repeats 2 --steps 3 --pools chinchilla   # a quick look

Pools (../shared/data; every run is (N, D, loss), cost C = 6 N D):
- chinchilla: Hoffmann et al. 2022 fig. 4, the 240 runs Besiroglu et al. keep;
- openathena: the Open-Athena isoFLOP set's largest single experiment, outliers (their flags) dropped;
- misfitting: Li et al. 2025 final checkpoints, the lowest loss per (model, tokens) over learning rates.
Decision: N_opt at C* = the pool's largest run compute, law chinchilla; the reference is the fit to the
whole pool. Each repeat (paired seed) starts every strategy from the same START runs, drawn at random from
the cheapest quarter of the pool, then adds one run per step, until STEPS runs or a spend of SPEND (10%) of
the pool's compute: advise (k = 1, per FLOP, the package's Request; where its draws cannot rank the candidates
it picks a space-filling run itself, counted as a fallback), random, cheapest-first, and a fixed grid
(a model-free maximin design in standardised (log N, log D): each step the run farthest from those already
in). After every step the law is refitted and we record the compute spent and |log(N_opt / N_opt_full)|;
advise refits with a run-level bootstrap (BOOT draws) every step (it scores from them), the others at their
last step; there we record the 90% interval's log width and whether it covers the full-pool N_opt.
Results: benchmarks/results/advise_replay_cpu.json and advise_replay_cpu.png.

Development pools (`--pools synthetic_isoflop,synthetic_grid`, SYNTHETIC): a known Chinchilla surface with a
misspecification, where changes to advise are tried; the published pools are the evaluation, run as they are.

Also timed here (a benchmark, not a test): the scoring step of `scaling advise` for 1,000 candidates x 1,000
bootstrap draws, and the whole command with --fit reusing a FIT.json of 1,000 draws.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import csv  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from bench_extrapolation import measured  # noqa: E402  (beside this script)

from scaling.advise.advice import Request, advise  # noqa: E402
from scaling.advise.cli import main as advise_main  # noqa: E402
from scaling.advise.score import greedy  # noqa: E402
from scaling.laws import reference_data as ref  # noqa: E402
from scaling.laws.cli import main as laws_main  # noqa: E402
from scaling.laws.decisions import allocate, evaluate  # noqa: E402
from scaling.laws.fit import fit  # noqa: E402
from scaling.laws.laws import get_law  # noqa: E402
from scaling.laws.pipeline import FitOptions, fit_table  # noqa: E402
from scaling.laws.problem import FitData  # noqa: E402
from scaling.laws.results import select  # noqa: E402
from scaling.laws.table import Table, write_table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = next(
    (p / "shared" / "data" for p in REPO.parents if (p / "shared" / "data").is_dir()), REPO.parent / "shared" / "data"
)
LAW = get_law("chinchilla")
K = 6.0
START = 8
SPEND = 0.1  # each strategy stops at this share of the pool's compute (Li et al. 2026: ~10% matches all)
STRATEGIES = ("advise", "random", "cheapest", "grid")


def pools(data: Path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    out = {}
    rows = ref.chinchilla_rows(data / "chinchilla_fig4_points.csv")
    out["chinchilla"] = tuple(np.array([r[k] for r in rows], float) for k in ("params", "samples", "value"))
    with (data / "isoflops_openathena_multi_source.csv").open() as fh:
        oa = [r for r in csv.DictReader(fh) if r["outlier"] != "True"]
    counts: dict[str, int] = {}
    for r in oa:
        counts[r["experiment"]] = counts.get(r["experiment"], 0) + 1
    exp = max(counts, key=counts.get)
    sel = [r for r in oa if r["experiment"] == exp]
    out["openathena"] = tuple(np.array([float(r[k]) for r in sel]) for k in ("params", "tokens", "loss"))
    with (data / "misfitting_li2025_scaling_results_last_ckpt_only.csv").open() as fh:
        best: dict[tuple, dict] = {}
        for r in csv.DictReader(fh):
            key = (r["N"], r["D"])
            if key not in best or float(r["loss"]) < float(best[key]["loss"]):
                best[key] = r
    out["misfitting"] = tuple(np.array([float(r[k]) for r in best.values()]) for k in ("N", "D", "loss"))
    out.update({name: synthetic_pool(*spec) for name, spec in SYNTHETIC.items()})
    return out


TRUTH = {"alpha": 0.34, "beta": 0.28, "E": 1.69, "A": 406.4, "B": 410.7}  # Hoffmann et al. 2022's fit


def synthetic_pool(design: str, misspecified: float, noise: float, seed: int = 0):
    """A pool with a known surface, for developing advise (never the published pools). `design` "isoflop":
    9 compute levels 1e17..1e21 FLOPs, 9 model sizes each from N_opt / 8 to 8 N_opt of the true surface;
    "grid": 9 x 9 model sizes 2e7..2e9 times token counts 1e9..1e11 (the cheapest runs then all have small
    N and small D, as in a models-x-tokens sweep). Log-normal noise `noise`. The true surface is
    Chinchilla's (TRUTH) with its N exponent drifting with scale, alpha(N) = alpha + misspecified *
    log10(N / 1e8): a bend the law cannot follow, so fits to small runs extrapolate N_opt wrongly."""
    rng = np.random.default_rng(1000 + seed)
    if design == "isoflop":
        n_list, d_list = [], []
        for c in np.geomspace(1e17, 1e21, 9):
            n_opt = allocate(TRUTH, c, K)["N_opt"]
            for n in n_opt * np.geomspace(1 / 8, 8, 9):
                n_list.append(n)
                d_list.append(c / (K * n))
        n, d = np.array(n_list), np.array(d_list)
    else:
        n, d = (v.ravel() for v in np.meshgrid(np.geomspace(2e7, 2e9, 9), np.geomspace(1e9, 1e11, 9)))
    a = TRUTH["alpha"] + misspecified * np.log10(n / 1e8)
    y = TRUTH["E"] + TRUTH["A"] * n**-a + TRUTH["B"] * d ** -TRUTH["beta"]
    return n, d, y * np.exp(noise * rng.standard_normal(len(n)))


SYNTHETIC = {  # name: (design, misspecification, noise)
    "synthetic_isoflop": ("isoflop", 0.03, 0.01),
    "synthetic_grid": ("grid", 0.03, 0.02),
}


def _table(n: np.ndarray, d: np.ndarray, y: np.ndarray, names: np.ndarray) -> Table:
    cols = {"run": [str(s) for s in names], "params": [repr(float(v)) for v in n],
            "samples": [repr(float(v)) for v in d], "flops": [repr(float(K * a * b)) for a, b in zip(n, d)],
            "metric": ["loss"] * len(n), "value": [repr(float(v)) for v in y]}
    return Table(cols, np.arange(2, len(n) + 2), "pool")


def _n_opt(theta: np.ndarray, c: float) -> float:
    return allocate(dict(zip(LAW.params, theta)), c, K)["N_opt"]


def fit_subset(pool, idx: list[int], c_star: float, seed: int, boot: int):
    n, d, y = pool
    names = np.array([f"run{i}" for i in idx])
    sel = select(_table(n[idx], d[idx], y[idx], names), LAW, ["params", "samples"], "loss")
    out = fit_table(LAW, sel, FitOptions(bootstrap=boot, seed=seed))
    iv = evaluate(out.fit, out.boot, {"n": lambda t: _n_opt(t, c_star)}, 0.9)["n"]
    return out, sel, iv


def _record(step: int, taken: list[int], spent: float, iv: dict, ref_n: float, with_interval: bool) -> dict:
    lo, hi, v = iv["lo"], iv["hi"], iv["value"]
    with np.errstate(all="ignore"):
        error = abs(float(np.log(v / ref_n))) if v > 0 else float("inf")
    row = {"step": step, "runs": len(taken), "spent": spent, "error": error}
    if with_interval:
        row.update({"log_width": float(np.log(hi / lo)) if lo > 0 and hi > lo else None,
                    "covers": bool(lo <= ref_n <= hi)})
    return row


def _grid_next(pool, taken: list[int], left: list[int]) -> int:
    n, d, _ = pool
    z = np.column_stack([np.log(n), np.log(d)])
    z = (z - z.mean(axis=0)) / z.std(axis=0)
    dist = np.min(np.linalg.norm(z[left][:, None, :] - z[taken][None, :, :], axis=2), axis=1)
    return left[int(np.argmax(dist))]


def trajectory(pool, strategy: str, start: list[int], c_star: float, ref_n: float, seed: int, steps: int,
               boot: int, options: dict | None = None) -> list[dict]:
    n, d, _ = pool
    cost = K * n * d
    cap = cost.sum() * SPEND
    rng = np.random.default_rng(seed)
    taken, spent, out = list(start), 0.0, []
    for step in range(steps + 1):
        left = [i for i in range(len(n)) if i not in taken and spent + cost[i] <= cap]
        last = step == steps or not left
        # intervals at every step for advise (it scores from the draws), at the last step for the others
        draws = boot if strategy == "advise" or last else 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitted, sel, iv = fit_subset(pool, taken, c_star, seed, draws)
        out.append(_record(step, taken, spent, iv, ref_n, draws > 0))
        if last:
            break
        if strategy == "random":
            pick = int(rng.choice(left))
        elif strategy == "cheapest":
            pick = min(left, key=lambda i: cost[i])
        elif strategy == "grid":
            pick = _grid_next(pool, taken, left)
        else:
            cands = _table(n[left], d[left], np.ones(len(left)), np.array([str(i) for i in left]))
            a = advise(fitted.fit, fitted.boot.samples, fitted.boot.factor(), sel, cands,
                       Request(f"n_opt@{c_star:g}", 1, flops_per_param_sample=K, **(options or {})))
            pick = int(a["chosen"][0]["run"])
            if a["chosen"][0]["basis"] == "space-filling":  # the draws could not rank the candidates: counted
                out[-1]["fallback_space_filling"] = True
        taken.append(pick)
        spent += cost[pick]
    return out


def _curve(traj: list[dict], grid: np.ndarray) -> np.ndarray:
    """Error at each compute level of `grid`: that of the last step whose spend is <= the level."""
    spent = np.array([t["spent"] for t in traj])
    err = np.array([t["error"] for t in traj])
    idx = np.searchsorted(spent, grid, side="right") - 1
    return np.where(idx >= 0, err[np.maximum(idx, 0)], np.nan)


def summarise(runs: dict[str, list[list[dict]]], total: float) -> dict:
    grid = np.concatenate([[0.0], np.geomspace(total * 1e-6, total * SPEND, 60)])
    med = {s: np.nanmedian(np.array([_curve(t, grid) for t in runs[s]]), axis=0) for s in runs}
    out: dict = {"compute_grid": grid.tolist(), "median_error": {s: m.tolist() for s, m in med.items()}}
    finals = {s: float(np.median([t[-1]["spent"] for t in runs[s]])) for s in runs}
    out["median_final_spend"] = finals
    rnd_final = float(np.median([t[-1]["error"] for t in runs["random"]]))
    reach = np.flatnonzero(med["advise"] <= rnd_final)
    need = float(grid[reach[0]]) if len(reach) else None
    out["random_final_error"] = rnd_final
    out["advise_compute_to_reach_random_final"] = need
    out["advise_over_random_compute"] = None if need is None else need / finals["random"]
    paired = 0
    for a, r in zip(runs["advise"], runs["random"]):
        target, budget = r[-1]["error"], r[-1]["spent"]
        paired += any(t["error"] <= target and t["spent"] <= budget / 2 for t in a)
    out["paired_advise_reaches_random_final_with_half_compute"] = f"{paired}/{len(runs['random'])}"
    for s in runs:
        out.setdefault("coverage_90_final", {})[s] = float(np.mean([traj[-1]["covers"] for traj in runs[s]]))
        out.setdefault("final_error_median", {})[s] = float(np.median([traj[-1]["error"] for traj in runs[s]]))
        out.setdefault("final_runs_median", {})[s] = float(np.median([traj[-1]["runs"] for traj in runs[s]]))
        widths = [traj[-1]["log_width"] for traj in runs[s] if traj[-1]["log_width"] is not None]
        out.setdefault("final_log_width_median", {})[s] = float(np.median(widths)) if widths else None
    out["target_half_compute_met"] = bool(need is not None and need <= finals["random"] / 2)
    every = [t for traj in runs["advise"] for t in traj if "covers" in t]
    out["coverage_90_advise_every_step"] = float(np.mean([t["covers"] for t in every]))
    out["advise_fallbacks"] = sum(1 for traj in runs["advise"] for t in traj if t.get("fallback_space_filling"))
    return out


def speed(draws: int = 1000, cands: int = 1000) -> dict:
    """Seconds for the scoring of `scaling advise` (decision and predictions for every draw and candidate,
    greedy K = 5) on synthetic Chinchilla draws, and for the whole command reusing a FIT.json."""
    rng = np.random.default_rng(0)
    truth = np.array([0.34, 0.28, 1.7, 400.0, 1500.0])
    samples = truth * np.exp(0.05 * rng.standard_normal((draws, 5)))
    n, d = 10 ** rng.uniform(7, 10, 40), 10 ** rng.uniform(9, 12, 40)
    y = LAW.predict({"N": n, "D": d}, truth) * np.exp(0.01 * rng.standard_normal(40))
    sel = select(_table(n, d, y, np.array([f"r{i}" for i in range(40)])), LAW, ["params", "samples"], "loss")
    full = fit(LAW, FitData(sel.data.X, sel.data.y, sel.data.run), warn=False)
    cn, cd = 10 ** rng.uniform(7, 10, cands), 10 ** rng.uniform(9, 12, cands)
    table = _table(cn, cd, np.ones(cands), np.array([f"c{i}" for i in range(cands)]))
    t0 = time.perf_counter()
    advise(full, samples, 1.0, sel, table, Request("n_opt@1e22", 5))
    whole = time.perf_counter() - t0
    F = rng.standard_normal((draws, cands))
    t0 = time.perf_counter()
    greedy(F[:, 0] + F[:, 1], F, np.full(cands, 0.01), np.ones(cands), 5)
    out = {"draws": draws, "candidates": cands, "k": 5, "scoring_seconds": whole,
           "greedy_only_seconds": time.perf_counter() - t0}
    # the command as a user runs it: `scaling fit --bootstrap 1000` once, then `scaling advise --fit`
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_table([dict(zip(sel.table.columns, row)) for row in zip(*sel.table.columns.values())],
                    tmp / "results.csv")
        write_table([dict(zip(table.columns, row)) for row in zip(*table.columns.values())], tmp / "cands.csv")
        t0 = time.perf_counter()
        laws_main(["fit", str(tmp / "results.csv"), "--law", "chinchilla", "--bootstrap", str(draws),
                   "--out", str(tmp / "fit.json")])
        out["fit_with_draws_seconds"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        code = advise_main([str(tmp / "results.csv"), "--law", "chinchilla", "--fit", str(tmp / "fit.json"),
                            "--decision", "n_opt@1e22", "--candidates", str(tmp / "cands.csv"), "--k", "5",
                            "--out", str(tmp / "advice.json")])
        out["advise_command_with_fit_seconds"] = time.perf_counter() - t0
        assert code == 0
    return out


def figure(summaries: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"advise": "#0072B2", "random": "#D55E00", "cheapest": "#009E73", "grid": "#CC79A7"}
    fig, axes = plt.subplots(1, len(summaries), figsize=(5 * len(summaries), 4), squeeze=False)
    for ax, (name, s) in zip(axes[0], summaries.items()):
        grid = np.array(s["compute_grid"])
        for strat, err in s["median_error"].items():
            ax.step(grid[1:], np.array(err)[1:], where="post", color=colors[strat], label=strat, lw=1.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("compute spent on added runs (FLOPs)")
        ax.set_ylabel("|log(N_opt / N_opt of the full pool)|, median")
        ax.set_title(name)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=130)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--pools", default="chinchilla,openathena,misfitting")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--steps", type=int, default=12, help="at most this many runs added per strategy")
    p.add_argument("--bootstrap", type=int, default=40)
    p.add_argument("--strategies", default=",".join(STRATEGIES), help="a subset, e.g. advise,random")
    p.add_argument("--kappa", type=float, default=None, help="advise's cost exponent (default: the package's)")
    p.add_argument("--skip-speed", action="store_true", help="leave out the timing of the command")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "advise_replay_cpu.json")
    args = p.parse_args(argv)
    all_pools = pools(args.data)
    report: dict = {"settings": {"start": START, "steps": args.steps, "bootstrap": args.bootstrap,
                                 "repeats": args.repeats, "spend_cap_share_of_pool": SPEND},
                    "pools": {}}
    if not args.skip_speed:
        with contextlib.redirect_stdout(io.StringIO()):  # the two commands' own tables
            report["speed"] = speed()
        print("speed:", report["speed"], flush=True)
    summaries = {}
    t_all = time.perf_counter()
    for name in args.pools.split(","):
        pool = all_pools[name]
        n, d, _ = pool
        cost = K * n * d
        c_star = float(cost.max())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            full = fit(LAW, FitData({"N": n, "D": d}, pool[2], np.array([f"r{i}" for i in range(len(n))])), warn=False)
        ref_n = _n_opt(full.values, c_star)
        cheap = np.argsort(cost)[: max(START * 2, len(n) // 4)]
        runs: dict[str, list] = {s: [] for s in args.strategies.split(",")}
        t0 = time.perf_counter()
        for rep in range(args.repeats):
            start = [int(i) for i in np.random.default_rng(rep).choice(cheap, START, replace=False)]
            for s in runs:
                runs[s].append(trajectory(pool, s, start, c_star, ref_n, rep, args.steps, args.bootstrap,
                                          {} if args.kappa is None else {"kappa": args.kappa}))
            print(f"\r{name}: repeat {rep + 1}/{args.repeats} ({time.perf_counter() - t0:.0f} s)", end="", flush=True)
        print()
        summaries[name] = summarise(runs, float(cost.sum()))
        report["pools"][name] = {"runs": len(n), "c_star": c_star, "n_opt_full_pool": ref_n,
                                 "full_pool_params": full.params(), "summary": summaries[name], "trajectories": runs}
        s = summaries[name]
        print(f"  final error median {s['final_error_median']}; final coverage {s['coverage_90_final']}; advise needs "
              f"{s['advise_over_random_compute']} of random's compute; paired "
              f"{s['paired_advise_reaches_random_final_with_half_compute']}", flush=True)

    report["measured"] = measured(t_all)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    figure(summaries, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
