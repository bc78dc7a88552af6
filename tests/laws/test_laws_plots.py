"""Figures come out of a results table and a fit: files exist, are valid images, have the expected series."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import matplotlib.image as mpimg
import numpy as np
import pytest
from laws_fixtures import make_run_dir, synthetic_results
from laws_simulate import TRUTH, inputs

from scaling.laws import plots
from scaling.laws.cli import main
from scaling.laws.convergence import read_run_curves
from scaling.laws.laws import get_law
from scaling.laws.report import load_fit
from scaling.laws.results import select
from scaling.laws.table import read_table, write_table


def _legend(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]


def _assert_png(path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100


@pytest.fixture
def chinchilla_table(tmp_path):
    X, _ = inputs("chinchilla")
    law = get_law("chinchilla")
    loss = law.predict(X, [TRUTH["chinchilla"][p] for p in law.params])
    rows = [
        {
            "run": f"r{i}",
            "model": "m",
            "params": n,
            "samples": d,
            "flops": 6 * n * d,
            "recipe": "x",
            "metric": "loss",
            "value": v,
        }
        for i, (n, d, v) in enumerate(zip(X["N"], X["D"], loss))
    ]
    write_table(rows, tmp_path / "chin.csv")
    return tmp_path / "chin.csv"


def test_compute_figure_per_recipe_with_fit_band_and_held_out_runs(tmp_path) -> None:
    csv = synthetic_results(tmp_path / "r.csv")
    fit_json = tmp_path / "fit.json"
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
                "--frontier",
                "pareto",
                "--holdout",
                "2",
                "--bootstrap",
                "20",
                "--out",
                str(fit_json),
            ]
        )
        == 0
    )
    png = tmp_path / "compute.png"
    assert main(["plot", str(csv), "--fit", str(fit_json), "--out", str(png)]) == 0
    _assert_png(png)

    fit, draws, report = load_fit(fit_json)
    sel = select(read_table(csv), fit.law, ["flops"], "linear_top1", [], "recipe")
    fig = plots.compute_figure(sel, fit, draws, "pareto", tuple(h["run"] for h in report["holdout"]))
    labels = _legend(fig)
    # per recipe: its runs (frontier filled), its held-out run, its fit
    assert len(labels) == 6
    for recipe in ("wsp", "mae_wsp"):
        assert sum(label.startswith(recipe + " ") for label in labels) == 3
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and "FLOPs" in ax.get_xlabel() and "accuracy" in ax.get_ylabel()
    assert len(ax.collections) >= 2 + 2  # scattered runs and one interval band per recipe
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert len(dashed) == 2  # extrapolation beyond each recipe's data
    # with few runs FIT.json's intervals are widened (t / z); the bands drawn from the same draws follow
    held = tuple(h["run"] for h in report["holdout"])
    wide = plots.compute_figure(sel, fit, draws, "pareto", held, widen=2.0).axes[0]

    def band_area(axis) -> float:  # the bands' polygons, by the shoelace formula on (log x, y)
        total = 0.0
        for c in axis.collections:
            v = c.get_paths()[0].vertices if c.get_paths() else np.zeros((0, 2))
            if len(v) > 50:
                x, y = np.log(v[:, 0]), v[:, 1]
                total += 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
        return total

    assert band_area(wide) == pytest.approx(2.0 * band_area(ax), rel=0.1)


def test_isoflop_and_allocation_figures_as_pdf_and_svg(tmp_path, chinchilla_table) -> None:
    fit_json = tmp_path / "chin.json"
    assert (
        main(
            [
                "fit",
                str(chinchilla_table),
                "--law",
                "chinchilla",
                "--bootstrap",
                "20",
                "--allocate",
                "1e21",
                "--out",
                str(fit_json),
            ]
        )
        == 0
    )
    pdf, svg = tmp_path / "iso.pdf", tmp_path / "alloc.svg"
    assert main(["plot", str(chinchilla_table), "--kind", "isoflop", "--fit", str(fit_json), "--out", str(pdf)]) == 0
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert main(["plot", str(chinchilla_table), "--kind", "allocation", "--fit", str(fit_json), "--out", str(svg)]) == 0
    assert ET.parse(svg).getroot().tag.endswith("svg")

    fit, draws, _ = load_fit(fit_json)
    sel = select(read_table(chinchilla_table), fit.law, ["params", "samples"], "loss")
    iso = plots.isoflop_figure(sel, fit, 6.0)
    budgets = [t for t in _legend(iso) if t.startswith("C = ")]
    assert len(budgets) >= 3 and "fitted optimum N_opt(C)" in _legend(iso)
    alloc = plots.allocation_figure(fit, draws, 6.0, (1e19, 1e24), (1e19, 1e22))
    assert _legend(alloc) == ["N_opt (fit)", "D_opt (fit)"]
    assert all(ax.get_yscale() == "log" for ax in alloc.axes)


def test_curves_figure_one_series_per_run(tmp_path) -> None:
    dirs = [make_run_dir(tmp_path, f"run{i}", 5e6, 6400, 1e14, 2.2, steps=120 + 40 * i) for i in range(3)]
    fit_json = tmp_path / "conv.json"
    assert (
        main(
            [
                "fit",
                *map(str, dirs),
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
    png = tmp_path / "curves.png"
    assert main(["plot", *map(str, dirs), "--kind", "curves", "--fit", str(fit_json), "--out", str(png)]) == 0
    _assert_png(png)
    fit, draws, _ = load_fit(fit_json)
    fig = plots.curves_figure(read_run_curves(dirs), fit, draws, fitted_until=0.5)
    assert _legend(fig) == ["run0", "run1", "run2"]
    assert fig.axes[0].get_xlabel() == "samples seen"


def test_unknown_format_and_wrong_fit_kind(tmp_path, capsys) -> None:
    csv = synthetic_results(tmp_path / "r.csv")
    assert main(["plot", str(csv), "--y", "linear_top1", "--out", str(tmp_path / "f.jpg")]) == 2
    assert ".png, .pdf or .svg" in capsys.readouterr().err
    fit_json = tmp_path / "p.json"
    assert (
        main(["fit", str(csv), "--law", "power", "--y", "linear_top1", "--bootstrap", "0", "--out", str(fit_json)]) == 0
    )
    assert main(["plot", str(csv), "--kind", "isoflop", "--fit", str(fit_json), "--out", str(tmp_path / "i.png")]) == 2
    assert "chinchilla" in capsys.readouterr().err
    assert np.isfinite(load_fit(fit_json)[0].values).all()
