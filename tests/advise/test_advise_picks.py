"""On a Chinchilla surface with a known optimum, the run advise picks narrows the N_opt interval more than a
randomly picked run, measured by really adding the run (drawn from the truth with noise) and refitting."""

from __future__ import annotations

import numpy as np
import pytest
from advise_helpers import candidate_grid, loss, result_rows, small_sweep, write_candidates

from scaling.advise.advice import Request, advise
from scaling.laws.decisions import allocate, evaluate
from scaling.laws.laws import get_law
from scaling.laws.pipeline import FitOptions, fit_table
from scaling.laws.results import select
from scaling.laws.table import read_table, write_table

C = 1e21
BOOT = 60


def _n_opt_width(path, seed: int):
    sel = select(read_table(path), get_law("chinchilla"), ["params", "samples"], "loss")
    out = fit_table(get_law("chinchilla"), sel, FitOptions(bootstrap=BOOT, seed=seed))
    k = 6.0
    f = {"n": lambda t: allocate(dict(zip(out.fit.law.params, t)), C, k)["N_opt"]}
    iv = evaluate(out.fit, out.boot, f, 0.9)["n"]
    with np.errstate(all="ignore"):
        width = float(np.log(iv["hi"] / iv["lo"])) if iv["lo"] > 0 else float(np.log(iv["hi"]) + 50)
    return out, sel, width


def _with_run(tmp_path, rows: list[dict], n: float, d: float, rng, name: str) -> object:
    y = loss(np.array([n]), np.array([d]), 0.02, rng)
    extra = result_rows(np.array([n]), np.array([d]), y, prefix=name)
    path = tmp_path / f"{name}.csv"
    write_table(rows + extra, path)
    return path


@pytest.mark.slow
def test_first_pick_narrows_n_opt_more_than_a_random_pick(tmp_path) -> None:
    cn, cd = candidate_grid()
    cands = read_table(write_candidates(tmp_path / "candidates.csv", cn, cd))
    wins, ties = 0, 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        n, d = small_sweep(rng)
        rows = result_rows(n, d, loss(n, d, 0.02, rng))
        base = tmp_path / f"base{seed}.csv"
        write_table(rows, base)
        out, sel, _ = _n_opt_width(base, seed)
        # kappa 0: one run each, so the comparison is information per run, not per FLOP
        advice = advise(out.fit, out.boot.samples, out.boot.factor(), sel, cands,
                        Request(f"n_opt@{C:g}", 1, kappa=0.0))
        pick = int(advice["chosen"][0]["run"][1:])
        other = int(rng.integers(len(cn)))
        obs = np.random.default_rng(1000 + seed)  # the same noise draw for both runs: paired
        w_pick = _n_opt_width(_with_run(tmp_path, rows, cn[pick], cd[pick], obs, f"a{seed}_"), seed)[2]
        obs = np.random.default_rng(1000 + seed)
        w_rand = _n_opt_width(_with_run(tmp_path, rows, cn[other], cd[other], obs, f"b{seed}_"), seed)[2]
        ties += pick == other
        wins += w_pick < w_rand
    assert wins >= 11, f"advise's pick narrowed N_opt more than a random pick in {wins} of 20 seeds ({ties} ties)"
