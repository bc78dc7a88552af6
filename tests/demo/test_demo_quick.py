"""`scaling demo --quick` end to end, as a user runs it: every stage leaves its files, stage 2 learns, the
sweep spans a range and predicts its held-out runs, a re-run skips everything, and the report follows a
changed run output. In the default suite (the issue asks the tests to run the quick demo; it fits the
2-minute budget)."""

from __future__ import annotations

import json

from demo_checks import check_held_out_prediction, check_stage2_learns, check_sweep_spans_and_rises
from demo_checks import demo as _demo


def _mtimes(out) -> dict:
    return {p: p.stat().st_mtime_ns for d in ("compare", "sweep", "eval") for p in (out / d).rglob("*") if p.is_file()}


def test_quick_demo_leaves_every_stage_and_resumes(tmp_path):
    out = tmp_path / "demo"
    first = _demo("--quick", "--out", str(out))
    assert first.returncode == 0, first.stdout + first.stderr
    lines = first.stdout.splitlines()
    assert [ln.split("]")[0] for ln in lines if ln.startswith("[")] == [f"[{i}/6" for i in range(1, 7)]
    assert len(lines) < 40  # progress and one summary per step, not the commands' own output

    # 1. shards written by `scaling data write`
    for split in ("train", "val"):
        manifest = json.loads((out / "shards" / split / "shards.json").read_text())
        assert manifest["created_by"] == "scaling data write" and manifest["num_classes"] == 10
        assert len(list((out / "shards" / split).glob("*.tar"))) == manifest["num_shards"]
    # 2-3. stage-1 and both stage-2 runs: checkpoints, metrics, summaries
    runs = sorted(p.name for p in (out / "compare" / "runs").iterdir())
    assert [r.split("-")[0] for r in runs] == ["mae1", "mae_wsp", "wsp"]
    for run in runs:
        run_dir = out / "compare" / "runs" / run
        assert list((run_dir / "checkpoints").glob("step_*/COMPLETE.json"))
        assert (run_dir / "metrics.jsonl").read_text().count("\n") >= 8
        assert json.loads((run_dir / "summary.json").read_text())["preempted"] is False
    # 4. evaluation JSONs of both stage-2 runs, and their summaries' eval
    for run in runs[1:]:
        for protocol in ("linear", "knn", "lowshot"):
            assert json.loads((out / "eval" / "compare" / run / f"{protocol}.json").read_text())["protocol"] == protocol
        ev = json.loads((out / "compare" / "runs" / run / "summary.json").read_text())["eval"]
        assert {"linear_top1", "knn_top1", "lowshot1_top1", "lowshot10_top1"} <= set(ev)
    # 5. sweep: its runs, results table with stage-1 compute counted, fit, figure
    sweep_runs = [p for p in (out / "sweep" / "runs").iterdir() if (p / "summary.json").is_file()]
    assert len(sweep_runs) == 11  # 1 stage-1 run + 1 model x 5 budgets x 2 recipes
    results = (out / "sweep" / "results.csv").read_text().splitlines()
    assert results[0].startswith("run,model,params,samples,flops,total_flops,recipe")
    assert sum(",val_top1," in r for r in results) == 10
    assert json.loads((out / "sweep" / "FIT.json").read_text())["law"] == "power"
    assert (out / "figures" / "compute_vs_val_top1.png").read_bytes()[:4] == b"\x89PNG"
    # 6. the report and its figures
    report = (out / "report.md").read_text()
    assert "figures/convergence.png" in report and (out / "figures" / "convergence.png").is_file()
    # The study itself: stage 2 learns, the sweep spans a range, the held-out runs are predicted and checked.
    check_stage2_learns(out)
    check_sweep_spans_and_rises(out)

    # A re-run with the same --out: nothing trains or evaluates again.
    before = _mtimes(out)
    again = _demo("--quick", "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("done before, skipped") == 3 + 11
    after = _mtimes(out)
    changed = sorted(str(p.relative_to(out)) for p in after if before.get(p) != after[p])
    assert all(c.startswith("sweep/") and c.endswith((".csv", "FIT.json", "ADVICE.json")) for c in changed), changed

    # The report is read from the outputs: change one run's eval, rebuild, and its number changes.
    mae_wsp = out / "compare" / "runs" / runs[1] / "summary.json"
    summary = json.loads(mae_wsp.read_text())
    old = summary["eval"]["knn_top1"]
    summary["eval"]["knn_top1"] = 0.123
    mae_wsp.write_text(json.dumps(summary))
    assert _demo("--report-only", "--out", str(out)).returncode == 0
    new_report = (out / "report.md").read_text()
    assert f"| kNN top-1 | {100 * old:.1f} " in report and "| kNN top-1 | 12.3 " in new_report
    check_held_out_prediction(out)  # last: it edits a held-out run's measured value
