"""The numbers users decide with: compute multiplier between recipes, N_opt / D_opt, predictions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from laws_fixtures import synthetic_results

from scaling.laws.cli import main
from scaling.laws.decisions import allocate


def test_compute_multiplier_recovers_the_known_ratio(tmp_path, capsys) -> None:
    # err = a_r C^b with shared b = -0.12: WSP needs (60/45)^(1/0.12) = 11x the compute of MAE->WSP.
    csv = synthetic_results(tmp_path / "r.csv", recipes={"wsp": 60.0, "mae_wsp": 45.0}, noise=0.005)
    out = tmp_path / "cmp.json"
    assert (
        main(
            [
                "fit",
                str(csv),
                "--law",
                "power",
                "--y",
                "linear_top1",
                "--group-by",
                "recipe",
                "--share",
                "b",
                "--compare",
                "wsp,mae_wsp",
                "--at",
                "0.7",
                "--bootstrap",
                "60",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    assert set(report["params"]) == {"b", "a[mae_wsp]", "a[wsp]"}  # one shared exponent
    (m,) = report["derived"]["compute_multiplier"]
    truth = (60 / 45) ** (1 / 0.12)
    assert m["value"] == pytest.approx(truth, rel=0.1)
    assert m["lo"] < truth < m["hi"] and m["n_valid"] == 60
    assert "wsp needs" in capsys.readouterr().out


def test_unreachable_accuracy_has_no_multiplier(tmp_path) -> None:
    csv = synthetic_results(tmp_path / "r.csv", noise=0.005)
    out = tmp_path / "cmp.json"
    assert (
        main(
            [
                "fit",
                str(csv),
                "--law",
                "power",
                "--y",
                "linear_top1",
                "--group-by",
                "recipe",
                "--share",
                "b",
                "--compare",
                "wsp,mae_wsp",
                "--at",
                "0.8,1.0",
                "--bootstrap",
                "0",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    reachable, perfect = json.loads(out.read_text())["derived"]["compute_multiplier"]
    assert reachable["value"] > 1
    assert perfect["value"] is None  # error 0 is never reached by a C^b: nan, written as null


def test_allocation_is_the_constrained_optimum() -> None:
    p = {"alpha": 0.34, "beta": 0.28, "E": 1.7, "A": 400.0, "B": 1500.0}
    c, k = 1e22, 6.0
    opt = allocate(p, c, k)
    assert k * opt["N_opt"] * opt["D_opt"] == pytest.approx(c)
    n = np.geomspace(opt["N_opt"] / 3, opt["N_opt"] * 3, 2001)
    loss = p["E"] + p["A"] * n ** -p["alpha"] + p["B"] * (c / (k * n)) ** -p["beta"]
    assert n[np.argmin(loss)] == pytest.approx(opt["N_opt"], rel=2e-3)
    assert loss.min() == pytest.approx(opt["loss"], rel=1e-9)


def test_allocate_and_predict_print_intervals(tmp_path, capsys) -> None:
    csv = synthetic_results(tmp_path / "r.csv", recipes={"wsp": 60.0})
    out = tmp_path / "alloc.json"
    assert (
        main(
            [
                "fit",
                str(csv),
                "--law",
                "chinchilla",
                "--y",
                "loss",
                "--bootstrap",
                "20",
                "--allocate",
                "1e21",
                "1e23",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "compute-optimal allocation" in text and "N_opt" in text
    alloc = json.loads(out.read_text())["derived"]["allocation"]
    assert [a["compute"] for a in alloc] == [1e21, 1e23]
    assert all(a["N_opt"]["lo"] <= a["N_opt"]["value"] <= a["N_opt"]["hi"] for a in alloc)
    # k in C = k N D comes from the table itself (flops / (params * samples) = 6 there)
    assert json.loads(out.read_text())["derived"]["flops_per_param_sample"] == pytest.approx(6.0)

    assert (
        main(
            [
                "fit",
                str(csv),
                "--law",
                "power",
                "--y",
                "linear_top1",
                "--bootstrap",
                "20",
                "--predict",
                "1e23",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "predicted accuracy at x = 1e+23" in capsys.readouterr().out
