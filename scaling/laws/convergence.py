"""Whole training curves for the schedule-aware convergence law of Tissue et al. 2024:
L(s) = L0 + A S1(s)^-alpha - C S2(s).

With eta_i the learning rate used at step i (i = 1..s):
- S1(s) = sum_{i<=s} eta_i, the forward area under the lr curve;
- S2(s) = sum_{i<=s} m_i with m_i = lambda m_{i-1} + (eta_{i-1} - eta_i)^+, i.e.
  S2(s) = sum_{i<=s} sum_{k<=i} (eta_{k-1} - eta_k)^+ lambda^(i-k): the annealing area, each lr drop
  taking effect gradually (momentum lambda, 0.999 in the paper's reference script).
We count only *drops* of the lr: during warmup eta rises, and letting those rises enter S2 with the
opposite sign would cancel the later annealing exactly when a cosine returns to its starting value
(the paper fits post-warmup). S1 includes warmup: it is area, whatever its direction.

Curves come from run directories (metrics.jsonl: step, samples_seen, loss, lr, ...) or a curves CSV
(run, step, lr, loss [, params, samples_seen, model, recipe]). Logged lr is interpolated to every step,
so log it often enough to see the schedule's shape (warmup included).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import lfilter

from scaling.laws.problem import FitData
from scaling.laws.results import y_kind_of
from scaling.laws.table import DataError, Table

DECAY = 0.999


@dataclass
class Curve:
    run: str
    step: np.ndarray  # [t] evaluation steps, increasing, >= 1
    loss: np.ndarray  # [t] loss (or error rate) at those steps
    lr: np.ndarray  # [T] learning rate of steps 1..T, T >= step[-1]: the whole (planned) schedule
    params: float = float("nan")  # model size N, for the convergence_size law
    samples: np.ndarray | None = None  # [t] samples seen at those steps, for plots
    group: str = ""


def lr_schedule(
    kind: str, peak: float, total_steps: int, warmup: int = 0, final: float = 0.0, decay_steps: int = 0
) -> np.ndarray:
    """lr of steps 1..total_steps: linear warmup to `peak`, then `kind`: cosine | linear | constant | wsd
    (constant, then a linear decay to `final` over the last `decay_steps`)."""
    s = np.arange(1, total_steps + 1, dtype=float)
    after = np.clip((s - warmup) / max(total_steps - warmup, 1), 0.0, 1.0)
    if kind == "cosine":
        lr = final + 0.5 * (peak - final) * (1 + np.cos(np.pi * after))
    elif kind == "linear":
        lr = peak - (peak - final) * after
    elif kind == "constant":
        lr = np.full_like(s, peak)
    elif kind == "wsd":
        tail = np.clip((s - (total_steps - decay_steps)) / max(decay_steps, 1), 0.0, 1.0)
        lr = peak - (peak - final) * tail
    else:
        raise ValueError(f"unknown lr schedule {kind!r}; choose cosine, linear, constant or wsd")
    if warmup > 0:
        lr = np.where(s <= warmup, peak * s / warmup, lr)
    return lr


def annealing_areas(lr: np.ndarray, decay: float = DECAY) -> tuple[np.ndarray, np.ndarray]:
    """S1 and S2 after each step 1..T for per-step learning rates lr [T] (see the module docstring)."""
    lr = np.asarray(lr, dtype=float)
    drop = np.zeros_like(lr)
    drop[1:] = np.maximum(lr[:-1] - lr[1:], 0.0)
    momentum = lfilter([1.0], [1.0, -decay], drop)  # m_i = decay * m_{i-1} + drop_i
    return np.cumsum(lr), np.cumsum(momentum)


def curve_decay(c: Curve, decay: float = DECAY, anneal_delay: float | None = None) -> float:
    """The S2 momentum lambda for a curve: `decay` per step, or with `anneal_delay` F a delay of F times the
    run's planned length (lambda = 1 - 1 / (F T)).

    Why the option: on OpenCLIP's zero-shot error curves (150k-1M steps of 32k-88k batches) the annealing
    gain shows up late. With Tissue et al.'s 0.999 (a delay of 1,000 steps, under 1% of those runs) the law
    misses the end of the cosine even fitted to the whole curve (median 2.8% at the last point, +3.6% on
    average), and the first half predicts the end 15% off; a delay of 20% of the run brings the whole-curve
    end residual to 0.6% and the first-half backtest to 4.1% on the 21 runs whose warmup is under 30% of
    the run (benchmarks/results/fit_bench_cpu.json). The loss curves of Tissue's demo and (Mis)fitting are
    fitted better with the default (0.03% and 1.15%; 0.76% and 1.26% with a 20% delay)."""
    if anneal_delay is None:
        return decay
    if not 0 < anneal_delay < 1:
        raise DataError(f"--anneal-delay {anneal_delay}: give a fraction of the run between 0 and 1, e.g. 0.2")
    return 1.0 - 1.0 / (anneal_delay * len(c.lr))


def lr_per_step(step: np.ndarray, lr: np.ndarray, total: int | None = None) -> np.ndarray:
    """Per-step lr of steps 1..total from (step, lr) log points, by linear interpolation."""
    order = np.argsort(step)
    total = int(step.max()) if total is None else total
    return np.interp(np.arange(1, total + 1), step[order], lr[order])


def curve_points(
    curves: Sequence[Curve],
    law_inputs: tuple[str, ...],
    decay: float = DECAY,
    group_by: str | None = None,
    anneal_delay: float | None = None,
) -> FitData:
    """Every evaluated point of every curve as one FitData: inputs S1, S2 (the schedule's areas) and N for
    the convergence laws, x (the step) for the one-input laws; `group_by` "run" gives every run its own
    parameters, "recipe" every curve group (Curve.group), None one shared set."""
    if group_by not in (None, "run", "recipe"):
        raise DataError(f"--group-by {group_by!r}: curves can be grouped by run or recipe")
    X: dict[str, list] = {k: [] for k in law_inputs}
    y, run, group_label = [], [], []
    for c in curves:
        _check_curve(c, need_params="N" in law_inputs)
        s1, s2 = annealing_areas(c.lr, curve_decay(c, decay, anneal_delay))
        i = c.step.astype(int) - 1
        parts = {"x": c.step.astype(float), "S1": s1[i], "S2": s2[i], "N": np.full(len(i), c.params)}
        for k in law_inputs:
            X[k].append(parts[k])
        y.append(c.loss)
        run += [c.run] * len(i)
        label = {"run": c.run, "recipe": c.group or "all", None: "all"}[group_by]
        group_label += [label] * len(i)
    groups = sorted(set(group_label))
    return FitData(
        {k: np.concatenate(v) for k, v in X.items()},
        np.concatenate(y),
        np.array(run),
        np.searchsorted(groups, group_label),
        groups,
    )


def _check_curve(c: Curve, need_params: bool) -> None:
    if len(c.step) == 0:
        raise DataError(f"run {c.run}: empty curve")
    if not (np.all(np.isfinite(c.loss)) and np.all(np.isfinite(c.lr))):
        raise DataError(
            f"run {c.run}: NaN or inf in loss or lr at steps "
            f"{c.step[~np.isfinite(c.loss)][:8].tolist()}; drop those log lines"
        )
    if (c.loss <= 0).any():
        raise DataError(
            f"run {c.run}: loss <= 0 at steps {c.step[c.loss <= 0][:8].tolist()}; it is fitted on a log scale"
        )
    if c.step.min() < 1 or c.step.max() > len(c.lr):
        raise DataError(f"run {c.run}: steps must lie in 1..{len(c.lr)} (the lr schedule's length)")
    if np.any(np.diff(c.step) <= 0):
        raise DataError(
            f"run {c.run}: steps repeat or go back (duplicate log lines, or a resumed run "
            f"logged twice); keep one line per step"
        )
    if need_params and not (np.isfinite(c.params) and c.params > 0):
        raise DataError(f"run {c.run}: convergence_size needs the model size (params) of every run")


def read_run_curves(run_dirs: Sequence[str | Path]) -> list[Curve]:
    """One curve per run directory from metrics.jsonl (step, samples_seen, loss, lr) and summary.json."""
    curves = []
    for d in map(Path, run_dirs):
        path = d / "metrics.jsonl"
        if not path.is_file():
            raise DataError(f"{d}: no metrics.jsonl; pass run directories written by `scaling train`")
        recs = []
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    recs.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise DataError(
                        f"{path}:{n}: not JSON ({e}); a crashed run may leave half a line: delete it"
                    ) from e
        recs = [r for r in recs if "loss" in r and "lr" in r and "step" in r]
        if not recs:
            raise DataError(f"{path}: no lines with step, loss and lr")
        summary = json.loads((d / "summary.json").read_text()) if (d / "summary.json").is_file() else {}
        step = np.array([r["step"] for r in recs], dtype=float)
        if step.min() < 1:  # a trainer that counts from 0 logs step 0 after the first update
            step = step + 1
        curves.append(
            Curve(
                run=str(summary.get("run") or d.name),
                step=step.astype(int),
                loss=np.array([r["loss"] for r in recs], dtype=float),
                lr=lr_per_step(step, np.array([r["lr"] for r in recs], dtype=float)),
                params=float(summary.get("params", np.nan)),
                samples=np.array([r.get("samples_seen", np.nan) for r in recs], dtype=float),
                group=str(summary.get("recipe") or summary.get("stage") or ""),
            )
        )
    return curves


def table_curves(table: Table, y: str = "loss", y_kind: str | None = None) -> list[Curve]:
    """Curves from a CSV with columns run, step, lr and y (optional: params, samples_seen, recipe); y_kind
    as for results tables (accuracy curves are fitted as error rates)."""
    run = table.column("run").astype(str)
    step, lr, loss = table.numbers("step"), table.numbers("lr"), table.numbers(y)
    if y_kind_of(y, y_kind) == "accuracy":  # accuracy curves are fitted as error rates, like results tables
        loss = 1.0 - loss
    params = table.numbers("params") if table.has("params") else np.full(len(run), np.nan)
    samples = table.numbers("samples_seen") if table.has("samples_seen") else None
    recipe = table.column("recipe").astype(str) if table.has("recipe") else np.full(len(run), "")
    curves = []
    for name in dict.fromkeys(run):
        sel = np.flatnonzero(run == name)
        sel = sel[np.argsort(step[sel], kind="stable")]
        s = step[sel]
        if s.min() < 1:
            s = s + 1
        if np.any(np.diff(s) <= 0):
            dup = np.zeros(len(run), dtype=bool)
            dup[sel[1:][np.diff(s) <= 0]] = True
            raise DataError(
                f"{table.source}: run {name} has repeated steps at {table.where(dup)}; keep one line per step"
            )
        curves.append(
            Curve(
                name,
                s.astype(int),
                loss[sel],
                lr_per_step(s, lr[sel]),
                float(params[sel][0]),
                None if samples is None else samples[sel],
                str(recipe[sel][0]),
            )
        )
    return curves
