"""The metric's direction is explicit (--y-kind), a fit at a bound says so, and many curves fit in one call
(--group-by several columns, --holdout-where split=test)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scaling.laws.cli import main
from scaling.laws.table import write_table


def _error_table(path, metric: str, values) -> None:
    rows = []
    for i, (c, v) in enumerate(zip(np.geomspace(1e19, 1e22, len(values)), values)):
        base = {"run": f"r{i}", "model": "m", "params": 1e8, "samples": 1e6, "flops": c, "total_flops": c}
        rows.append({**base, "recipe": "wsp", "metric": metric, "value": v})
    write_table(rows, path)


def _fit(tmp_path, csv, *extra) -> tuple[int, dict | None]:
    out = tmp_path / "fit.json"
    out.unlink(missing_ok=True)
    code = main(["fit", str(csv), "--bootstrap", "0", "--out", str(out), *extra])
    return code, json.loads(out.read_text()) if out.is_file() else None


ERRORS = 0.5 * np.geomspace(1e19, 1e22, 8) ** -0.05  # error falling with compute: a negative exponent


def test_names_like_error_rates_are_not_taken_for_accuracies(tmp_path) -> None:
    csv = tmp_path / "e.csv"
    _error_table(csv, "top1_err", ERRORS)
    code, report = _fit(tmp_path, csv, "--law", "power", "--y", "top1_err")
    assert code == 0 and report["y_kind"] == "error" and report["y_transform"] is None
    assert report["params"]["b"]["value"] == pytest.approx(-0.05, abs=1e-6)  # not 1 - error


def test_unknown_metric_names_need_y_kind(tmp_path, capsys) -> None:
    csv = tmp_path / "e.csv"
    for name in ("acc_err", "error_rate_top1"):
        _error_table(csv, name, ERRORS)
        code, _ = _fit(tmp_path, csv, "--law", "power", "--y", name)
        assert code == 2
        assert f"--y-kind is needed for {name!r}" in capsys.readouterr().err
        code, report = _fit(tmp_path, csv, "--law", "power", "--y", name, "--y-kind", "error")
        assert code == 0 and report["y_kind"] == "error"
        assert report["params"]["b"]["value"] == pytest.approx(-0.05, abs=1e-6)
        assert f"y = {name} (error)" in capsys.readouterr().out
    _error_table(csv, "linear_top1", 1 - ERRORS)
    code, report = _fit(tmp_path, csv, "--law", "power", "--y", "linear_top1")
    assert code == 0 and report["y_kind"] == "accuracy"
    assert report["params"]["b"]["value"] == pytest.approx(-0.05, abs=1e-6)
    from scaling.laws.results import infer_y_kind

    assert [infer_y_kind(n) for n in ("lowshot10_top1", "LOSS", "top1_acc")] == ["accuracy", "loss", None]


def test_a_parameter_on_its_bound_is_listed_and_flagged(tmp_path, capsys) -> None:
    csv = tmp_path / "short.csv"
    _error_table(csv, "error", [0.5, 0.2, 0.15, 0.149, 0.1495, 0.15])  # a short curve that flattens at once
    code, report = _fit(tmp_path, csv, "--law", "saturating", "--y", "error")
    assert code == 0
    assert report["converged"] is True  # the optimizer did converge ...
    assert report["at_bound"] == [{"param": "b", "value": 5.0, "bound": 5.0, "side": "upper"}]  # ... on a limit
    assert "AT BOUND: b = 5 sits on its upper bound 5" in capsys.readouterr().out


def _many_curves(path) -> dict:
    """6 tasks x 12 models, 6 runs each (samples), every group its own power law; one run per group is
    marked split=test, in the middle of its range."""
    rng = np.random.default_rng(4)
    rows, truth = [], {}
    for t in range(6):
        for m in range(12):
            a, b = 2.0 + 0.1 * t + 0.05 * m, -0.1 - 0.01 * t - 0.005 * m
            truth[f"task{t}|vit{m}"] = b
            for i, s in enumerate(np.geomspace(1e6, 1e9, 6)):
                rows.append(
                    {
                        "run": f"task{t}_vit{m}_{i}",
                        "model": f"vit{m}",
                        "task": f"task{t}",
                        "samples": s,
                        "split": "test" if i == 3 else "train",
                        "metric": "loss",
                        "value": a * s**b * np.exp(0.002 * rng.standard_normal()),
                    }
                )
    write_table(rows, path, first=("run", "model", "task", "samples", "split", "metric", "value"))
    return truth


def test_72_curves_in_one_call(tmp_path) -> None:
    csv = tmp_path / "many.csv"
    truth = _many_curves(csv)
    out = tmp_path / "fit.json"
    args = ["fit", str(csv), "--law", "power", "--x", "samples", "--group-by", "task,model"]
    assert main([*args, "--holdout-where", "split=test", "--bootstrap", "10", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert len(report["groups"]) == 72 and report["group_by"] == ["task", "model"]
    held = report["holdout"]
    assert len(held) == 72 and all(h["run"].endswith("_3") for h in held)  # the split=test rows, not the largest
    assert report["n_points"] == 72 * 5  # held-out rows never entered the fit
    for g, b in truth.items():
        assert report["params"][f"b[{g}]"]["value"] == pytest.approx(b, abs=0.01)
    assert report["holdout_summary"]["max_abs_rel_error"] < 0.02
