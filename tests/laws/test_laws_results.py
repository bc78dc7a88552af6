"""`scaling results collect|curves` from run directories, and fitting straight from run directories."""

from __future__ import annotations

import csv
import json

import pytest
from laws_fixtures import make_run_dir

from scaling.cli import main as scaling_main
from scaling.laws.cli import main
from scaling.laws.results import collect


def _read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_collect_builds_one_row_per_run_and_metric(tmp_path) -> None:
    make_run_dir(tmp_path / "runs", "b16_mae_wsp", 8.6e7, 10**6, 1.05e17, 2.5, evals={"linear_top1": 0.71})
    make_run_dir(
        tmp_path / "runs",
        "b16_wsp",
        8.6e7,
        10**6,
        1.05e17,
        2.7,
        recipe=None,
        evals={},
        eval_files=[
            {"protocol": "knn", "metric": "top1", "value": 0.55},
            {"protocol": "linear", "metric": "linear_top1", "value": 0.66},
        ],
    )
    out = tmp_path / "results.csv"
    assert main(["results", "collect", *map(str, sorted((tmp_path / "runs").iterdir())), "--out", str(out)]) == 0
    rows = _read(out)
    assert list(rows[0])[:9] == [
        "run",
        "model",
        "params",
        "samples",
        "flops",
        "total_flops",
        "recipe",
        "metric",
        "value",
    ]
    got = {(r["run"], r["metric"]): (r["recipe"], float(r["value"])) for r in rows}
    assert got == {
        ("b16_mae_wsp", "loss"): ("mae_wsp", 2.5),
        ("b16_mae_wsp", "linear_top1"): ("mae_wsp", 0.71),
        ("b16_wsp", "loss"): ("wsp", 2.7),  # no recipe in summary.json: the stage stands in
        ("b16_wsp", "knn_top1"): ("wsp", 0.55),  # eval file: protocol prefixed to its metric
        ("b16_wsp", "linear_top1"): ("wsp", 0.66),  # already prefixed: kept as is
    }


def test_collect_reads_the_eval_json_that_scaling_eval_writes(tmp_path) -> None:
    """`scaling eval --out RUN/eval/x.json` writes {"protocol", "top1", ..., "metrics": {name: value}}: collect
    takes every entry of "metrics" (a file of that shape used to be refused for lacking 'metric')."""
    eval_json = {"protocol": "lowshot", "top1": {"1": 0.3, "5": 0.5}, "per_class": [0.1] * 10,
                 "metrics": {"lowshot1_top1": 0.3, "lowshot5_top1": 0.5}}
    make_run_dir(tmp_path / "runs", "b16_wsp", 8.6e7, 10**6, 1.05e17, 2.7, evals={}, eval_files=[eval_json])
    rows = collect([tmp_path / "runs" / "b16_wsp"])
    got = {r["metric"]: float(r["value"]) for r in rows}
    assert got == {"loss": 2.7, "lowshot1_top1": 0.3, "lowshot5_top1": 0.5}


def test_collect_refuses_duplicate_run_names_and_incomplete_runs(tmp_path) -> None:
    a = make_run_dir(tmp_path / "x", "same", 1e8, 10, 1e15, 2.0)
    b = make_run_dir(tmp_path / "y", "same", 1e8, 10, 1e15, 2.0)
    with pytest.raises(ValueError, match=r"run 'same' appears twice: .*x/same and .*y/same"):
        collect([a, b])
    (tmp_path / "z" / "unfinished").mkdir(parents=True)
    with pytest.raises(ValueError, match="without summary.json.*unfinished.*--skip-incomplete"):
        collect([a, tmp_path / "z" / "unfinished"])
    with pytest.warns(UserWarning, match="skipped"):
        assert {r["run"] for r in collect([a, tmp_path / "z" / "unfinished"], skip_incomplete=True)} == {"same"}


def test_curves_table_and_convergence_fit_from_run_dirs(tmp_path) -> None:
    dirs = [make_run_dir(tmp_path, f"run{i}", 5e6, 6400, 1e14, 2.2, steps=150 + 50 * i) for i in range(3)]
    curves_csv = tmp_path / "curves.csv"
    assert main(["results", "curves", *map(str, dirs), "--out", str(curves_csv)]) == 0
    rows = _read(curves_csv)
    assert len(rows) == 150 + 200 + 250 and {"run", "step", "lr", "loss", "samples_seen"} <= set(rows[0])

    fit_json = tmp_path / "fit.json"
    # The same fit from the CSV and from the run directories themselves.
    for source in ([str(curves_csv)], list(map(str, dirs))):
        assert (
            main(
                [
                    "fit",
                    *source,
                    "--law",
                    "convergence",
                    "--fit-fraction",
                    "0.5",
                    "--bootstrap",
                    "10",
                    "--out",
                    str(fit_json),
                ]
            )
            == 0
        )
        report = json.loads(fit_json.read_text())
        assert report["n_runs"] == 3 and len(report["holdout"]) == 3
        # The logged loss follows the law exactly (conftest), so the first half predicts the end.
        assert report["holdout_summary"]["max_abs_rel_error"] < 1e-3
        assert report["params"]["alpha"]["value"] == pytest.approx(0.5, rel=0.02)


def test_top_level_dispatcher_reaches_the_laws_commands(tmp_path, capsys) -> None:
    make_run_dir(tmp_path / "runs", "r0", 1e8, 10, 1e15, 2.0)
    out = tmp_path / "t.csv"
    assert scaling_main(["results", "collect", str(tmp_path / "runs" / "r0"), "--out", str(out)]) == 0
    assert "wrote 1 rows" in capsys.readouterr().out
