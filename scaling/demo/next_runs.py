"""The report's last section: which two runs to train next, from `scaling advise` on the sweep's results.

The decision is the MAE recipe's (mae_wsp) val top-1 at 4x the sweep's largest total compute: what a user of
this study would want to know before spending more. The candidates are the sweep's models at its budgets plus
2x and 4x its largest (`scaling advise --grid` from the sweep's own spec); advise fits the power law to all
of the recipe's runs (the held-out ones included: they are measured now), ranks the candidates by how much
each is expected to narrow the decision's interval per FLOP, picks two, and writes a sweep spec for them.
Both commands run as the user would type them; their output is in logs/sweep_advise.log.
"""

from __future__ import annotations

import json
from pathlib import Path

from scaling.demo.stats import plural
from scaling.demo.sweep_report import METRIC, METRIC_NAME, read_csv

RECIPE = "mae_wsp"
MULTIPLE = 4  # the decision: the metric at this multiple of the sweep's largest total compute
PICKS = 2
ADVICE = "sweep/ADVICE.json"
CANDIDATES = "sweep/candidates.csv"
NEXT_SPEC = "specs/next.yaml"
FAILED = "sweep/ADVICE.failed"  # advise's one-line error, when it could not advise


def decision_compute(results: Path) -> float:
    return MULTIPLE * max(float(r["total_flops"]) for r in read_csv(results) if r["metric"] == METRIC)


def advise_argvs(out: Path, sweep_samples: list[int]) -> tuple[list[str], list[str]]:
    """(argv of `scaling advise --grid`, argv of `scaling advise`), both relative to nothing: absolute paths."""
    results, spec = out / "sweep" / "results.csv", out / "specs" / "sweep.yaml"
    top = max(sweep_samples)
    samples = ",".join(str(n) for n in sorted({*sweep_samples, 2 * top, 4 * top}))
    grid = ["--grid", "--spec", str(spec), "--samples", samples, "--out", str(out / CANDIDATES)]
    advise = [str(results), "--law", "power", "--x", "total_flops", "--y", METRIC, "--y-kind", "accuracy",
              "--where", f"recipe={RECIPE}", "--decision", f"predict@total_flops={decision_compute(results):.4g}",
              "--candidates", str(out / CANDIDATES), "--k", str(PICKS), "--out", str(out / ADVICE),
              "--sweep-spec", str(out / NEXT_SPEC), "--spec", str(spec), "--stage1-from", str(out / "sweep")]
    return grid, advise


def _acc(err_lo: float, err_hi: float) -> str:
    """An error-rate interval as an accuracy interval in %, cut at 0 and 100%."""
    return f"[{100 * max(0.0, 1 - err_hi):.1f}, {100 * min(1.0, 1 - err_lo):.1f}]"


def next_lines(out: Path) -> list[str]:
    """The report's section; an explanation instead where advise did not run or could not advise."""
    if (out / FAILED).is_file():
        return [f"`scaling advise` could not advise on this sweep: {(out / FAILED).read_text().strip()} "
                "(its output: `logs/sweep_advise.log`)."]
    if not (out / ADVICE).is_file():
        return ["(`scaling advise` has not run yet)"]
    a = json.loads((out / ADVICE).read_text())
    d = a["decision"]
    level = f"{d['level']:.0%}"
    point = float(d["spec"].split("=")[-1])
    lines = [f"The decision: {METRIC_NAME} of the MAE recipe ({RECIPE}) at {MULTIPLE}x the sweep's largest total "
             f"compute, {point:.3g} FLOPs. The power law fitted to all {RECIPE} runs of the sweep predicts "
             f"{100 * (1 - d['value']):.1f}% with a {level} interval of {_acc(d['lo'], d['hi'])}% "
             f"({a['draws_used']} of {a['draws']} bootstrap draws). `scaling advise` ranked "
             f"{plural(len(a['ranked']), 'candidate run')} (the sweep's models at its budgets and at 2x and 4x its "
             "largest; runs already trained left out) by how much each is expected to narrow that interval per "
             f"FLOP, and picked {PICKS}:",
             "",
             f"| # | run | model | stage-2 samples | FLOPs | expected {level} interval after it (%) | worth its cost |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for i, c in enumerate(a["chosen"], 1):
        worth = {True: "yes", False: "no", None: "-"}[c.get("worth_cost")]
        lines.append(f"| {i} | {c['run']} | {c['model']} | {int(float(c['samples'])):,} | {float(c['flops']):.3g} | "
                     f"{_acc(c['lo'], c['hi'])} | {worth} |")
    stop = a["stop"]
    how = ("(a sweep folder of their own, whose from-MAE runs start from the sweep's stage-1 runs: the spec's "
           "`stage1_from`), then collect them with the sweep's runs and fit again:")
    lines += ["", f"**Verdict** ({stop['verdict']}): {stop['reason'].rstrip('.')}.", "",
              f"To train them anyway {how}" if stop["verdict"] == "stop" else f"To train them {how}", "", "```bash"]
    for spec in a.get("sweep_specs", []):
        folder = out / Path(spec).stem
        lines.append(f"scaling sweep {spec} --out {folder} && scaling sweep run {folder} --jobs 2")
    folders = " ".join(str(out / Path(s).stem) for s in a.get("sweep_specs", []))
    lines += [f"scaling results collect {out / 'sweep'} {folders} --out {out / 'next_results.csv'}", "```", "",
              f"Advice: `{ADVICE}` (every candidate's score in `ranked`); the commands that made it: "
              "`logs/sweep_advise.log`."]
    return lines
