"""`--where` binds the candidates as it binds the fit: a run of another recipe is never proposed for a fit of
one recipe, and a run already in the results (of any recipe) is never proposed again."""

from __future__ import annotations

import json

import numpy as np

from scaling.advise.cli import main
from scaling.laws.table import write_table


def _rows(recipe: str, compute: np.ndarray, acc: np.ndarray) -> list[dict]:
    return [{"run": f"{recipe}-n{int(c)}", "model": "m", "params": 1e4, "samples": c / 1e4, "flops": c,
             "total_flops": c, "recipe": recipe, "metric": "val_top1", "value": a} for c, a in zip(compute, acc)]


def test_where_filters_candidates_and_trained_runs_of_other_recipes_are_not_proposed(tmp_path, capsys):
    compute = np.geomspace(1e9, 3e10, 6)
    rng = np.random.default_rng(0)
    error = 0.9 * (compute / 1e9) ** -0.3 * np.exp(0.02 * rng.standard_normal(6))
    rows = _rows("mae_wsp", compute, 1 - error) + _rows("wsp", compute, 1 - 1.1 * error)
    results = tmp_path / "results.csv"
    write_table(rows, results, first=("run",))
    # Candidates: the cheapest wsp run (already trained), new wsp runs, new mae_wsp runs; wsp ones are cheaper,
    # so a fit of mae_wsp alone would take them if --where did not bind the candidates.
    cands = [{"run": f"{r}-n{int(c)}", "model": "m", "params": 1e4, "samples": c / 1e4, "flops": c / f,
              "total_flops": c, "recipe": r}
             for r, f in (("wsp", 100.0), ("mae_wsp", 1.0)) for c in [compute[0], 6e10, 1.2e11]]
    write_table(cands, tmp_path / "cands.csv", first=("run",))
    code = main([str(results), "--law", "power", "--x", "total_flops", "--y", "val_top1", "--y-kind", "accuracy",
                 "--where", "recipe=mae_wsp", "--decision", "predict@total_flops=2.4e11", "--candidates",
                 str(tmp_path / "cands.csv"), "--k", "2", "--out", str(tmp_path / "advice.json")])
    assert code == 0, capsys.readouterr()
    advice = json.loads((tmp_path / "advice.json").read_text())
    proposed = [c["run"] for c in advice["ranked"]] + [c["run"] for c in advice["chosen"]]
    assert proposed and all(run.startswith("mae_wsp-") for run in proposed), proposed
    assert f"mae_wsp-n{int(compute[0])}" in advice["skipped_already_trained"]
    assert f"wsp-n{int(compute[0])}" not in proposed
