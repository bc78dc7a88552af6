"""--holdout never lets held-out points into the fit, the frontier, or the bootstrap."""

from __future__ import annotations

import json

import numpy as np
import pytest
from laws_fixtures import synthetic_results
from laws_simulate import TRUTH, schedule_curves

from scaling.laws import pipeline
from scaling.laws.cli import main
from scaling.laws.convergence import annealing_areas
from scaling.laws.laws import get_law
from scaling.laws.pipeline import FitOptions, fit_table
from scaling.laws.results import select
from scaling.laws.table import read_table


def _poison(src, dst, runs: set[str]) -> None:
    """Copy a results CSV, replacing the held-out runs' values with absurd ones (still valid accuracies)."""
    lines = src.read_text().splitlines()
    header = lines[0].split(",")
    out = [lines[0]]
    for line in lines[1:]:
        cells = line.split(",")
        if cells[header.index("run")] in runs:
            cells[header.index("value")] = "0.001"
        out.append(",".join(cells))
    dst.write_text("\n".join(out) + "\n")


def test_changing_held_out_values_leaves_the_fit_bit_identical(tmp_path) -> None:
    clean = synthetic_results(tmp_path / "clean.csv", recipes={"mae_wsp": 45.0}, n=14)
    sel = select(read_table(clean), get_law("saturating"), ["flops"], "linear_top1")
    largest = {str(r) for r in sel.data.run[np.argsort(sel.size)[-3:]]}
    poisoned = tmp_path / "poisoned.csv"
    _poison(clean, poisoned, largest)

    reports = []
    for path in (clean, poisoned):
        out = tmp_path / f"{path.stem}.json"
        assert (
            main(
                [
                    "fit",
                    str(path),
                    "--law",
                    "saturating",
                    "--y",
                    "linear_top1",
                    "--frontier",
                    "pareto",
                    "--holdout",
                    "3",
                    "--bootstrap",
                    "15",
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
        reports.append(json.loads(out.read_text()))
    a, b = reports
    assert {h["run"] for h in a["holdout"]} == largest
    assert a["params"] == b["params"]  # every value and interval bound, exactly
    assert a["bootstrap_samples"] == b["bootstrap_samples"]
    assert a["frontier_runs"] == b["frontier_runs"] and not largest & set(a["frontier_runs"])
    # ... while the held-out rows really differ, and their predictions do not.
    assert [h["actual"] for h in a["holdout"]] != [h["actual"] for h in b["holdout"]]
    assert [h["predicted"] for h in a["holdout"]] == [h["predicted"] for h in b["holdout"]]


def test_fit_and_bootstrap_never_receive_held_out_runs(tmp_path, monkeypatch) -> None:
    sel = select(
        read_table(synthetic_results(tmp_path / "r.csv", recipes={"wsp": 60.0}, n=12)),
        get_law("power"),
        ["flops"],
        "linear_top1",
    )
    seen: list[set[str]] = []
    real_fit, real_boot = pipeline.fit, pipeline.run_bootstrap
    monkeypatch.setattr(
        pipeline, "fit", lambda law, data, *a, **k: seen.append(set(data.run)) or real_fit(law, data, *a, **k)
    )
    monkeypatch.setattr(
        pipeline,
        "run_bootstrap",
        lambda full, data, *a, **k: seen.append(set(data.run)) or real_boot(full, data, *a, **k),
    )
    out = fit_table(get_law("power"), sel, FitOptions(holdout=2, bootstrap=5))
    held = {h["run"] for h in out.report["holdout"]}
    assert len(held) == 2 and len(seen) == 2
    assert all(not (held & runs) for runs in seen)
    assert held == {str(r) for r in sel.data.run[np.argsort(sel.size)[-2:]]}  # the two largest-compute runs


def test_holdout_rows_carry_prediction_intervals(tmp_path) -> None:
    sel = select(
        read_table(synthetic_results(tmp_path / "r.csv", recipes={"wsp": 60.0}, n=12, noise=0.005)),
        get_law("power"),
        ["flops"],
        "linear_top1",
    )
    out = fit_table(get_law("power"), sel, FitOptions(holdout=1, bootstrap=40))
    (row,) = out.report["holdout"]
    assert row["lo"] <= row["predicted"] <= row["hi"]
    assert row["actual"] == pytest.approx(row["predicted"], rel=0.03)  # truth is the same power law
    assert out.report["holdout_summary"]["n"] == 1


def test_holdout_of_every_run_is_refused(tmp_path) -> None:
    csv = synthetic_results(tmp_path / "r.csv", recipes={"wsp": 60.0}, n=4)
    code = main(
        ["fit", str(csv), "--law", "power", "--y", "linear_top1", "--holdout", "4", "--out", str(tmp_path / "f.json")]
    )
    assert code == 2


def test_short_runs_and_the_early_part_of_the_largest_predict_its_end() -> None:
    law = get_law("convergence_size")
    curves = schedule_curves([1e7, 1e8, 1e9, 1e10])
    theta = [TRUTH["convergence_size"][p] for p in law.params]
    for c in curves:  # noise-free curves from the law itself
        s1, s2 = annealing_areas(c.lr)
        i = c.step - 1
        c.loss = law.predict({"S1": s1[i], "S2": s2[i], "N": np.full(len(i), c.params)}, theta)
    out = pipeline.fit_curves(law, curves, FitOptions(fit_fraction=0.5, holdout=1, bootstrap=0))
    (row,) = out.report["holdout"]  # only the largest run's end is held out; the others are fitted whole
    assert row["run"].endswith("1e+10") and row["x"] == 20_000
    assert row["predicted"] == pytest.approx(row["actual"], rel=1e-4)
    assert out.report["n_points"] == 8 * 20 - 10  # the largest run's second half never entered the fit
