"""`scaling advise`: the greedy rank-one updates equal explicit conditioning, ADVICE.json holds what the issue
asks, the stop verdict follows the value of information, and every bad input is a one-line error."""

from __future__ import annotations

import json

import numpy as np
import pytest
from advise_helpers import candidate_grid, loss, result_rows, small_sweep, write_candidates
from scipy.stats import norm

from scaling.advise import score
from scaling.advise.cli import main
from scaling.laws.cli import main as laws_main
from scaling.laws.table import write_table


def test_greedy_rank_one_updates_equal_explicit_conditioning() -> None:
    rng = np.random.default_rng(0)
    B, M = 400, 25
    latent = rng.standard_normal((B, 4))
    F = latent @ rng.standard_normal((4, M)) + 0.1 * rng.standard_normal((B, M))
    g = latent @ rng.standard_normal(4)
    noise = rng.uniform(0.05, 0.5, M)
    cost = rng.uniform(1.0, 10.0, M)
    got = score.greedy(g, F, noise, cost, k=4, kappa=0.5)
    # reference: the joint covariance of (g, f) conditioned on each pick's noisy observation, explicitly
    S = np.cov(np.column_stack([g, F]), rowvar=False)
    chosen: list[int] = []
    var_after = S[0, 0]
    for pick in got.picks:
        # a covariance counts by how much it exceeds the noise of B draws over M candidates (score.py)
        se = np.sqrt((S[0, 0] * np.diag(S)[1:] + S[0, 1:] ** 2) / (B - 1))
        z = norm.ppf(1 - 0.05 / (2 * M))
        red = np.maximum(np.abs(S[0, 1:]) - z * se, 0) ** 2 / (np.diag(S)[1:] + noise)
        sc = red / cost**0.5
        sc[chosen] = -np.inf
        j = int(np.argmax(sc))
        assert pick.index == j
        assert pick.reduction == pytest.approx(red[j], rel=1e-9)
        col = S[:, 1 + j].copy()
        S = S - np.outer(col, col) / (S[1 + j, 1 + j] + noise[j])
        var_after -= red[j]
        assert pick.var_after == pytest.approx(var_after, rel=1e-9)
        chosen.append(j)


def test_cheap_runs_unrelated_to_the_decision_do_not_win_by_noise() -> None:
    # B draws show covariances of about se where there are none; the best of 200 cheap unrelated runs would
    # beat an informative run 100 times their cost per FLOP without the noise discount
    rng = np.random.default_rng(2)
    B = 50
    g = rng.standard_normal(B)
    informative = g + 0.3 * rng.standard_normal(B)
    unrelated = rng.standard_normal((B, 200))
    F = np.column_stack([informative, unrelated])
    cost = np.concatenate([[100.0], np.ones(200)])
    got = score.greedy(g, F, np.full(201, 0.05), cost, k=1)
    cov = ((g - g.mean()) @ (F - F.mean(axis=0))) / (B - 1)
    naive = cov**2 / (F.var(axis=0, ddof=1) + 0.05)
    assert np.mean(got.reduction[1:]) < 0.5 * np.mean(naive[1:])
    assert np.median(got.reduction[1:]) == 0.0
    assert got.picks[0].index == 0  # the informative run, at 100 times the cost
    assert np.argmax(naive / cost) != 0  # which the uncorrected score would have passed over


def test_greedy_respects_the_budget() -> None:
    rng = np.random.default_rng(1)
    F = rng.standard_normal((200, 6))
    g = F @ np.ones(6)
    cost = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    got = score.greedy(g, F, np.full(6, 0.1), cost, k=6, budget=7.0, kappa=0.0)
    assert sum(cost[p.index] for p in got.picks) <= 7.0 and len(got.picks) >= 2


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("advise")
    rng = np.random.default_rng(3)
    n, d = small_sweep(rng)
    write_table(result_rows(n, d, loss(n, d, 0.02, rng)), tmp / "results.csv")
    write_candidates(tmp / "candidates.csv", *candidate_grid())
    fit = tmp / "fit.json"
    assert laws_main(["fit", str(tmp / "results.csv"), "--law", "chinchilla", "--bootstrap", "40",
                      "--out", str(fit)]) == 0
    return tmp


def _advise(study, *args: str) -> tuple[int, dict | None]:
    out = study / "advice.json"
    out.unlink(missing_ok=True)
    code = main([str(study / "results.csv"), "--law", "chinchilla", "--fit", str(study / "fit.json"),
                 "--candidates", str(study / "candidates.csv"), "--out", str(out), *args])
    return code, json.loads(out.read_text()) if out.exists() else None


def test_advice_json_holds_decision_chosen_ranked_and_verdict(study, capsys) -> None:
    code, a = _advise(study, "--decision", "n_opt@1e21", "--k", "3")
    assert code == 0
    d = a["decision"]
    assert d["lo"] < d["value"] < d["hi"] and d["name"] == "N_opt" and "D_opt" in d["also"]
    assert len(a["chosen"]) == 3 and len(a["ranked"]) == 36
    for c in a["chosen"]:
        assert {"run", "model", "params", "samples", "flops", "score", "lo", "hi"} <= set(c)
        # each pick is expected to narrow the interval, and later picks narrow it further
        assert d["lo"] <= c["lo"] and c["hi"] <= d["hi"]
    assert a["chosen"][2]["hi"] <= a["chosen"][0]["hi"]
    assert [r["score"] for r in a["ranked"]] == sorted((r["score"] for r in a["ranked"]), reverse=True)
    assert a["chosen"][0]["run"] == a["ranked"][0]["run"]
    assert a["stop"]["verdict"] in ("train", "stop") and a["stop"]["expected_waste_flops_now"] > 0
    out = capsys.readouterr().out
    assert "N_opt" in out and "verdict" in out


def test_stop_verdict_follows_the_value_of_information(study) -> None:
    _, small = _advise(study, "--decision", "n_opt@1e21", "--stake", "1e12")
    _, big = _advise(study, "--decision", "n_opt@1e21", "--stake", "1e30")
    assert small["stop"]["verdict"] == "stop" and "worth its cost" in small["stop"]["reason"]
    assert big["stop"]["verdict"] == "train"
    # waste = stake * (alpha + beta) / 2 * Var(log N_opt): proportional to the stake
    ratio = big["stop"]["expected_waste_flops_now"] / small["stop"]["expected_waste_flops_now"]
    assert ratio == pytest.approx(1e18, rel=1e-9)


def test_predict_decision_and_cost_exponent(study) -> None:
    code, a = _advise(study, "--decision", "predict@params=1e9,samples=2e10", "--k", "2", "--cost-exponent", "0")
    assert code == 0 and a["decision"]["kind"] == "predict"
    assert a["decision"]["point"] == {"params": 1e9, "samples": 2e10}
    assert a["stop"]["stake_flops"] == pytest.approx(6 * 1e9 * 2e10, rel=0.05)  # k N D, k from the runs
    # with cost ignored the first pick is the most informative run, not the cheapest
    cheapest = min(r["flops"] for r in a["ranked"])
    assert a["chosen"][0]["flops"] > cheapest


BAD = [
    (["--decision", "optimum@1e21"], "unknown decision"),
    (["--decision", "n_opt@1e21", "--k", "99"], "--k 99"),
    (["--decision", "n_opt@1e21", "--k", "0"], "--k 0"),
    (["--decision", "predict@params=1e9"], "missing samples"),
    (["--decision", "multiplier@2.5"], "multiplier compares two recipes"),
]


@pytest.mark.parametrize(("args", "message"), BAD)
def test_bad_inputs_are_one_line_errors(study, capsys, args, message) -> None:
    code, a = _advise(study, *args)
    err = capsys.readouterr().err.strip()
    assert code == 2 and a is None
    assert err.count("\n") == 0 and message in err, err


def test_bad_files_are_one_line_errors(study, tmp_path, capsys) -> None:
    (tmp_path / "no_params.csv").write_text("run,samples,flops\nc0,1e9,6e16\n")
    (tmp_path / "empty.csv").write_text("run,model,params,samples,flops,total_flops,recipe,metric,value\n")
    (tmp_path / "no_cands.csv").write_text("run,params,samples,flops\n")
    cases = [
        ([str(study / "results.csv"), "--candidates", str(tmp_path / "no_params.csv")], "no column params"),
        ([str(tmp_path / "empty.csv"), "--candidates", str(study / "candidates.csv")], "no runs"),
        ([str(study / "results.csv"), "--candidates", str(tmp_path / "no_cands.csv")], "no candidates"),
    ]
    for head, message in cases:
        out = tmp_path / "a.json"
        code = main([*head, "--law", "chinchilla", "--decision", "n_opt@1e21", "--bootstrap", "20",
                     "--out", str(out)])
        err = capsys.readouterr().err.strip()
        assert code == 2 and not out.exists()
        assert err.count("\n") == 0 and message in err, err
    # a FIT.json of other data is refused, not silently reused
    other = tmp_path / "other.csv"
    other.write_text((study / "results.csv").read_text().replace("r00", "rX0"))
    code = main([str(other), "--law", "chinchilla", "--fit", str(study / "fit.json"), "--decision", "n_opt@1e21",
                 "--candidates", str(study / "candidates.csv"), "--out", str(tmp_path / "a.json")])
    assert code == 2 and "fitted to other data" in capsys.readouterr().err


def test_degenerate_draws_still_rank_and_the_fallback_spreads_the_design() -> None:
    # a near-degenerate fit: a third of the draws put log N_opt at +inf (B = 0); their order still informs
    rng = np.random.default_rng(4)
    F = rng.standard_normal((90, 3))
    g = F[:, 0].copy()
    g[g > np.quantile(g, 0.67)] = np.inf
    assert np.isfinite(score.finite_scores(g)).all()
    got = score.greedy(score.finite_scores(g), F, np.full(3, 0.01), np.ones(3), k=1)
    assert got.picks and got.picks[0].index == 0  # the run that predicts where N_opt runs off
    # no ranking possible: the space-filling pick is the far corner, not the cheap run beside the data
    runs = np.log(np.array([[1e7, 1e9], [2e7, 1e9], [1e7, 2e9], [2e7, 2e9]]))
    cands = np.log(np.array([[3e7, 1e9], [1e9, 1e11], [3e8, 1e10]]))
    assert score.space_filling(runs, cands, np.array([1.0, 1e4, 1e2]), 2) == [1, 2]
    assert score.space_filling(runs, cands, np.array([1.0, 1e4, 1e2]), 2, budget=200.0) == [2, 0]


def test_an_interval_keeps_the_draws_at_a_limit() -> None:
    from scaling.laws.bootstrap import interval

    # 10% of the draws infinite: the 95% bound is infinite, not the spread of the finite draws alone
    draws = np.concatenate([np.linspace(1.0, 2.0, 90), np.full(10, np.inf), [np.nan]])
    iv = interval(1.5, draws, 0.9)
    assert iv["hi"] == np.inf and 1.0 < iv["lo"] < 1.1
    assert interval(1.5, draws[:90], 0.9)["hi"] < 2.0
