"""DIR/report.md from the demo's outputs alone (summary.json, metrics.jsonl, sweep.csv, results.csv,
FIT.json, demo.json): change a run's output and the report changes with it. Nothing here is hard-coded or
tuned: the verdicts follow from the signs of the intervals.

Convergence: the random-init run's final (trailing-mean) stage-2 loss is the target; per seed, the speed-up
is its stage-2 samples over the samples the MAE-initialised run needed to reach that loss.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from scaling.config import load_yaml
from scaling.demo.folder import read_stamp
from scaling.demo.next_runs import next_lines
from scaling.demo.stats import LEVEL, Estimate, estimate, plural, samples_to_reach, smoothed
from scaling.demo.sweep_report import held_out_lines, read_csv, sweep_lines
from scaling.engine.metrics import read_metrics
from scaling.models.registry import MODELS

METRICS = ("linear_top1", "knn_top1", "lowshot1_top1", "lowshot5_top1", "lowshot10_top1", "val_top1")
NAMES = {"linear_top1": "linear probe top-1", "knn_top1": "kNN top-1", "lowshot1_top1": "1-shot top-1",
         "lowshot5_top1": "5-shot top-1", "lowshot10_top1": "10-shot top-1",
         "val_top1": "stage-2 classifier top-1 (its own head)"}


def _interval(e: Estimate, scale: float = 1.0, digits: int = 1) -> str:
    if not e.has_interval():
        return f"{e.mean * scale:.{digits}f} (1 seed: no interval)"
    return f"{e.mean * scale:.{digits}f} [{e.lo * scale:.{digits}f}, {e.hi * scale:.{digits}f}]"


def _verdict(e: Estimate, up: str, down: str, none: str) -> str:
    """From the interval's sign: up when it lies above 0, down when below, none when it holds 0."""
    if not e.has_interval():
        return "could not be judged (1 seed, no interval; run with --seeds 3)"
    return up if e.lo > 0 else down if e.hi < 0 else none


class Comparison:
    """The main comparison's runs, paired by seed: recipe -> seed -> run dir."""

    def __init__(self, out: Path) -> None:
        folder = out / "compare"
        self.rows = read_csv(folder / "sweep.csv")
        self.runs: dict[str, dict[int, Path]] = {"mae_wsp": {}, "wsp": {}, "mae": {}}
        for r in self.rows:
            self.runs[r["recipe"]][int(r["seed"])] = folder / r["run_dir"]
        self.seeds = sorted(set(self.runs["mae_wsp"]) & set(self.runs["wsp"]))
        self.summary = {p: json.loads((p / "summary.json").read_text()) for rs in self.runs.values()
                        for p in rs.values()}
        run = self.runs["wsp"][self.seeds[0]]
        model = (load_yaml(run / "config.yaml").get("model") or {}) if (run / "config.yaml").is_file() else {}
        self.img_size = model.get("img_size") or MODELS[self.summary[run]["model"]].img_size

    def curve(self, recipe: str, seed: int) -> tuple[list[int], list[float]]:
        m = read_metrics(self.runs[recipe][seed] / "metrics.jsonl")
        return [r["samples_seen"] for r in m], [r["loss"] for r in m]

    def metric(self, recipe: str, seed: int, name: str) -> float | None:
        return (self.summary[self.runs[recipe][seed]].get("eval") or {}).get(name)


def convergence(c: Comparison) -> dict:
    per_seed, gaps, curves = [], [], {"mae_wsp": [], "wsp": []}
    for seed in c.seeds:
        (xs, ls), (xm, lm) = c.curve("wsp", seed), c.curve("mae_wsp", seed)
        window = max(1, len(ls) // 8)
        target = smoothed(ls, window)[-1]
        reached = samples_to_reach(xm, lm, target, window)
        per_seed.append({"seed": seed, "target": target, "wsp_samples": xs[-1], "mae_wsp_samples": reached,
                         "speedup": None if reached is None else xs[-1] / reached})
        sm, ss = smoothed(lm, window), smoothed(ls, window)
        gaps.append(sum(a - b for a, b in zip(ss, sm)) / min(len(ss), len(sm)))
        curves["mae_wsp"].append((xm, sm))
        curves["wsp"].append((xs, ss))
    speedups = [p["speedup"] for p in per_seed]
    log_speedup = estimate([math.log(s) for s in speedups]) if None not in speedups else None
    return {"per_seed": per_seed, "gap": estimate(gaps), "log_speedup": log_speedup, "curves": curves,
            "window": window}


def _convergence_text(conv: dict) -> tuple[str, list[str]]:
    per, gap, logs = conv["per_seed"], conv["gap"], conv["log_speedup"]
    lines = ["| seed | target loss (random init, final) | samples, random init | samples, from MAE | speed-up |",
             "| --- | --- | --- | --- | --- |"]
    for p in per:
        got = "not reached" if p["mae_wsp_samples"] is None else f"{p['mae_wsp_samples']:,}"
        speed = "< 1" if p["speedup"] is None else f"{p['speedup']:.2f}x"
        lines.append(f"| {p['seed']} | {p['target']:.4f} | {p['wsp_samples']:,} | {got} | {speed} |")
    gap_text = f"mean stage-2 loss gap (random init minus from-MAE, over the curve): {_interval(gap, 1, 4)}"
    if logs is None:
        n = sum(p["speedup"] is None for p in per)
        how = "did not speed up" if n == len(per) else "did not speed up, in every seed,"
        head = (f"{how} stage-2 convergence: in {n} of {plural(len(per), 'seed')} the MAE-initialised run never "
                "reached the random-init run's final loss")
        return head + f"; {gap_text}", lines
    speed = Estimate(math.exp(logs.mean), math.exp(logs.lo), math.exp(logs.hi), logs.n)
    verdict = _verdict(logs, "sped up", "slowed", "did not measurably change")  # log speed-up > 0: faster
    if not logs.has_interval():
        verdict = "(1 seed, no interval)"
    head = (f"{verdict} stage-2 convergence: it reached the random-init run's final loss after "
            f"{1 / speed.mean:.0%} of the samples (speed-up {_interval(speed, 1, 2)}x, geometric mean)")
    return head + f"; {gap_text}", lines


def _accuracy(c: Comparison) -> tuple[list[str], dict[str, Estimate]]:
    lines = [f"| metric | from MAE (%) | random init (%) | difference (points, {LEVEL:.0%} interval) |",
             "| --- | --- | --- | --- |"]
    diffs = {}
    for name in METRICS:
        a = [c.metric("mae_wsp", s, name) for s in c.seeds]
        b = [c.metric("wsp", s, name) for s in c.seeds]
        if None in a or None in b:
            lines.append(f"| {NAMES[name]} | missing | missing | (not evaluated) |")
            continue
        diffs[name] = d = estimate([x - y for x, y in zip(a, b)])
        lines.append(f"| {NAMES[name]} | {_interval(estimate(a), 100)} | {_interval(estimate(b), 100)} | "
                     f"{_interval(d, 100)} |")
    return lines, diffs


def _compute_lines(c: Comparison) -> list[str]:
    mae = [c.summary[c.runs["mae_wsp"][s]] for s in c.seeds]
    wsp = [c.summary[c.runs["wsp"][s]] for s in c.seeds]
    stage1 = [c.summary[p] for p in c.runs["mae"].values()]

    def mean(vals: list) -> float:
        return sum(float(v) for v in vals) / len(vals)

    s2 = mean([m["flops"] for m in mae])
    s1 = mean([s["flops"] for s in stage1])
    return [f"Compute per seed (analytic FLOPs from summary.json): stage 1 (MAE) {s1:.3g}, stage 2 {s2:.3g}; "
            f"WSP from MAE used {s1 + s2:.3g} in total, WSP from random init {mean([w['flops'] for w in wsp]):.3g}, "
            f"so at equal stage-2 samples the MAE recipe spent {(s1 + s2) / s2:.2f}x the compute. The sweep "
            "below puts both recipes on one compute axis with stage 1 counted."]


def _final_losses(conv: dict, classes: int) -> str:
    final = {k: estimate([y[-1] for _, y in runs]) for k, runs in conv["curves"].items()}
    return (f"from MAE {_interval(final['mae_wsp'], 1, 3)}, from random init {_interval(final['wsp'], 1, 3)} "
            f"(chance: ln {classes} = {math.log(classes):.3f})")


def build_report(out: Path) -> tuple[str, str]:
    """(report.md text, its headline) from the outputs under `out`; draws figures/convergence.png."""
    from scaling.demo.figures import convergence_figure

    stamp = read_stamp(out)
    s = stamp["settings"]
    c = Comparison(out)
    conv = convergence(c)
    convergence_figure(conv["curves"], out / "figures" / "convergence.png")
    conv_head, conv_table = _convergence_text(conv)
    acc_table, diffs = _accuracy(c)
    lin = diffs.get("linear_top1")
    acc_head = "accuracy: not evaluated" if lin is None else (
        _verdict(lin, "raised linear-probe accuracy", "lowered linear-probe accuracy",
                 "did not measurably change linear-probe accuracy")
        + f": {_interval(lin, 100)} points (from MAE minus random init)")
    train = json.loads((out / "shards" / "train" / "shards.json").read_text())
    val = json.loads((out / "shards" / "val" / "shards.json").read_text())
    held_lines, held_verdict = held_out_lines(out / "sweep")
    headline = (f"convergence: {conv_head.split(':')[0]}; accuracy: {acc_head.split(':')[0]} "
                f"({plural(len(c.seeds), 'seed')}, {s['model']}); prediction: {held_verdict}")
    lines = [
        "# scaling demo: MAE pre-pretraining in miniature",
        "",
        f"{'`--quick` run: ' if s['quick'] else ''}{s['model']} on the bundled Fashion-MNIST subset "
        f"({train['num_samples']:,} training / {val['num_samples']:,} validation images, {train['num_classes']} "
        f"classes) at {c.img_size} px, {plural(len(c.seeds), 'seed')}. Stage 1: MAE, {s['stage1_samples']:,} samples "
        f"({s['stage1_samples'] / train['num_samples']:.1f} passes over the training images). Stage 2: WSP (softmax "
        f"cross-entropy on the labels), {s['stage2_samples']:,} samples, from the MAE encoder and from random init. "
        f"Intervals: {LEVEL:.0%} Student-t over seeds (paired by seed). Every number below is read from the run "
        "outputs in this folder; `scaling demo --report-only --out DIR` rebuilds this file from them.",
        "",
        "## Answer at this scale",
        "",
        f"- **Convergence**: MAE pre-pretraining {conv_head}.",
        f"- **Accuracy**: {acc_head}.",
        f"- **Compute**: {_compute_lines(c)[0]}",
        f"- **Prediction**: {held_verdict} (the sweep's largest-compute run of each recipe, held out of the fit).",
        "",
        "## Stage-2 convergence",
        "",
        f"Trailing mean over {conv['window']} logged steps (stage-2 `metrics.jsonl`). Final training loss: "
        f"{_final_losses(conv, train['num_classes'])}.",
        "",
        *conv_table,
        "",
        "![stage-2 convergence](figures/convergence.png)",
        "",
        "## Accuracy (`scaling eval` of the encoders on the validation images; the classifier's own top-1: its run)",
        "",
        *acc_table,
        "",
        "## Sweep: model size x samples x recipe, compute with stage 1 counted",
        "",
        *sweep_lines(out),
        "",
        "## Held-out prediction",
        "",
        *held_lines,
        "",
        "## Steps",
        "",
        "| step | wall time | summary |",
        "| --- | --- | --- |",
        *[f"| {k} | {v['seconds']:.0f} s | {v['summary']} |" for k, v in stamp["steps"].items()],
        "",
        "Runs: `compare/runs/` (main comparison), `sweep/runs/` (sweep); each holds config.yaml, metrics.jsonl, "
        "checkpoints/ and summary.json (its `eval` filled by `scaling eval`; the eval JSONs are in `eval/`). "
        "Logs of every command: `logs/`.",
        "",
        "## What to run next",
        "",
        *next_lines(out),
    ]
    return "\n".join(lines) + "\n", headline


def write_report(out: Path) -> tuple[Path, str]:
    text, headline = build_report(out)
    path = out / "report.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path, headline
