"""The fitting problem: points (FitData), where each group's parameters live (Layout), the result (Fit)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scaling.laws.laws import Law


class FitWarning(UserWarning):
    """A fit that did not converge, or whose parameter sits on a bound: the result is a best attempt."""


@dataclass
class FitData:
    """Points ready to fit. X[role] and y are [n]; run and group label every point."""

    X: dict[str, np.ndarray]
    y: np.ndarray
    run: np.ndarray  # run name per point: the unit the bootstrap resamples
    group: np.ndarray = None  # int code per point into `groups`
    groups: list[str] = field(default_factory=lambda: ["all"])
    weight: np.ndarray | None = None  # multiplicity per point (bootstrap counts); None = all 1

    def __post_init__(self) -> None:
        if self.group is None:
            self.group = np.zeros(len(self.y), dtype=int)

    def subset(self, mask: np.ndarray) -> FitData:
        w = None if self.weight is None else self.weight[mask]
        X = {k: v[mask] for k, v in self.X.items()}
        return FitData(X, self.y[mask], self.run[mask], self.group[mask], self.groups, w)

    def with_weight(self, weight: np.ndarray) -> FitData:
        return FitData(self.X, self.y, self.run, self.group, self.groups, weight)


class Layout:
    """Where each group's law parameters live in the joint vector theta."""

    def __init__(self, law: Law, groups: list[str], shared: tuple[str, ...] = ()):
        unknown = set(shared) - set(law.params)
        if unknown:
            raise ValueError(f"--share {','.join(sorted(unknown))}: law {law.name} has parameters {law.params}")
        self.law, self.groups, self.shared = law, groups, tuple(shared)
        self.names: list[str] = []
        self.index = np.zeros((len(groups), len(law.params)), dtype=int)
        for j, p in enumerate(law.params):
            if len(groups) == 1 or p in shared:
                self.names.append(p)
                self.index[:, j] = len(self.names) - 1
            else:
                for g, gname in enumerate(groups):
                    self.names.append(f"{p}[{gname}]")
                    self.index[g, j] = len(self.names) - 1

    def group_theta(self, theta: np.ndarray, g: int) -> np.ndarray:
        return theta[self.index[g]]

    def bounds(self) -> list[tuple[float, float]]:
        law = self.law
        per = [law.bounds[p] for p in law.nonlinear] + [(0.0, np.inf)] * len(law.linear)
        out: list[tuple[float, float]] = [(0.0, 0.0)] * len(self.names)
        for g in range(len(self.groups)):
            for j, b in enumerate(per):
                out[self.index[g, j]] = b
        return out


@dataclass
class Fit:
    law: Law
    layout: Layout
    values: np.ndarray
    objective: float
    converged: bool
    message: str

    @property
    def names(self) -> list[str]:
        return self.layout.names

    def params(self, group: int = 0) -> dict[str, float]:
        """The law's parameters for one group, by the law's own names."""
        th = self.layout.group_theta(self.values, group)
        return {p: float(v) for p, v in zip(self.law.params, th)}

    def predict(self, X: dict[str, np.ndarray], group: int = 0, theta: np.ndarray | None = None) -> np.ndarray:
        th = self.layout.group_theta(self.values if theta is None else theta, group)
        return self.law.predict(X, th)
