"""`scaling advise`: which run(s) to train next to narrow a decision most per FLOP; ADVICE.json + a table.

main(argv) parses, and the work is in advice.py (scoring: score.py, decisions: decision.py, candidate grids
and sweep specs: candidates.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as `scaling fit`: thousands of tiny BLAS calls

EXAMPLES = """examples:
  # candidates: the runs a sweep over these models x sample budgets would train (params, FLOPs included)
  scaling advise --grid --spec jobs/sweeps/paper_grid.yaml --recipes wsp --out candidates.csv
  # the 2 runs that narrow N_opt at 1e22 FLOPs most per FLOP, and a spec that trains them
  scaling advise results.csv --law chinchilla --decision n_opt@1e22 --candidates candidates.csv --k 2 \\
      --out advice.json --sweep-spec next.yaml --spec jobs/sweeps/paper_grid.yaml
  # the metric at a point; compute multiplier between two recipes at 80% accuracy
  scaling advise results.csv --law saturating --x total_flops --y linear_top1 --where recipe=mae_wsp \\
      --decision predict@total_flops=1e22 --candidates candidates.csv --k 1 --out advice.json
  scaling advise results.csv --law power --x total_flops --y linear_top1 --group-by recipe \\
      --decision multiplier@0.80 --compare wsp,mae_wsp --candidates candidates.csv --k 2 --out advice.json"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scaling advise",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXAMPLES,
        description="Rank candidate runs by how much they are expected to narrow a decision (N_opt, a "
        "prediction, a compute multiplier) per FLOP, from the fit's run-level bootstrap draws; pick K greedily; "
        "say whether any is worth its cost. Writes ADVICE.json and prints a table. With --grid: write a "
        "candidates CSV from the model registry x sample budgets instead.",
    )
    p.add_argument("results", nargs="?", help="results CSV (`scaling results collect`)")
    p.add_argument("--law", help="the law to fit (as `scaling fit --law`; auto allowed)")
    p.add_argument("--x", help="input column(s), as `scaling fit --x` (default: total_flops; params,samples for "
                   "chinchilla)")
    p.add_argument("--y", help="metric (default: loss)")
    p.add_argument("--y-kind", choices=["accuracy", "error", "loss"])
    p.add_argument("--where", action="append", default=[], help="row filter COLUMN=VALUE[,VALUE]; repeatable")
    p.add_argument("--group-by", help="columns naming the groups (recipe for multiplier@)")
    p.add_argument("--share", default="", help="parameters shared across groups, e.g. b")
    p.add_argument("--decision", help="n_opt@C | predict@COL=V[,COL=V] | multiplier@Y")
    p.add_argument("--compare", help="multiplier: BASE,NEW groups (default: the two groups in sorted order)")
    p.add_argument("--candidates", help="CSV of possible runs: the --x columns, flops (cost), group columns")
    p.add_argument("--k", type=int, default=1, help="runs to pick (default 1)")
    p.add_argument("--budget", type=float, help="cap on the total cost (FLOPs) of the picked runs")
    p.add_argument("--cost-column", default="flops", help="candidate column with each run's cost (default flops)")
    p.add_argument("--cost-exponent", type=float, default=1.0, help="rank by reduction / cost^kappa (default 1)")
    p.add_argument("--target", choices=["decision", "region"], default="decision",
                   help="what the picks narrow: the decision itself (default), or for n_opt@C the loss predicted "
                   "on C's iso-compute line from N_opt / 4 to 4 N_opt (V-optimal on a target region, Li et al. "
                   "2026); see scaling/advise/score.py")
    p.add_argument("--stake", type=float, help="FLOPs that acting on the decision commits, for the stop verdict "
                   "(default: C for n_opt, the point's compute for predict, the new recipe's at Y for multiplier; "
                   "derivation in scaling/advise/score.py)")
    p.add_argument("--flops-per-param-sample", type=float, help="k in C = k N D (default: from the table)")
    p.add_argument("--fit", help="reuse this FIT.json's parameters and bootstrap draws instead of refitting")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap refits when fitting here (default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--level", type=float, default=0.9)
    p.add_argument("--sweep-spec", help="also write the chosen runs as a sweep spec (YAML) `scaling sweep` runs")
    p.add_argument("--stage1-from", help="--sweep-spec: the sweep folder whose finished stage-1 runs the chosen "
                   "mae_wsp runs start from (spec key stage1_from), instead of training stage 1 again")
    p.add_argument("--grid", action="store_true", help="write a candidates CSV (--out) from a grid instead")
    p.add_argument("--spec", help="sweep spec: the grid's base (--grid) and the written spec's settings")
    p.add_argument("--models", help="--grid: models, comma-separated (default: the spec's)")
    p.add_argument("--samples", help="--grid: sample budgets, comma-separated (default: the spec's)")
    p.add_argument("--recipes", help="--grid: recipes, comma-separated (default: the spec's, or wsp)")
    p.add_argument("--out", required=True, help="ADVICE.json (or CANDIDATES.csv with --grid)")
    return p


def _list(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _grid(args: argparse.Namespace) -> int:
    from scaling.advise.candidates import GRID_COLUMNS, grid
    from scaling.laws.table import DataError, write_table

    samples = None
    if args.samples:
        try:
            samples = [int(float(s)) for s in _list(args.samples)]
        except ValueError:
            raise DataError(f"--samples {args.samples!r}: give numbers, e.g. 1e9,2e9") from None
    if not (args.spec or (args.models and samples)):
        raise DataError("--grid needs --spec SPEC.yaml, or --models and --samples")
    rows = grid(args.spec, _list(args.models), samples, _list(args.recipes))
    n = write_table(rows, args.out, first=GRID_COLUMNS)
    print(f"wrote {n} candidate runs to {args.out}")
    return 0


def _advise(args: argparse.Namespace) -> int:
    from scaling.advise.advice import Request, advise
    from scaling.laws.cli import _default_x
    from scaling.laws.laws import get_law
    from scaling.laws.pipeline import FitOptions, fit_table
    from scaling.laws.report import load_fit, write_fit
    from scaling.laws.results import apply_where, select
    from scaling.laws.table import DataError, read_table, sha256_of

    missing = [f"--{n}" for n in ("law", "decision", "candidates") if not getattr(args, n)]
    if not args.results or missing:
        raise DataError(f"give RESULTS.csv and {', '.join(missing) or 'the options'}; see `scaling advise --help`")
    table, cands = read_table(args.results), read_table(args.candidates)
    if len(table) == 0:
        raise DataError(f"{args.results}: no runs (header only); collect results first")
    if not 0 < args.level < 1:
        raise DataError(f"--level {args.level}: give a coverage between 0 and 1, e.g. 0.9")
    group_by = _list(args.group_by) or (["recipe"] if args.decision.startswith("multiplier@") else None)
    law = get_law(args.law) if args.law != "auto" else None
    inputs = law.inputs if law else ("x",)
    x = (args.x or _default_x(inputs, table)).split(",")
    sel = select(table, law or get_law("power"), x, args.y or "loss", args.where, group_by, args.y_kind)
    if args.fit:
        fit, draws, report = load_fit(args.fit)
        if report.get("data_sha256") not in (None, sha256_of([args.results])):
            raise DataError(f"--fit {args.fit} was fitted to other data than {args.results}; refit, or drop --fit")
        if law is not None and fit.law.name != law.name:
            raise DataError(f"--fit {args.fit} holds a {fit.law.name} fit, not {law.name}")
        if draws is None:
            raise DataError(f"--fit {args.fit} has no bootstrap draws (fitted with --bootstrap 0); refit with draws")
        widen = max(((report.get("bootstrap") or {}).get("interval_widening") or {"": 1.0}).values())
        source = {"fit": args.fit}
    else:
        if args.bootstrap < 20:
            raise DataError(f"--bootstrap {args.bootstrap}: advise needs at least 20 draws (200 is the default)")
        share = tuple(s for s in args.share.split(",") if s)
        outcome = fit_table(law or "auto", sel, FitOptions(bootstrap=args.bootstrap, seed=args.seed,
                                                          level=args.level, share=share))
        fit, draws, widen = outcome.fit, outcome.boot.samples, outcome.boot.factor()
        source = {"fit": "fitted here", "bootstrap": args.bootstrap, "seed": args.seed}
        if "auto" in outcome.report:
            source["auto"] = outcome.report["auto"]
    compare = tuple(_list(args.compare)) if args.compare else None
    if compare is not None and len(compare) != 2:
        raise DataError(f"--compare {args.compare!r}: give BASE,NEW, e.g. --compare wsp,mae_wsp")
    req = Request(args.decision, args.k, args.budget, args.cost_column, args.cost_exponent, args.stake, compare,
                  group_by, args.flops_per_param_sample, args.level, args.target,
                  {"inputs": {"results": args.results, "candidates": args.candidates}, "source": source})
    # The --where filters bind the candidates too (a wsp run says nothing about a fit of mae_wsp runs), on the
    # columns they carry (results-only columns such as metric are not there); a candidate already trained is
    # looked up in the whole results table, not only in the rows the filters kept.
    kept = [w for w in args.where if "=" in w and cands.has(w.partition("=")[0].strip())]
    cands = apply_where(cands, kept) if kept and len(cands) else cands
    advice = advise(fit, draws, widen, sel, cands, req, trained=table)
    specs = []
    if args.sweep_spec:
        from scaling.advise.candidates import write_sweep_specs

        specs = write_sweep_specs(advice["chosen"], args.sweep_spec, args.spec, args.stage1_from)
        advice["sweep_specs"] = [str(s) for s in specs]
    write_fit(advice, args.out)
    print(format_advice(advice))
    print(f"\nwrote {args.out}" + "".join(f"\nwrote {s} (run: scaling sweep {s} --out DIR)" for s in specs))
    return 0


def _fmt(v) -> str:
    return "-" if v is None or (isinstance(v, float) and v != v) else f"{v:.4g}" if isinstance(v, float) else str(v)


def format_advice(a: dict) -> str:
    d = a["decision"]
    pct = round(100 * d["level"])
    lines = [f"decision {d['spec']}: {d['name']} = {_fmt(d['value'])} [{_fmt(d['lo'])}, {_fmt(d['hi'])}] "
             f"({pct}%, law {a['law']}, {a['draws_used']} of {a['draws']} bootstrap draws)"]
    for name, iv in (d.get("also") or {}).items():
        lines.append(f"  {name} = {_fmt(iv['value'])} [{_fmt(iv['lo'])}, {_fmt(iv['hi'])}]")
    keys = [k for k in ("run", "model", "recipe", "params", "samples") if a["chosen"] and k in a["chosen"][0]]
    w = max([len(str(c.get("run", ""))) for c in a["chosen"]] + [3]) + 1  # whole run names: they are typed
    head = "".join(f"{k:>17}" if k != "run" else f"{k:<{w}}" for k in keys)
    lines += ["", f"{'#':>2} {head}{'flops':>11}{'score/FLOP':>12}{'expected lo':>13}{'expected hi':>13}"
              f"{'VOI FLOPs':>11}  worth it"]
    for i, c in enumerate(a["chosen"], 1):
        cells = "".join(f"{str(c[k]):<{w}}" if k == "run" else f"{_fmt(c[k]):>17}" for k in keys)
        worth = {True: "yes", False: "no", None: "-"}[c["worth_cost"]]
        lines.append(f"{i:>2} {cells}{_fmt(c['flops']):>11}{_fmt(c['score']):>12}{_fmt(c['lo']):>13}"
                     f"{_fmt(c['hi']):>13}{_fmt(c['value_of_information_flops']):>11}  {worth}")
    s = a["stop"]
    lines += ["", f"verdict: {s['verdict']}: {s['reason']}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from scaling.laws.table import DataError

    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            code = _grid(args) if args.grid else _advise(args)
        except (DataError, ValueError) as e:
            code = 2
            print(f"scaling advise: error: {e}", file=sys.stderr)
    for w in caught:
        print(f"scaling advise: warning: {w.message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())

