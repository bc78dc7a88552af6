"""Means with Student-t intervals over seeds, and the convergence measure of a stage-2 loss curve."""

from __future__ import annotations

import math
from dataclasses import dataclass

LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    mean: float
    lo: float  # NaN with one value: no interval
    hi: float
    n: int

    def has_interval(self) -> bool:
        return self.n > 1 and math.isfinite(self.lo)


def estimate(values: list[float], level: float = LEVEL) -> Estimate:
    """The mean and its two-sided t interval (n - 1 degrees of freedom): with 3 seeds, +-4.30 standard errors."""
    from scipy.stats import t

    n = len(values)
    if n == 0:
        raise ValueError("no values to average")
    mean = sum(values) / n
    if n == 1:
        return Estimate(mean, math.nan, math.nan, 1)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return Estimate(mean, mean - half, mean + half, n)


def plural(n: int, word: str) -> str:
    """'1 seed', '3 seeds' (the demo's printouts and report)."""
    return f"{n} {word}{'s' * (n != 1)}"


def smoothed(losses: list[float], window: int) -> list[float]:
    """Trailing mean over `window` logged steps: one noisy micro-batch does not decide when a target is met."""
    out, total = [], 0.0
    for i, v in enumerate(losses):
        total += v
        if i >= window:
            total -= losses[i - window]
        out.append(total / min(i + 1, window))
    return out


def samples_to_reach(samples: list[int], losses: list[float], target: float, window: int) -> int | None:
    """Samples seen when the smoothed loss first is at or below `target` (None: never)."""
    for n, v in zip(samples, smoothed(losses, window)):
        if v <= target:
            return n
    return None
