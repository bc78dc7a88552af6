"""The numbers a user decides with, as functions of one parameter vector, so that the bootstrap carries
uncertainty to each of them: compute-optimal N and D, the loss or accuracy at a budget, and the compute
multiplier between two recipes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from scaling.laws.bootstrap import Bootstrap, interval
from scaling.laws.problem import Fit

# name -> f(theta) -> value; evaluated at the full-data fit and at every bootstrap draw.
Derived = dict[str, Callable[[np.ndarray], float]]


def allocate(p: Mapping[str, float], compute: float, flops_per_param_sample: float) -> dict[str, float]:
    """Chinchilla's compute-optimal split of C = k N D (Hoffmann et al. 2022, eq. 4):
    minimising A N^-alpha + B D^-beta on N D = C / k gives N_opt = G (C/k)^(beta/(alpha+beta)) with
    G = (alpha A / (beta B))^(1/(alpha+beta)), and D_opt = (C/k) / N_opt."""
    a, b, A, B, E = p["alpha"], p["beta"], p["A"], p["B"], p["E"]
    nd = compute / flops_per_param_sample
    with np.errstate(all="ignore"):
        g = (a * A / (b * B)) ** (1.0 / (a + b))
        n_opt = g * nd ** (b / (a + b))
        d_opt = nd / n_opt
        loss = E + A * n_opt**-a + B * d_opt**-b
    return {
        "N_opt": float(n_opt),
        "D_opt": float(d_opt),
        "D_per_N": float(d_opt / n_opt),
        "loss": float(loss),
    }


def flops_per_param_sample(flops: np.ndarray, params: np.ndarray, samples: np.ndarray) -> float:
    """k in C = k N D from the runs themselves (6 for dense LMs per token; a ViT's depends on patches)."""
    return float(np.median(flops / (params * samples)))


def compute_multiplier(fit: Fit, base: int, new: int, y: float, theta: np.ndarray | None = None) -> float:
    """How many times more x (compute) group `base` needs than group `new` to reach y (error or loss).
    nan where a group's law never reaches y (y at or below its floor)."""
    law = fit.law
    if law.inverse is None:
        raise ValueError(f"law {law.name} has no inverse in x; compare recipes with saturating, power or power_offset")
    th = fit.values if theta is None else theta
    pb = dict(zip(law.params, fit.layout.group_theta(th, base)))
    pn = dict(zip(law.params, fit.layout.group_theta(th, new)))
    xb, xn = law.inverse(pb, np.array([y]))[0], law.inverse(pn, np.array([y]))[0]
    return float(xb / xn) if np.isfinite(xb) and np.isfinite(xn) and xn > 0 else float("nan")


def evaluate(fit: Fit, boot: Bootstrap | None, derived: Derived, level: float) -> dict[str, dict[str, float]]:
    """{name: {"value", "lo", "hi", "n_valid"}} for every derived quantity."""
    out = {}
    for name, f in derived.items():
        value = f(fit.values)
        draws = np.array([f(t) if np.all(np.isfinite(t)) else np.nan for t in boot.samples]) if boot else []
        expand = boot.factor() if boot else 1.0
        out[name] = {**interval(value, draws, level, expand), "n_valid": int(np.isfinite(draws).sum()) if boot else 0}
    return out


def params_table(fit: Fit, boot: Bootstrap | None, level: float) -> dict[str, dict[str, float]]:
    """{"alpha": {"value", "lo", "hi"}, ...} for every fitted parameter."""
    out = {}
    for j, (name, (lo, hi)) in enumerate(zip(fit.names, fit.layout.bounds())):
        draws = boot.samples[:, j] if boot is not None else np.array([])
        iv = interval(fit.values[j], draws, level, boot.factor([j]) if boot is not None else 1.0)
        # widened intervals stop at the parameter's bounds (an exponent's search limit, a floor's 0)
        iv["lo"], iv["hi"] = float(np.clip(iv["lo"], lo, hi)), float(np.clip(iv["hi"], lo, hi))
        out[name] = iv
    if fit.law.reported is not None:  # the published form's parameters (M4's eps_0, beta), with intervals
        groups = fit.layout.groups
        for g, gname in enumerate(groups):
            suffix = f"[{gname}]" if len(groups) > 1 else ""

            def of(theta: np.ndarray, g: int = g) -> dict[str, float]:
                return fit.law.reported(dict(zip(fit.law.params, fit.layout.group_theta(theta, g))))

            value = of(fit.values)
            draws = [of(t) if np.all(np.isfinite(t)) else None for t in (boot.samples if boot is not None else [])]
            factor = boot.factor(fit.layout.index[g]) if boot is not None else 1.0
            for key, v in value.items():
                d = np.array([np.nan if r is None else r[key] for r in draws])
                out[key + suffix] = interval(v, d, level, factor)
    return out
