"""Which runs narrow the decision most per FLOP: greedy linearised variance reduction from bootstrap draws,
and the stop verdict from the value of information in FLOPs.

Score of one candidate run. Let g = log(decision) and f_j = log(metric predicted at candidate j). The
run-level bootstrap gives B joint draws (g_b, f_b1..f_bM) of the fitted law's parameters; treat (g, f) as
jointly normal with the draws' covariance (the linearisation of Li et al. 2026, "Spend Less, Fit Better").
Training candidate j observes y_j = f_j + e_j with e_j ~ N(0, s_j^2), s_j^2 the run-to-run noise the fit
estimates (the variance of its log residuals). Conditioning on y_j leaves

    Var(g | y_j) = Var(g) - Cov(g, f_j)^2 / (Var(f_j) + s_j^2),

so the expected reduction of the decision's variance is Cov_b(g, f_j)^2 / (Var_b(f_j) + s_j^2).

Noise of the estimate. From B draws, Cov_hat has standard error se_j = sqrt((Var(g) Var(f_j) + Cov^2) / (B - 1))
(normal draws), and the best of M candidates is picked: a cheap run unrelated to g shows |Cov_hat| ~ se_j by
chance and, divided by its tiny cost, would win (the winner's curse). So a covariance counts only by how much it
exceeds the noise M candidates can show: Cov is replaced by sign(Cov_hat) max(|Cov_hat| - z_M se_j, 0) with
z_M = Phi^-1(1 - 0.05 / (2 M)) (Bonferroni, 5%). With the default 200 draws an informative run passes easily;
with few draws only clearly informative ones do. We rank by
that per FLOP^kappa of the candidate (kappa = 1 by default: per FLOP; kappa < 1 favours big runs, 0 ignores
cost). K runs are picked greedily: after picking j, the whole joint covariance is conditioned on y_j, a
rank-one update Sigma <- Sigma - Sigma[:, j] Sigma[j, :] / (Sigma_jj + s_j^2) applied to Cov(g, f), Var(f)
and Var(g) only (a column of Sigma over the candidates is built from the draws when it is needed), so no
refit runs inside the loop and the cost is O(B M) per pick.

Near-degenerate fits. With few cheap runs a draw can put the decision at a limit (log N_opt = +-inf where
the draw's A or B is 0). Such draws are results, not failures: intervals keep them (laws.bootstrap.interval,
an infinite bound when more than (1 - level) / 2 of the draws are there), and the score uses g's normal
scores (finite_scores: ranks keep the order of the infinite draws) so they still say which candidate
predicts where N_opt runs off. When fewer than 10 draws are usable, or no candidate's covariance exceeds
the draws' noise while the decision is not settled (its expected waste, below, exceeds the cheapest
candidate's cost; a settled decision gets "stop"), the picks are space-filling (maximin in the law's log
inputs, `space_filling`) and the verdict is "explore": cheapest-first, the former fallback, adds runs
beside the ones that left the fit degenerate.

What was tried and not made the default (benchmarks/bench_advise.py, synthetic pools only, 6 paired
repeats; the numbers are in benchmarks/results/README.md): a cost exponent kappa = 0.5 (Li et al. 2026 use
0.4), V-optimal picks on a target region (`target`: for n_opt@C the loss on C's iso-compute line from
N_opt / 4 to 4 N_opt, `--target region`), and ranking by net value of information minus cost. None lowered
the final N_opt error against the full-pool fit on a models x tokens grid pool with a misspecified surface;
the errors from 8 to 16 runs spread so widely between repeats that 6 repeats could not separate them.

Value of information, in FLOPs. Acting on a decision with a log error delta wastes compute. For N_opt at
budget C under L(N, D) = E + A N^-alpha + B D^-beta with C = k N D: along the iso-compute line, in
n = log N, L(n) = E + A e^(-alpha n) + B (C / (k e^n))^(-beta), whose second derivative at the optimum is
alpha^2 A N^-alpha + beta^2 B D^-beta = (alpha + beta) m, where m = alpha A N^-alpha = beta B D^-beta (the
optimality condition). So a model mis-sized by delta loses dL = (alpha + beta) m delta^2 / 2. The optimal
frontier is L*(C) - E = m (alpha + beta) / (alpha beta) with m proportional to C^(-alpha beta / (alpha + beta)),
so dL*/dlog C = -m: the lost loss is what the optimal model would gain from a fraction
dlog C = (alpha + beta) delta^2 / 2 more compute. Expected over the estimate's error (unbiased, variance V of
log N_opt), the compute wasted is

    W = C (alpha + beta) V / 2.

The same argument for the other decisions, with w in place of (alpha + beta):
- predict@X: the prediction sizes a run (the compute to reach a target metric). A log error delta in the
  metric is a log error delta / s in compute, s = dlog metric / dlog x at X, and a log-normal compute error of
  variance V / s^2 costs C_X (E[e^Z] - 1) ~ C_X V / (2 s^2): w = 1 / s^2, stake C_X (the point's compute).
- multiplier@Y: the multiplier is a compute ratio, its log error is a log compute error: w = 1, stake the new
  recipe's compute at Y.
A candidate's value of information is the waste it removes, VOI_j = stake w (V - V_after_j) / 2; a run is
worth training when VOI_j exceeds its cost. The verdict is "stop" when no candidate is worth its cost (the
first greedy pick, which has the highest score per FLOP, is checked together with the one of highest VOI
minus cost). Stake defaults: C for n_opt, the point's compute for predict (x itself when x is a compute
column, k N D for chinchilla), the new recipe's compute at Y for multiplier; `--stake FLOPS` overrides
(e.g. a model trained at C and then served: everything that depends on N).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm, rankdata


@dataclass
class Pick:
    index: int  # into the candidates
    reduction: float  # expected reduction of Var(log g) from this run, given the earlier picks
    var_after: float  # Var(log g) after this and the earlier picks
    score: float  # reduction / cost^kappa at the time of the pick


@dataclass
class Ranking:
    var_now: float  # Var(log g) from the draws (widened like the reported interval)
    reduction: np.ndarray  # [M] first-round expected variance reduction per candidate
    score: np.ndarray  # [M] reduction / cost^kappa
    picks: list[Pick]


def usable_draws(g: np.ndarray, F: np.ndarray, target: np.ndarray | None = None) -> np.ndarray:
    """Rows (draws) where every candidate's prediction (and the target region's) is finite and the decision
    has a value: finite, or infinite on a near-degenerate draw (log N_opt = +-inf where A or B is 0), which
    finite_scores ranks; only NaN (no value) is left out."""
    ok = ~np.isnan(g) & np.isfinite(F).all(axis=1)
    return ok if target is None else ok & np.isfinite(target).all(axis=1)


def finite_scores(g: np.ndarray) -> np.ndarray:
    """g itself where every draw is finite; else its normal scores (Phi^-1 of the mid-ranks / B, which keeps
    the order of the +-inf draws of a near-degenerate fit) in units of the finite draws' robust sd
    (IQR / 1.349), so variances stay comparable with Var(log g)."""
    if np.isfinite(g).all():
        return g
    ranks = rankdata(g) / (len(g) + 1)
    fin = g[np.isfinite(g)]
    sd = (np.subtract(*np.percentile(fin, [75, 25])) / 1.349) if len(fin) >= 4 else 1.0
    return norm.ppf(ranks) * (sd if sd > 0 else 1.0)


def greedy(
    g: np.ndarray,
    F: np.ndarray,
    noise_var: np.ndarray,
    cost: np.ndarray,
    k: int,
    budget: float | None = None,
    kappa: float = 1.0,
    inflate: float = 1.0,
    target: np.ndarray | None = None,
) -> Ranking:
    """Pick up to `k` candidates greedily by variance reduction per cost^kappa.

    g [B] log decision per draw; F [B, M] log prediction per draw and candidate; noise_var [M] s^2 in log
    units; cost [M] FLOPs; `budget` caps the total cost of the picks; `inflate` scales every draw covariance
    (the t / z widening of the reported intervals, squared). `target` [B, T]: log predictions in a target
    region (see decision.Decision.region); given, the picks reduce the summed variance of those (V-optimal
    on the region, Li et al. 2026) and g's reduction is carried along for the intervals and the value of
    information; None: the picks reduce Var(g) itself."""
    B, M = F.shape
    scale = inflate / max(B - 1, 1)
    Fc = F - F.mean(axis=0)
    var_f = np.einsum("bm,bm->m", Fc, Fc) * scale
    # rows of Y: g first, then the target region's points; what is scored is rows `drive`
    Y = g[:, None] if target is None else np.column_stack([g, target])
    Yc = Y - Y.mean(axis=0)
    cov_yf = (Yc.T @ Fc) * scale  # [1 + T, M]
    var_y = np.einsum("bt,bt->t", Yc, Yc) * scale
    drive = slice(0, 1) if target is None else slice(1, None)
    var_now = float(var_y[0])
    per_cost = np.maximum(cost, 1e-300) ** kappa
    z = float(norm.ppf(1 - 0.05 / (2 * M)))  # the noise M candidates' covariances show (module docstring)

    def reduction() -> np.ndarray:
        """[1 + T, M]: each row's expected variance reduction per candidate, beyond the draws' noise."""
        se = np.sqrt(np.maximum(var_y[:, None] * var_f[None, :] + cov_yf**2, 0.0) / max(B - 1, 1))
        return np.maximum(np.abs(cov_yf) - z * se, 0.0) ** 2 / (var_f + noise_var)

    first = reduction()
    def value(red: np.ndarray) -> np.ndarray:
        return red[drive].sum(axis=0) / per_cost

    score0 = value(first)
    var_reported = var_now  # Var(log g) after the picks, lowered by the (noise-discounted) reductions
    left = float("inf") if budget is None else float(budget)
    taken = np.zeros(M, dtype=bool)
    updates: list[np.ndarray] = []  # u_t over candidates: Sigma_t = Sigma_0 - sum_t u_t u_t^T
    picks: list[Pick] = []
    for _ in range(k):
        red = reduction()
        score = value(red)
        score[taken | (cost > left)] = -np.inf
        j = int(np.argmax(score))
        if not score[j] > 0:  # nothing left that narrows g beyond the draws' noise: no pick is better than one
            break
        col = (Fc.T @ Fc[:, j]) * scale  # Sigma_0[:, j]
        for u in updates:
            col -= u * u[j]
        denom = var_f[j] + noise_var[j]
        u = col / np.sqrt(denom)
        u_y = cov_yf[:, j] / np.sqrt(denom)
        var_y = var_y - u_y**2
        cov_yf = cov_yf - u_y[:, None] * u[None, :]
        var_f = np.maximum(var_f - u * u, 0.0)
        updates.append(u)
        taken[j] = True
        left -= cost[j]
        var_reported -= float(red[0, j])
        picks.append(Pick(j, float(red[0, j]), max(var_reported, 0.0), float(score[j])))
    return Ranking(var_now, first[0], score0, picks)


def expected_interval(value: float, lo: float, hi: float, var_now: float, var_after: float) -> tuple[float, float]:
    """The interval [lo, hi] of a positive decision after its log variance falls from var_now to var_after:
    each side shrinks in log space by sqrt(var_after / var_now) about the value."""
    if not (var_now > 0 and np.isfinite(lo) and np.isfinite(hi) and value > 0 and lo > 0):
        return float("nan"), float("nan")
    r = np.sqrt(max(var_after, 0.0) / var_now)
    return float(value * (lo / value) ** r), float(value * (hi / value) ** r)


def waste(stake: float | None, weight: float, variance: float) -> float:
    """Expected FLOPs wasted acting on a decision whose log has this variance: stake * w * V / 2."""
    if stake is None or not np.isfinite(weight):
        return float("nan")
    return float(stake * weight * variance / 2.0)


def space_filling(
    runs: np.ndarray, cands: np.ndarray, cost: np.ndarray, k: int, budget: float | None = None
) -> list[int]:
    """Up to `k` candidates picked greedily by maximin distance (each pick the candidate farthest from the
    fitted runs and the earlier picks) in the law's log inputs, each standardised over runs and candidates.

    The fallback when the bootstrap draws cannot rank the candidates (a near-degenerate fit whose draws
    carry no usable covariance, or none beyond their noise). A model-free space-filling design is the
    classical choice when the model cannot be trusted to say where information is: it extends the design
    where it is thinnest, which is what identifies the exponents; cheapest-first adds runs beside the
    cheap runs already there, which is what left the fit degenerate."""
    both = np.vstack([runs, cands])
    sd = both.std(axis=0)
    z = (both - both.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    have, pool = list(z[: len(runs)]), z[len(runs) :]
    left = float("inf") if budget is None else float(budget)
    picks: list[int] = []
    for _ in range(k):
        dist = np.min(np.linalg.norm(pool[:, None, :] - np.array(have)[None, :, :], axis=2), axis=1)
        dist[picks] = -np.inf
        dist[cost > left] = -np.inf
        j = int(np.argmax(dist))
        if not np.isfinite(dist[j]):
            break
        picks.append(j)
        have.append(pool[j])
        left -= cost[j]
    return picks
