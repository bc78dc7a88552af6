"""The three commands: help with examples, FIT.json contents, the printed table."""

from __future__ import annotations

import hashlib
import json

import pytest
from laws_fixtures import synthetic_results

from scaling.cli import main as scaling_main
from scaling.laws.cli import MULTI_COMMAND, main


@pytest.mark.parametrize("command", ["results", "fit", "plot"])
def test_help_has_an_example(command: str, capsys) -> None:
    assert MULTI_COMMAND is True
    with pytest.raises(SystemExit) as exit_:
        scaling_main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "example" in out and f"scaling {command} " in out.split("example", 1)[1]


def test_fit_json_holds_the_contract(tmp_path, capsys) -> None:
    csv = synthetic_results(tmp_path / "r.csv")
    out = tmp_path / "fit.json"
    assert (
        main(
            [
                "fit",
                str(csv),
                "--law",
                "saturating",
                "--x",
                "flops",
                "--y",
                "linear_top1",
                "--where",
                "recipe=mae_wsp",
                "--frontier",
                "pareto",
                "--holdout",
                "largest",
                "--bootstrap",
                "30",
                "--seed",
                "4",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    for key in ("law", "x", "y", "n_points", "params", "objective", "holdout", "data_sha256", "versions"):
        assert key in report, key
    assert report["law"] == "saturating" and report["x"] == "flops" and report["y"] == "linear_top1"
    assert set(report["params"]) == {"a", "b", "c", "d"}
    assert all(set(p) == {"value", "lo", "hi"} for p in report["params"].values())
    (held,) = report["holdout"]
    assert (
        set(held) == {"run", "x", "actual", "predicted", "lo", "hi", "ci_lo", "ci_hi"} and held["run"] == "mae_wsp_11"
    )
    assert report["data_sha256"] == hashlib.sha256(csv.read_bytes()).hexdigest()
    assert {"scaling", "numpy", "scipy", "python"} <= set(report["versions"])
    assert report["bootstrap"]["n"] == 30 and report["bootstrap"]["method"] == "runs"
    assert report["n_points"] <= 11  # the frontier of the 11 fitted runs

    text = capsys.readouterr().out
    assert "law saturating" in text and "parameter" in text and "backtest" in text and "mae_wsp_11" in text


def test_same_seed_same_intervals(tmp_path) -> None:
    csv = synthetic_results(tmp_path / "r.csv")
    reports = []
    for i in range(2):
        out = tmp_path / f"f{i}.json"
        assert (
            main(
                [
                    "fit",
                    str(csv),
                    "--law",
                    "power",
                    "--y",
                    "linear_top1",
                    "--where",
                    "recipe=wsp",
                    "--bootstrap",
                    "15",
                    "--seed",
                    "9",
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
        reports.append(json.loads(out.read_text()))
    assert reports[0]["params"] == reports[1]["params"]
