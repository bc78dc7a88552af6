"""What a finished demo folder must show, read from its outputs alone (tests/demo/test_demo_quick.py runs
--quick in the default suite, tests/demo/test_demo_full.py the full demo under -m slow)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

from scaling.demo.stats import smoothed
from scaling.demo.sweep_report import held_out, largest_runs, read_csv
from scaling.engine.metrics import read_metrics


def demo(*args: str) -> subprocess.CompletedProcess:
    scaling = shutil.which("scaling") or f"{sys.executable} -m scaling"
    return subprocess.run([*scaling.split(), "demo", *args], capture_output=True, text=True, timeout=1200)


def check_stage2_learns(out: Path) -> None:
    """Every stage-2 run of the comparison ends (trailing mean of its last eighth of logged steps) below
    half of chance's loss, ln(classes)."""
    classes = json.loads((out / "shards" / "train" / "shards.json").read_text())["num_classes"]
    for row in read_csv(out / "compare" / "sweep.csv"):
        if row["stage"] != "wsp":
            continue
        losses = [r["loss"] for r in read_metrics(out / "compare" / row["run_dir"] / "metrics.jsonl")]
        final = smoothed(losses, max(1, len(losses) // 8))[-1]
        assert final < 0.5 * math.log(classes), (row["run"], final)


def check_sweep_spans_and_rises(out: Path) -> None:
    """The sweep's metric spans at least 15 points of top-1, and rises with compute from one budget to the
    next within each model and recipe in most cells."""
    rows = [r for r in read_csv(out / "sweep" / "results.csv") if r["metric"] == "val_top1"]
    values = [float(r["value"]) for r in rows]
    assert max(values) - min(values) >= 0.15, values
    up = steps = 0
    for key in {(r["model"], r["recipe"]) for r in rows}:
        curve = sorted((int(r["samples"]), float(r["value"])) for r in rows if (r["model"], r["recipe"]) == key)
        up += sum(b[1] > a[1] for a, b in zip(curve, curve[1:]))
        steps += len(curve) - 1
    assert up > steps / 2, (up, steps)


def check_held_out_prediction(out: Path) -> None:
    """The largest-compute run of each recipe was held out; the report shows FIT.json's prediction and
    interval and the run's own measured value; a changed measured value flips that row's verdict."""
    folder = out / "sweep"
    fit = json.loads((folder / "FIT.json").read_text())
    held = largest_runs(folder / "results.csv")
    assert sorted(h["run"] for h in fit["holdout"]) == sorted(held.values()) and len(held) == 2
    report = (out / "report.md").read_text()
    runs = {r["run"]: r for r in read_csv(folder / "sweep.csv")}
    rows, _ = held_out(folder)
    for h in fit["holdout"]:
        summary = json.loads((folder / runs[h["run"]]["run_dir"] / "summary.json").read_text())
        measured = summary["eval"]["val_top1"]
        line = next(ln for ln in report.splitlines() if f"| {h['run']} |" in ln)
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[3] == f"{100 * (1 - h['predicted']):.1f}"
        assert cells[4] == f"[{100 * max(0, 1 - h['hi']):.1f}, {100 * min(1, 1 - h['lo']):.1f}]"
        assert cells[5] == f"{100 * measured:.1f}"
        assert cells[6] == ("yes" if 1 - h["hi"] <= measured <= 1 - h["lo"] else "no")
    assert "## Held-out prediction" in report and "**Verdict**" in report
    assert "figures/compute_vs_val_top1.png" in report and (out / "figures" / "compute_vs_val_top1.png").is_file()

    # Edit one held-out run's measured value across its interval's edge: the report's verdict for it flips.
    r = rows[0]
    path = folder / runs[r.run]["run_dir"] / "summary.json"
    summary = json.loads(path.read_text())
    summary["eval"]["val_top1"] = r.predicted if not r.covered else max(0.0, r.lo - 0.05)
    path.write_text(json.dumps(summary))
    assert demo("--report-only", "--out", str(out)).returncode == 0
    line = next(ln for ln in (out / "report.md").read_text().splitlines() if f"| {r.run} |" in ln)
    assert line.rstrip(" |").endswith("no" if r.covered else "yes"), line


def check_next_runs(out: Path) -> None:
    """The report ends with `scaling advise`'s two picks for the MAE recipe, as ADVICE.json holds them, and
    the command that runs them names spec files that exist."""
    advice = json.loads((out / "sweep" / "ADVICE.json").read_text())
    section = (out / "report.md").read_text().split("## What to run next")[1]
    assert "\n## " not in section and len(advice["chosen"]) == 2, advice["chosen"]
    for c in advice["chosen"]:
        assert c["recipe"] == "mae_wsp" and f"| {c['run']} |" in section
    for spec in advice["sweep_specs"]:
        assert Path(spec).is_file() and f"scaling sweep {spec} --out" in section
