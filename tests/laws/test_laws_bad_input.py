"""Bad input gets a clear error naming the rows or column (and the fix); a failed fit says so."""

from __future__ import annotations

import json

import numpy as np
import pytest
from laws_fixtures import synthetic_results

from scaling.laws import refine
from scaling.laws.cli import main
from scaling.laws.convergence import Curve, curve_points, lr_schedule
from scaling.laws.fit import fit
from scaling.laws.laws import get_law
from scaling.laws.problem import FitData, FitWarning
from scaling.laws.results import select
from scaling.laws.table import DataError, read_table

HEADER = "run,model,params,samples,flops,recipe,metric,value\n"


def _csv(tmp_path, rows: list[str]):
    path = tmp_path / "results.csv"
    path.write_text(HEADER + "".join(r + "\n" for r in rows))
    return path


def _rows(n: int) -> list[str]:
    return [f"r{i},m,{1e8 * 2**i},{1e9 * 2**i},{6e17 * 4**i},wsp,linear_top1,{0.5 + 0.03 * i}" for i in range(n)]


def _fit_error(tmp_path, rows: list[str], *extra: str, capsys) -> str:
    code = main(
        [
            "fit",
            str(_csv(tmp_path, rows)),
            "--law",
            "power",
            "--y",
            "linear_top1",
            "--bootstrap",
            "0",
            "--out",
            str(tmp_path / "fit.json"),
            *extra,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert not (tmp_path / "fit.json").exists()
    return err


def test_too_few_points_for_the_law(tmp_path, capsys) -> None:
    code = main(
        [
            "fit",
            str(_csv(tmp_path, _rows(3))),
            "--law",
            "saturating",
            "--y",
            "linear_top1",
            "--out",
            str(tmp_path / "fit.json"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    # the numbers: runs present, the law's parameters, and the runs it needs
    assert "3 runs" in err and "saturating has 4 free parameters" in err and "at least 5 runs" in err


def test_non_positive_x_names_column_and_lines(tmp_path, capsys) -> None:
    rows = _rows(6)
    rows[2] = rows[2].replace(f",{6e17 * 16},", ",0,")
    err = _fit_error(tmp_path, rows, capsys=capsys)
    assert "'flops'" in err and "line 4" in err and "r2" in err and "> 0" in err


def test_nan_value_names_column_and_lines(tmp_path, capsys) -> None:
    rows = _rows(6)
    rows[4] = rows[4].rsplit(",", 1)[0] + ",nan"
    err = _fit_error(tmp_path, rows, capsys=capsys)
    assert "'value'" in err and "line 6" in err and "r4" in err


def test_duplicate_runs_are_named(tmp_path, capsys) -> None:
    rows = _rows(6) + [_rows(6)[3]]
    err = _fit_error(tmp_path, rows, capsys=capsys)
    assert "duplicate runs" in err and "r3" in err and "lines 5, 8" in err


def test_missing_column_lists_the_columns_there(tmp_path, capsys) -> None:
    err = _fit_error(tmp_path, _rows(6), "--x", "gflops", capsys=capsys)
    assert "no column 'gflops'" in err and "flops" in err


def test_accuracy_outside_unit_interval(tmp_path, capsys) -> None:
    rows = _rows(6)
    rows[1] = rows[1].rsplit(",", 1)[0] + ",53.0"  # a percentage, not a fraction
    err = _fit_error(tmp_path, rows, capsys=capsys)
    assert "outside [0, 1]" in err and "r1" in err


def test_unknown_metric_and_empty_filter(tmp_path, capsys) -> None:
    err = _fit_error(tmp_path, _rows(6), "--where", "recipe=mae", capsys=capsys)
    assert "leaves no rows" in err and "wsp" in err
    code = main(
        ["fit", str(_csv(tmp_path, _rows(6))), "--law", "power", "--y", "knn_top1", "--out", str(tmp_path / "f.json")]
    )
    assert code == 2 and "no metric 'knn_top1'" in capsys.readouterr().err


def test_library_raises_data_error_too(tmp_path) -> None:
    rows = _rows(5)
    rows[0] = rows[0].replace("r0,m,", "r0,m,-3")
    with pytest.raises(DataError, match="'params'"):
        select(read_table(_csv(tmp_path, rows)), get_law("chinchilla"), ["params", "samples"], "linear_top1")


def test_curves_with_repeated_steps_or_nan_loss() -> None:
    lr = lr_schedule("cosine", 1e-3, 100, warmup=10)
    bad_steps = Curve("a", np.array([10, 20, 20, 30]), np.array([3.0, 2.5, 2.4, 2.3]), lr)
    with pytest.raises(DataError, match="run a: steps repeat"):
        curve_points([bad_steps], ("S1", "S2"))
    nan_loss = Curve("b", np.array([10, 20, 30]), np.array([3.0, np.nan, 2.3]), lr)
    with pytest.raises(DataError, match="run b: NaN"):
        curve_points([nan_loss], ("S1", "S2"))


def test_non_convergence_warns_and_reports_best_attempt(tmp_path, capsys, monkeypatch) -> None:
    real = refine.minimize

    def starved(*args, **kwargs):  # an optimiser that gives up after two iterations
        kwargs["options"] = {**kwargs["options"], "maxiter": 2}
        return real(*args, **kwargs)

    monkeypatch.setattr(refine, "minimize", starved)
    data = FitData(
        {"x": np.geomspace(1e18, 1e22, 10)},
        np.geomspace(0.5, 0.2, 10) * (1 + 0.01 * np.sin(np.arange(10))),
        np.array([f"r{i}" for i in range(10)]),
    )
    with pytest.warns(FitWarning, match="did not converge"):
        result = fit(get_law("saturating"), data)
    assert not result.converged and np.isfinite(result.objective)

    csv = synthetic_results(tmp_path / "r.csv", recipes={"wsp": 60.0})
    out = tmp_path / "fit.json"
    assert (
        main(["fit", str(csv), "--law", "saturating", "--y", "linear_top1", "--bootstrap", "0", "--out", str(out)]) == 0
    )
    captured = capsys.readouterr()
    assert "warning:" in captured.err and "did not converge" in captured.err
    assert "NOT CONVERGED" in captured.out
    assert json.loads(out.read_text())["converged"] is False
