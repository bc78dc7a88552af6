"""M4 (Alabdulmohsin et al. 2022): the implicit law solved per point, fitted like every other law."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scaling.laws import m4
from scaling.laws.cli import main
from scaling.laws.fit import fit
from scaling.laws.laws import get_law
from scaling.laws.problem import FitData
from scaling.laws.table import write_table

# (c, alpha, x0, eps_inf, eps_0): a steep and a shallow transition, alpha above and below 1
CASES = [(-0.6, 1.2, 1e4, 0.15, 0.9), (-0.35, 0.5, 3e3, 0.3, 1.0), (-1.0, 2.5, 1e5, 0.05, 0.7)]


def _theta(c: float, alpha: float, x0: float, eps_inf: float, eps_0: float) -> list[float]:
    return [c, alpha, float(np.log(x0)), eps_inf, eps_0 - eps_inf]


@pytest.mark.parametrize("case", CASES)
def test_predictions_satisfy_the_papers_implicit_relation(case) -> None:
    c, alpha, x0, eps_inf, eps_0 = case
    law = get_law("m4")
    x = np.geomspace(1e1, 1e8, 50)
    L = law.predict({"x": x}, _theta(*case))
    beta = m4.reported(dict(zip(law.params, _theta(*case))))["beta"]
    assert np.all((L > eps_inf) & (L < eps_0))
    np.testing.assert_allclose((L - eps_inf) / (eps_0 - L) ** alpha, beta * x**c, rtol=1e-9)
    # the inverse gives back x where the curve is not flat to machine precision
    p = dict(zip(law.params, _theta(*case)))
    inside = (L - eps_inf > 1e-6) & (eps_0 - L > 1e-6)
    np.testing.assert_allclose(law.inverse(p, L[inside]), x[inside], rtol=1e-6)


def test_basis_gradient_matches_finite_differences() -> None:
    law, x = get_law("m4"), {"x": np.geomspace(1e1, 1e8, 30)}
    for case in CASES:
        nl = np.array(_theta(*case)[:3])
        grad = law.basis_grad(x, list(nl))
        for j in range(3):
            h = np.zeros(3)
            h[j] = 1e-6
            num = (law.basis(x, list(nl + h)) - law.basis(x, list(nl - h))) / 2e-6
            np.testing.assert_allclose(grad[:, :, j], num, atol=1e-7)


@pytest.mark.parametrize("case", CASES)
def test_noiseless_curve_gives_back_the_papers_parameters(case) -> None:
    c, alpha, x0, eps_inf, eps_0 = case
    law = get_law("m4")
    x = np.geomspace(x0 / 1e3, x0 * 1e3, 30)
    y = law.predict({"x": x}, _theta(*case))
    result = fit(law, FitData({"x": x}, y, np.array([f"r{i}" for i in range(len(x))])))
    assert result.converged
    got = {**result.params(), **m4.reported(result.params())}
    truth = {"c": c, "alpha": alpha, "eps_inf": eps_inf, "eps_0": eps_0, "beta": m4.reported(
        dict(zip(law.params, _theta(*case))))["beta"]}
    for name, value in truth.items():
        assert got[name] == pytest.approx(value, rel=1e-3), f"{name}: {got[name]} vs truth {value}"


def test_alpha_zero_is_a_power_law_with_a_floor_capped_at_eps_0() -> None:
    law = get_law("m4")
    x = np.geomspace(1e1, 1e6, 20)
    L = law.predict({"x": x}, [-0.5, 0.0, np.log(1e3), 0.1, 0.5])
    expect = 0.1 + 0.5 * np.minimum((x / 1e3) ** -0.5, 1.0)
    np.testing.assert_allclose(L, expect, rtol=1e-7)


def test_cli_fits_m4_with_holdout_prediction_and_reported_parameters(tmp_path, capsys) -> None:
    law = get_law("m4")
    rng = np.random.default_rng(0)
    flops = np.geomspace(1e17, 1e22, 14)
    err = law.predict({"x": flops}, _theta(-0.4, 1.0, 1e19, 0.2, 0.95)) * np.exp(0.005 * rng.standard_normal(14))
    rows = [
        {"run": f"r{i}", "model": "m", "params": 1e8, "samples": 1e9, "flops": f, "total_flops": f,
         "recipe": "wsp", "metric": "linear_top1", "value": 1 - e}
        for i, (f, e) in enumerate(zip(flops, err))
    ]
    table = tmp_path / "results.csv"
    write_table(rows, table)
    out = tmp_path / "fit.json"
    code = main(["fit", str(table), "--law", "m4", "--y", "linear_top1", "--holdout", "2", "--bootstrap", "30",
                 "--predict", "1e23", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    report = json.loads(out.read_text())
    assert report["law"] == "m4"
    for name in ("c", "alpha", "log_x0", "eps_inf", "span", "eps_0", "beta"):
        p = report["params"][name]
        assert p["lo"] <= p["value"] <= p["hi"], name
    assert report["params"]["eps_0"]["value"] == pytest.approx(0.95, rel=0.05)
    assert len(report["holdout"]) == 2 and report["holdout_summary"]["median_abs_rel_error"] < 0.05
    truth_at = law.predict({"x": np.array([1e23])}, _theta(-0.4, 1.0, 1e19, 0.2, 0.95))[0]
    pred = report["derived"]["predictions"][0]
    assert pred["lo"] <= truth_at <= pred["hi"], pred
    assert "eps_0" in capsys.readouterr().out
    fig = tmp_path / "fig.png"
    assert main(["plot", str(table), "--fit", str(out), "--out", str(fig)]) == 0 and fig.stat().st_size > 0
