"""Stage-1 compute in every compute axis: collect writes flops and total_flops, fit and plot put
total_flops on the axis by default, and an unknown total is an error unless --compute flops."""

from __future__ import annotations

import csv
import json
import struct

import numpy as np
import pytest
from laws_fixtures import make_run_dir

from scaling.laws.cli import main
from scaling.laws.results import collect
from scaling.laws.table import DataError, write_table


def _summary(d, **changes) -> None:
    path = d / "summary.json"
    s = json.loads(path.read_text())
    s.update(changes)
    path.write_text(json.dumps(s))


def _by_run(rows: list[dict]) -> dict[str, dict]:
    return {r["run"]: r for r in rows if r["metric"] == "loss"}


def test_total_flops_counts_the_init_from_chain(tmp_path) -> None:
    mae = make_run_dir(tmp_path, "mae_b16", 8.6e7, 10**6, 3e17, 0.4, recipe="mae")
    wsp = make_run_dir(tmp_path, "wsp_b16", 8.6e7, 10**6, 1e17, 2.7, recipe="wsp")
    stage2 = make_run_dir(tmp_path, "mae_wsp_b16", 8.6e7, 10**6, 1e17, 2.5)  # old summary: no total_flops
    _summary(stage2, init_from=str(mae))
    given = make_run_dir(tmp_path, "given", 8.6e7, 10**6, 1e17, 2.5)
    _summary(given, init_from="elsewhere/ckpt", total_flops=5e17)  # the engine's own total wins
    rows = _by_run(collect([mae, wsp, stage2, given]))
    assert rows["wsp_b16"]["total_flops"] == rows["wsp_b16"]["flops"] == 1e17  # no init_from: the same
    assert rows["mae_wsp_b16"]["flops"] == 1e17 and rows["mae_wsp_b16"]["total_flops"] == pytest.approx(4e17)
    assert rows["given"]["total_flops"] == 5e17


def test_total_flops_from_an_exported_stage_one(tmp_path) -> None:
    header = json.dumps({"__metadata__": {"total_flops": "2e17", "flops": "2e17", "stage": "mae"}}).encode()
    export = tmp_path / "mae.safetensors"
    export.write_bytes(struct.pack("<Q", len(header)) + header)
    run = make_run_dir(tmp_path, "mae_wsp", 8.6e7, 10**6, 1e17, 2.5)
    _summary(run, init_from=str(export))
    assert _by_run(collect([run]))["mae_wsp"]["total_flops"] == pytest.approx(3e17)
    _summary(run, init_from_flops=7e17)  # the config key overrides the file
    assert _by_run(collect([run]))["mae_wsp"]["total_flops"] == pytest.approx(8e17)


def test_unknown_stage_one_compute_is_an_error_or_explicitly_flops(tmp_path, capsys) -> None:
    run = make_run_dir(tmp_path, "mae_wsp_l16", 3e8, 10**6, 1e18, 2.5)
    _summary(run, init_from="/gone/mae_l16", init_from_flops=None, total_flops=None)
    with pytest.raises(DataError, match=r"mae_wsp_l16 \(init_from '/gone/mae_l16'\).*--compute flops"):
        collect([run])
    out = tmp_path / "r.csv"
    assert main(["results", "collect", str(run), "--out", str(out)]) == 2
    assert "init_from_flops" in capsys.readouterr().err
    assert main(["results", "collect", str(run), "--compute", "flops", "--out", str(out)]) == 0
    (row, *_) = list(csv.DictReader(out.open()))
    assert row["flops"] == "1e+18" and row["total_flops"] == ""
    # a table with an unknown total cannot put total_flops on the axis; --compute flops can
    fit_args = ["fit", str(out), "--law", "power", "--bootstrap", "0", "--out", str(tmp_path / "f.json")]
    assert main(fit_args) == 2
    assert "total_flops is empty" in capsys.readouterr().err


def test_collect_a_sweep_directory(tmp_path) -> None:
    sweep = tmp_path / "sweep"
    mae = make_run_dir(sweep / "runs", "mae_s", 1e7, 10**5, 2e16, 0.5, recipe="mae")
    make_run_dir(sweep / "runs", "mae_wsp_s", 1e7, 10**5, 1e16, 2.5)
    (sweep / "runs" / "mae_wsp_m").mkdir()  # planned, not run yet
    with (sweep / "sweep.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["run", "run_dir", "stage", "recipe", "depends_on"])
        w.writeheader()
        w.writerow({"run": "mae_s", "run_dir": "runs/mae_s", "stage": "mae", "recipe": "mae", "depends_on": ""})
        for name in ("mae_wsp_s", "mae_wsp_m"):
            w.writerow(
                {"run": name, "run_dir": f"runs/{name}", "stage": "wsp", "recipe": "mae_wsp", "depends_on": "mae_s"}
            )
    with pytest.raises(DataError, match=r"1 run\(s\) without summary.json.*mae_wsp_m.*--skip-incomplete"):
        collect([sweep])
    with pytest.warns(UserWarning, match=r"1 run\(s\) without summary.json.*mae_wsp_m; skipped"):
        rows = _by_run(collect([sweep], skip_incomplete=True))
    assert set(rows) == {"mae_s", "mae_wsp_s"}
    # sweep.csv's depends_on names the stage-1 run where the summary has no init_from
    assert rows["mae_wsp_s"]["total_flops"] == pytest.approx(3e16)
    assert mae.is_dir()


def _two_recipe_table(path, with_total: bool = True) -> None:
    # MAE->WSP reaches each error with half the stage-2 compute of WSP, but pays 2e19 for stage 1.
    rows = []
    for recipe, a, stage1 in (("wsp", 60.0, 0.0), ("mae_wsp", 55.0, 2e19)):
        for i, c in enumerate(np.geomspace(1e19, 1e22, 8)):
            base = {"run": f"{recipe}_{i}", "model": "m", "params": 1e8, "samples": 1e6, "flops": c, "recipe": recipe}
            if with_total:
                base["total_flops"] = c + stage1
            rows.append({**base, "metric": "linear_top1", "value": 1 - a * (c + stage1) ** -0.12})
    old = ("run", "model", "params", "samples", "flops", "recipe", "metric", "value")  # before total_flops
    write_table(rows, path) if with_total else write_table(rows, path, first=old)


def test_fit_and_plot_use_total_flops_by_default(tmp_path, capsys) -> None:
    csv_path = tmp_path / "r.csv"
    _two_recipe_table(csv_path)
    out = tmp_path / "f.json"
    common = ["--law", "power", "--y", "linear_top1", "--group-by", "recipe", "--bootstrap", "0"]
    assert main(["fit", str(csv_path), *common, "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["x"] == "total_flops" and report["compute"].startswith("total_flops")
    # on total compute both recipes follow the same law exactly; on stage-2 FLOPs MAE->WSP looks better
    b_total = [report["params"][f"b[{r}]"]["value"] for r in ("wsp", "mae_wsp")]
    assert b_total == pytest.approx([-0.12, -0.12], abs=1e-3)
    assert main(["fit", str(csv_path), *common, "--compute", "flops", "--out", str(tmp_path / "g.json")]) == 0
    assert json.loads((tmp_path / "g.json").read_text())["x"] == "flops"

    from scaling.laws import plots

    seen = []
    real = plots.save
    plots.save = lambda fig, path: seen.append(fig.axes[0].get_xlabel()) or real(fig, path)
    try:
        assert main(["plot", str(csv_path), "--fit", str(out), "--out", str(tmp_path / "c.png")]) == 0
        assert (
            main(["plot", str(csv_path), "--compute", "flops", "--y", "linear_top1", "--out", str(tmp_path / "d.png")])
            == 0
        )
    finally:
        plots.save = real
    assert "total" in seen[0] and "stage-1" in seen[0]
    assert "this stage only" in seen[1]


def test_old_table_without_total_flops_is_refused_for_stage_one_recipes(tmp_path, capsys) -> None:
    csv_path = tmp_path / "old.csv"
    _two_recipe_table(csv_path, with_total=False)
    args = ["fit", str(csv_path), "--law", "power", "--y", "linear_top1", "--group-by", "recipe", "--bootstrap", "0"]
    assert main([*args, "--out", str(tmp_path / "f.json")]) == 2
    err = capsys.readouterr().err
    assert "no total_flops column" in err and "--compute flops" in err
    assert main([*args, "--compute", "flops", "--out", str(tmp_path / "f.json")]) == 0
