"""`scaling advise --grid` writes the runs a sweep would train; `--sweep-spec` writes the chosen ones as a spec
that `scaling sweep` turns into exactly those runs; the multiplier decision between two recipes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from scaling.advise.cli import main
from scaling.laws.table import read_table, write_table
from scaling.sweep.cli import main as sweep_main

REPO = Path(__file__).resolve().parents[2]
TINY = str(REPO / "jobs" / "sweeps" / "tiny_cpu.yaml")


def test_grid_then_advise_then_sweep_runs_exactly_the_chosen_runs(tmp_path, capsys) -> None:
    cands = tmp_path / "grid.csv"
    assert main(["--grid", "--spec", TINY, "--out", str(cands)]) == 0
    grid = read_table(cands)
    assert len(grid) == 18  # 3 models x 3 budgets x 2 recipes; the shared stage-1 runs are not a choice
    assert set(grid.column("recipe")) == {"mae_wsp", "wsp"}
    assert (grid.numbers("total_flops") >= grid.numbers("flops")).all()
    # done: the two smaller models; left to choose from: vit_tiny_patch16's six runs
    rng = np.random.default_rng(0)
    done = [dict(zip(grid.columns, row)) for row in zip(*grid.columns.values())]
    results = []
    for r in done:
        if r["model"] == "vit_tiny_patch16":
            continue
        a = {"wsp": 3.0, "mae_wsp": 2.0}[r["recipe"]]
        err = a * float(r["total_flops"]) ** -0.15 * np.exp(0.01 * rng.standard_normal())
        results.append({**r, "metric": "linear_top1", "value": 1 - err})
    write_table(results, tmp_path / "results.csv")
    write_table(done, tmp_path / "candidates.csv", first=tuple(grid.columns))  # the whole grid, trained runs too
    out, spec = tmp_path / "advice.json", tmp_path / "next.yaml"
    code = main([str(tmp_path / "results.csv"), "--law", "power", "--x", "total_flops", "--y", "linear_top1",
                 "--group-by", "recipe", "--decision", "multiplier@0.92", "--compare", "wsp,mae_wsp",
                 "--candidates", str(tmp_path / "candidates.csv"), "--k", "2", "--bootstrap", "200",
                 "--out", str(out), "--sweep-spec", str(spec), "--spec", TINY])
    assert code == 0, capsys.readouterr().err
    advice = json.loads(out.read_text())
    d = advice["decision"]
    assert d["kind"] == "multiplier" and d["base"] == "wsp" and d["new"] == "mae_wsp"
    assert d["lo"] < d["value"] < d["hi"] and d["value"] > 1  # mae_wsp reaches 0.92 with less compute
    chosen = {(c["model"], int(c["samples"]), c["recipe"]) for c in advice["chosen"]}
    assert len(chosen) == 2 and {m for m, _, _ in chosen} == {"vit_tiny_patch16"}
    assert len(advice["skipped_already_trained"]) == 12 and len(advice["ranked"]) == 6
    specs = [Path(p) for p in advice["sweep_specs"]]
    written = set()
    for i, s in enumerate(specs):
        assert sweep_main([str(s), "--out", str(tmp_path / f"sweep{i}")]) == 0
        with (tmp_path / f"sweep{i}" / "sweep.csv").open() as fh:
            written |= {(r["model"], int(r["samples"]), r["recipe"]) for r in csv.DictReader(fh)
                        if not r["run"].startswith("mae1-")}
    assert written == chosen


def test_grid_from_models_and_samples_and_its_errors(tmp_path, capsys) -> None:
    out = tmp_path / "c.csv"
    assert main(["--grid", "--models", "vit_base_patch16,vit_large_patch16", "--samples", "1e9,2e9",
                 "--out", str(out)]) == 0
    t = read_table(out)
    assert len(t) == 4 and set(t.column("recipe")) == {"wsp"}
    params = dict(zip(t.column("model"), t.numbers("params")))
    assert params["vit_base_patch16"] == 85798656  # the registry's count (DESIGN.md: B/16 85.8M)
    capsys.readouterr()
    assert main(["--grid", "--models", "vit_nope", "--samples", "1e9", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "vit_nope" in err
    assert main(["--grid", "--out", str(out)]) == 2
    assert "--grid needs --spec" in capsys.readouterr().err
