"""Low-shot linear classification: K labelled training samples per class (K = 1, 5, 10), several seeded
splits, the L-BFGS probe of probe.py; mean and std of the top-1 over splits.

The weight decay of each split is chosen on a hold-out of *other training samples* (up to `holdout_per_class`
per class, disjoint from the K picked), never on val: the paper's "minival from train" practice.
"""

from __future__ import annotations

import numpy as np
import torch

from scaling.config import ConfigError
from scaling.eval.metrics import summary, topk_accuracy
from scaling.eval.probe import DEFAULT_GRID, fit_logreg

SHOTS = (1, 5, 10)


def pick_shots(y: torch.Tensor, k: int, seed: int, holdout_per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """(K per class picked, up to holdout_per_class per class of the rest), seeded by (seed, K)."""
    rng = np.random.default_rng([seed, k])
    labels = y.numpy()
    picks, held = [], []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        members = members[rng.permutation(len(members))]
        picks.append(members[:k])
        held.append(members[k : k + holdout_per_class])
    return np.sort(np.concatenate(picks)), np.sort(np.concatenate(held))


def lowshot(
    train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor, val_y: torch.Tensor, classes: list[str],
    shots: tuple[int, ...] = SHOTS, splits: int = 5, grid: tuple[float, ...] = DEFAULT_GRID,
    holdout_per_class: int = 20,
) -> dict[str, object]:
    counts = torch.bincount(train_y, minlength=len(classes))
    smallest = int(counts.min())
    if max(shots) > smallest:
        c = int(counts.argmin())
        raise ConfigError(f"low-shot K={max(shots)} is larger than the smallest class of the training set "
                          f"({classes[c]!r} has {smallest} samples): use --shots up to {smallest}.")
    results: dict[str, object] = {}
    for k in shots:
        runs = []
        for seed in range(splits):
            picked, held = pick_shots(train_y, k, seed, holdout_per_class)
            scores, models = {}, {}
            for wd in sorted(grid, reverse=True):
                models[wd] = fit_logreg(train_x[picked], train_y[picked], len(classes), wd)
                scores[wd] = topk_accuracy(models[wd].scores(train_x[held]), train_y[held], 1) if len(held) else 0.0
            best = max(sorted(grid, reverse=True), key=lambda wd: scores[wd])
            # The grid's fit at the chosen decay is the final model: same K samples, same start, same decay (a
            # refit would repeat it exactly, and it was a third of low-shot's time).
            model = models[best]
            s = summary(model.scores(val_x), val_y, classes)
            runs.append({"seed": seed, "top1": s["top1"], "top5": s["top5"], "weight_decay": best,
                         "solver": model.solver, "iterations": model.iterations, "train_indices": picked.tolist()})
        top1 = np.array([r["top1"] for r in runs])
        top5 = np.array([r["top5"] for r in runs])
        results[str(k)] = {"top1": float(top1.mean()), "top1_std": float(top1.std()), "top5": float(top5.mean()),
                           "top5_std": float(top5.std()), "splits": runs}
    return {"shots": results, "settings": {"shots": list(shots), "splits": splits, "grid": list(grid),
                                           "holdout_per_class": holdout_per_class,
                                           "solver": "newton or lbfgs (per split, by size: probe.fit_logreg)"}}
