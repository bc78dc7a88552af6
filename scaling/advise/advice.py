"""`scaling advise` end to end, as a function: fit (or reuse a FIT.json), carry every bootstrap draw to the
decision and to every candidate's prediction, pick K runs greedily (score.py), and build ADVICE.json."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scaling.advise import decision as decisions
from scaling.advise import score
from scaling.laws.bootstrap import interval, log_residuals
from scaling.laws.decisions import flops_per_param_sample
from scaling.laws.problem import Fit
from scaling.laws.results import Selection
from scaling.laws.table import DataError, Table

MIN_DRAWS = 10  # fewer usable draws than this cannot rank candidates: the space-filling fallback picks
NUMERIC = ("params", "samples", "flops", "total_flops", "gpu_hours", "seed")


@dataclass
class Request:
    decision: str
    k: int
    budget: float | None = None
    cost_column: str = "flops"
    kappa: float = 1.0
    stake: float | None = None
    compare: tuple[str, str] | None = None
    group_by: list[str] | None = None
    flops_per_param_sample: float | None = None
    level: float = 0.9
    target: str = "decision"  # or "region": V-optimal on the decision's target region where it has one
    extra: dict = field(default_factory=dict)  # copied into ADVICE.json (inputs, fit source)


def predict_draws(fit: Fit, draws: np.ndarray, X: dict[str, np.ndarray], group: int) -> np.ndarray:
    """[B, n] predictions of group `group` at X for every draw [B, p], in one call of the law's basis."""
    th = draws[:, fit.layout.index[group]]
    m = len(fit.law.nonlinear)
    with np.errstate(all="ignore"):
        basis = fit.law.basis(X, [th[:, j : j + 1] for j in range(m)])  # [B, n, k]
        return np.einsum("bnk,bk->bn", basis, th[:, m:])


def candidate_inputs(cands: Table, fit: Fit, sel: Selection, req: Request) -> tuple[dict, np.ndarray, np.ndarray]:
    """(X by law input [M], group index [M], cost [M]) of the candidates; missing columns are one error."""
    if len(cands) == 0:
        raise DataError(f"{cands.source}: no candidates (header only); list possible runs, or write a grid "
                        f"with `scaling advise --grid`")
    need = [*sel.x_columns, req.cost_column, *(req.group_by or [])]
    missing = [c for c in dict.fromkeys(need) if not cands.has(c)]
    if missing:
        raise DataError(f"{cands.source}: no column {', '.join(missing)}; candidates need the law's --x columns "
                        f"({', '.join(sel.x_columns)}), {req.cost_column} (their cost) and the group columns")
    if req.k < 1 or req.k > len(cands):
        raise DataError(f"--k {req.k}: choose between 1 and the {len(cands)} candidates in {cands.source}")
    X = {role: cands.numbers(col, positive=role in fit.law.log_inputs) for role, col in zip(fit.law.inputs,
                                                                                          sel.x_columns)}
    cost = cands.numbers(req.cost_column, positive=True)
    group = np.zeros(len(cands), dtype=int)
    if len(fit.layout.groups) > 1:
        labels = np.array(["|".join(v) for v in zip(*[cands.column(c).astype(str) for c in req.group_by or []])])
        unknown = sorted(set(labels) - set(fit.layout.groups))
        if unknown:
            raise DataError(f"{cands.source}: group {unknown[0]!r} was not fitted; groups are "
                            f"{', '.join(fit.layout.groups)}")
        group = np.array([fit.layout.groups.index(v) for v in labels])
    return X, group, cost


def _not_trained(cands: Table, results: Table) -> tuple[Table, list[str]]:
    """Candidates whose run name is already in the results (the same run again teaches nothing) dropped."""
    if not (cands.has("run") and results.has("run")) or len(cands) == 0:
        return cands, []
    names = cands.column("run").astype(str)
    done = np.isin(names, results.column("run").astype(str))
    if done.all():
        raise DataError(f"{cands.source}: every candidate is already in the results; list runs not yet trained")
    return cands.take(~done), names[done].tolist()


def _log_interval(value: float, log_draws: np.ndarray, level: float, widen: float) -> dict[str, float]:
    """The bootstrap interval of a positive decision, widened (t / z) in log space so it stays positive."""
    iv = interval(np.log(value) if value > 0 else np.nan, log_draws, level, widen)
    return {k: float(np.exp(v)) for k, v in iv.items()} | {"value": float(value)}


def _row(cands: Table, i: int) -> dict:
    out: dict = {}
    for col, values in cands.columns.items():
        v = values[i]
        if col in NUMERIC:
            try:
                v = float(v)
            except ValueError:
                pass
        out[col] = v
    return out


def advise(fit: Fit, draws: np.ndarray, widen: float, sel: Selection, cands: Table, req: Request,
           trained: Table | None = None) -> dict:
    """ADVICE.json's content for a fitted law, its bootstrap draws [B, p] and the candidates; `trained`: the
    whole results table, whose runs are not proposed again (default: the fitted rows)."""
    k_nd = req.flops_per_param_sample
    if k_nd is None and fit.law.name == "chinchilla" and sel.table.has("flops"):
        k_nd = flops_per_param_sample(sel.table.numbers("flops"), sel.data.X["N"], sel.data.X["D"])
    dec = decisions.parse(req.decision, fit, sel, req.group_by, k_nd, req.compare)
    cands, done = _not_trained(cands, sel.table if trained is None else trained)
    X, group, cost = candidate_inputs(cands, fit, sel, req)
    with np.errstate(all="ignore"):
        g_all = np.log(np.array([dec.g(t) for t in draws]))
    F = np.full((len(draws), len(cost)), np.nan)
    for gi in np.unique(group):
        sel_c = group == gi
        F[:, sel_c] = np.log(predict_draws(fit, draws, {k: v[sel_c] for k, v in X.items()}, int(gi)))
    region = dec.region(draws) if dec.region is not None and req.target == "region" else None
    ok = score.usable_draws(g_all, F, region)
    noise = np.zeros(len(fit.layout.groups))
    for gi in range(len(fit.layout.groups)):
        r = log_residuals(fit, sel.data, gi)
        noise[gi] = float(np.mean(r * r)) if len(r) else 0.0
    stake = dec.stake if req.stake is None else req.stake
    value = dec.g(fit.values)
    if ok.sum() >= MIN_DRAWS:
        ranking = score.greedy(score.finite_scores(g_all[ok]), F[ok], noise[group], cost, req.k, req.budget,
                               req.kappa, widen**2, None if region is None else region[ok])
        now = _log_interval(value, g_all[ok], req.level, widen)
    else:  # too few draws to rank by: the space-filling fallback below, nothing scored
        ranking = score.Ranking(float("nan"), np.zeros(len(cost)), np.zeros(len(cost)), [])
        now = {"value": float(value), "lo": float("nan"), "hi": float("nan")}
    voi = np.array([score.waste(stake, dec.weight, r) for r in ranking.reduction])
    explore = []
    # no ranked pick: explore, unless the decision is settled (its expected waste is below any run's cost)
    settled = score.waste(stake, dec.weight, ranking.var_now) <= cost.min()
    if not ranking.picks and not settled:
        runs = np.column_stack([np.log(sel.data.X[r]) for r in fit.law.inputs])
        explore = score.space_filling(runs, np.column_stack([np.log(X[r]) for r in fit.law.inputs]), cost,
                                      req.k, req.budget)
    extra = {}
    for name, f in dec.extra.items():
        with np.errstate(all="ignore"):
            extra[name] = _log_interval(f(fit.values), np.log([f(t) for t in draws[ok]]), req.level, widen)
    chosen = [{**_row(cands, j), "flops": float(cost[j]), "basis": "space-filling", "score": None,
               "variance_reduction": None, "lo": None, "hi": None, "value_of_information_flops": None,
               "worth_cost": None} for j in explore]
    for p in ranking.picks:
        lo, hi = score.expected_interval(value, now["lo"], now["hi"], ranking.var_now, p.var_after)
        v = score.waste(stake, dec.weight, p.reduction)
        chosen.append({**_row(cands, p.index), "flops": float(cost[p.index]), "basis": "variance", "score": p.score,
                       "variance_reduction": p.reduction, "lo": lo, "hi": hi, "value_of_information_flops": v,
                       "worth_cost": bool(v > cost[p.index]) if np.isfinite(v) else None})
    ranked = []
    for i in np.argsort(-ranking.score, kind="stable"):
        lo, hi = score.expected_interval(value, now["lo"], now["hi"], ranking.var_now,
                                         ranking.var_now - ranking.reduction[i])
        ranked.append({**_row(cands, int(i)), "flops": float(cost[i]), "score": float(ranking.score[i]),
                       "variance_reduction": float(ranking.reduction[i]), "lo": lo, "hi": hi,
                       "value_of_information_flops": float(voi[i])})
    return {
        "decision": {"spec": dec.spec, "kind": dec.kind, "name": dec.name, **now, "level": req.level,
                     **dec.detail, **({"also": extra} if extra else {})},
        "law": fit.law.name,
        "x": list(sel.x_columns),
        "y": sel.y_name,
        "groups": fit.layout.groups,
        "draws_used": int(ok.sum()),
        "draws": len(draws),
        "noise_log_sd": {gname: float(np.sqrt(n)) for gname, n in zip(fit.layout.groups, noise)},
        "cost": {"column": req.cost_column, "exponent": req.kappa, "budget": req.budget},
        "chosen": chosen,
        "ranked": ranked,
        "stop": verdict(stake, dec.weight, ranking, voi, cost, chosen, int(ok.sum())),
        "skipped_already_trained": done,
        **req.extra,
    }


def verdict(stake: float | None, weight: float, ranking: score.Ranking, voi: np.ndarray, cost: np.ndarray,
            chosen: list[dict], usable: int) -> dict:
    """Stop when no candidate's value of information exceeds its cost (derivation: score.py); "explore" when
    the draws cannot rank the candidates and the picks are space-filling (score.space_filling)."""
    waste_now = score.waste(stake, weight, ranking.var_now)
    base = {"stake_flops": stake, "waste_weight": weight, "expected_waste_flops_now": waste_now,
            "derivation": "scaling/advise/score.py: waste = stake * w * Var(log decision) / 2"}
    if chosen and all(c["basis"] == "space-filling" for c in chosen):
        why = (f"only {usable} bootstrap draws give a decision and finite predictions (a near-degenerate fit)"
               if usable < MIN_DRAWS else "no candidate is expected to narrow the decision beyond the noise of "
               "the bootstrap draws, though the decision is not settled")
        return {**base, "verdict": "explore", "reason": f"{why}: the chosen runs extend the design where it is "
                "thinnest (space-filling in the law's log inputs); refit and ask again, or add --bootstrap draws"}
    if not np.isfinite(waste_now):
        return {**base, "verdict": "unknown", "reason": "the compute at stake is unknown for this decision: pass "
                "--stake FLOPS (the compute that acting on it commits) for a stop verdict"}
    if not chosen:
        return {**base, "verdict": "stop", "reason": "no candidate is expected to narrow the decision beyond the "
                "noise of the bootstrap draws (more --bootstrap draws can resolve smaller effects)"}
    net = voi - cost
    best = int(np.argmax(net))
    if net[best] <= 0:
        return {**base, "verdict": "stop", "best_net_flops": float(net[best]),
                "reason": f"no candidate is worth its cost: the best would remove {voi[best]:.3g} FLOPs of expected "
                f"waste and costs {cost[best]:.3g}; expected waste now {waste_now:.3g} FLOPs"}
    worth = sum(1 for c in chosen if c["worth_cost"])
    return {**base, "verdict": "train", "best_net_flops": float(net[best]),
            "reason": f"{worth} of the {len(chosen)} chosen runs remove more expected waste than they cost "
            f"(expected waste now {waste_now:.3g} FLOPs)"}
