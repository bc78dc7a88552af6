"""`--law auto`: the law chosen by a rolling-origin backtest inside the fitted runs, never the held-out ones."""

from __future__ import annotations

import json

import numpy as np
import pytest
from laws_simulate import schedule_curves

from scaling.laws import auto
from scaling.laws.cli import main
from scaling.laws.convergence import curve_points
from scaling.laws.laws import get_law
from scaling.laws.problem import FitData
from scaling.laws.table import read_table, write_table

M4_TRUTH = [-0.6, 1.2, float(np.log(1e18)), 0.15, 0.75]  # c, alpha, log_x0, eps_inf, span


def _table(path, n: int = 16, seed: int = 0, law: str = "m4", theta=None) -> None:
    rng = np.random.default_rng(seed)
    flops = np.geomspace(1e17, 1e23, n)
    err = get_law(law).predict({"x": flops}, theta or M4_TRUTH) * np.exp(0.01 * rng.standard_normal(n))
    rows = [
        {"run": f"r{i:02d}", "model": "m", "params": 1e8, "samples": 1e9, "flops": f, "total_flops": f,
         "recipe": "wsp", "metric": "linear_top1", "value": 1 - e}
        for i, (f, e) in enumerate(zip(flops, err))
    ]
    write_table(rows, path)


def _fit(tmp_path, table, *extra: str) -> dict:
    out = tmp_path / f"fit{len(list(tmp_path.glob('fit*.json')))}.json"
    code = main(["fit", str(table), "--law", "auto", "--y", "linear_top1", "--bootstrap", "0", *extra,
                 "--out", str(out)])
    assert code == 0
    return json.loads(out.read_text())


def test_auto_writes_the_winner_every_score_and_why(tmp_path) -> None:
    table = tmp_path / "results.csv"
    _table(table)
    report = _fit(tmp_path, table)
    a = report["auto"]
    # a curve with an S-shaped transition in log x: the pure power law cannot follow it, M4 can
    assert report["law"] == a["chosen"] == "m4"
    assert set(a["backtest_log_rmse"]) == set(auto.CANDIDATES)
    assert a["backtest_log_rmse"]["m4"] == min(a["backtest_log_rmse"].values())
    assert a["backtest_log_rmse"]["power"] > 2 * a["backtest_log_rmse"]["m4"]
    assert len(a["cuts"]) >= 2 and all(c["fit_points"] + c["scored_points"] == 16 for c in a["cuts"])
    assert "m4 extrapolated best" in a["why"] and "runner-up" in a["why"]
    assert sum(a["average_weights"].values()) == pytest.approx(1.0)


@pytest.mark.parametrize("holdout", [["--holdout", "3"], ["--holdout-where", "run=r05,r11"]])
def test_moving_a_held_out_run_leaves_the_choice_unchanged(tmp_path, holdout) -> None:
    table = tmp_path / "results.csv"
    _table(table)
    before = _fit(tmp_path, table, *holdout)
    held = {h["run"] for h in before["holdout"]}
    assert held  # the split really held runs out
    t = read_table(table)
    t.columns["value"] = [
        str(1 - 0.5 * (1 - float(v))) if r in held else v for r, v in zip(t.columns["run"], t.columns["value"])
    ]
    moved = tmp_path / "moved.csv"
    write_table([dict(zip(t.columns, row)) for row in zip(*t.columns.values())], moved)
    after = _fit(tmp_path, moved, *holdout)
    assert after["auto"] == before["auto"]
    assert after["params"] == before["params"]
    assert [h["actual"] for h in after["holdout"]] != [h["actual"] for h in before["holdout"]]


def test_choose_scores_every_law_on_the_same_cuts_and_drops_laws_too_big_to_backtest() -> None:
    x = np.geomspace(1e2, 1e6, 7)
    y = 0.2 + 3.0 * x**-0.3
    data = FitData({"x": x}, y, np.array([f"r{i}" for i in range(7)]))
    choice = auto.choose(data, x)
    # 7 points: m4 (5 parameters) needs 6 to fit and 1 to score at every cut; saturating (4) can be scored
    assert "m4" not in choice.excluded
    assert all(len(v) == len(choice.cuts) for v in choice.per_cut.values())
    small = auto.choose(data.subset(np.arange(7) < 5), x[:5])
    assert "m4" in small.excluded and "saturating" in small.excluded
    assert small.law in ("power", "power_offset")


def test_auto_bad_inputs_are_one_line_errors(tmp_path, capsys) -> None:
    table = tmp_path / "results.csv"
    _table(table, n=3)
    out = str(tmp_path / "f.json")
    assert main(["fit", str(table), "--law", "auto", "--y", "linear_top1", "--out", out]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "too few to backtest" in err
    _table(table, n=12)
    assert main(["fit", str(table), "--law", "auto", "--x", "params,samples", "--y", "linear_top1",
                 "--out", out]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "one-input laws" in err and "chinchilla" in err
    assert not (tmp_path / "f.json").exists()


def test_a_winner_that_predicts_below_zero_where_it_is_used_is_passed_over() -> None:
    # a curve that follows the convergence law; asked to predict where its annealing term C S2 exceeds the
    # rest, that law goes below zero: auto takes the next law instead, and says why
    law = get_law("convergence")
    data = curve_points(schedule_curves([1e8])[:1], law.inputs)
    data.y = law.predict(data.X, [0.45, 2.5, 0.5, 0.4])
    data.X["x"] = np.arange(1, len(data.y) + 1, dtype=float)
    plain = auto.choose(data, data.X["x"], ["power_offset", "convergence"])
    assert plain.law == "convergence"
    horizon = {"x": np.array([1e3]), "S1": np.array([data.X["S1"].max()]), "S2": np.array([100.0])}
    guarded = auto.choose(data, data.X["x"], ["power_offset", "convergence"], horizon=horizon)
    assert guarded.law == "power_offset"
    assert "convergence" in guarded.excluded and "passed over" in guarded.reason
    assert guarded.scores == plain.scores  # the backtest itself is unchanged


def _curves_csv(path, values=None) -> list[dict]:
    """A cosine and a constant-lr run of one model that follow the convergence law (0.5% noise), the
    cosine ending 25% lower (a large annealing term C)."""
    law = get_law("convergence")
    curves = schedule_curves([1e8])
    data = curve_points(curves, law.inputs)
    y = law.predict(data.X, [0.45, 2.5, 0.5, 4.0]) * np.exp(0.005 * np.random.default_rng(0).standard_normal(40))
    rows = []
    for c in curves:
        rows += [{"run": c.run, "step": int(s), "lr": c.lr[s - 1], "params": 1e8} for s in c.step]
    for r, v in zip(rows, y if values is None else values):
        r["loss"] = v
    write_table(rows, path)
    return rows


def test_auto_on_training_curves_weighs_the_schedule_aware_law_too(tmp_path) -> None:
    # two runs of one model with different lr schedules: no one law in the step can follow both, the
    # convergence law (in the schedule's areas) can; auto on curves must consider it, as the benchmark does
    path = tmp_path / "curves.csv"
    rows = _curves_csv(path)
    out = tmp_path / "fit.json"
    args = ["fit", str(path), "--law", "auto", "--fit-fraction", "0.6", "--bootstrap", "0", "--out", str(out)]
    assert main(args) == 0
    before = json.loads(out.read_text())
    assert set(before["auto"]["backtest_log_rmse"]) == set(auto.CURVE_CANDIDATES)
    assert before["law"] == before["auto"]["chosen"] == "convergence"
    assert before["x"] == "step" and len(before["holdout"]) == 2
    assert before["holdout_summary"]["max_abs_rel_error"] < 0.05
    # the held-out ends move: the choice and the fit do not (auto saw their steps and lr, not their values)
    held = {(h["run"]) for h in before["holdout"]}
    moved = [r["loss"] * (3.0 if r["run"] in held and r["step"] > 0.6 * 20_000 else 1.0) for r in rows]
    _curves_csv(path, moved)
    assert main(args) == 0
    after = json.loads(out.read_text())
    assert after["auto"] == before["auto"] and after["params"] == before["params"]
    assert after["holdout_summary"] != before["holdout_summary"]
