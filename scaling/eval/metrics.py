"""Accuracy from class scores: top-k and per-class (values in [0, 1])."""

from __future__ import annotations

import torch


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """Fraction of rows whose label is among the k highest scores. scores [N, C], labels int64 [N]."""
    k = min(k, scores.shape[1])
    top = scores.topk(k, dim=1).indices
    return float((top == labels[:, None]).any(dim=1).double().mean())


def per_class_accuracy(scores: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> dict[str, float | None]:
    """Top-1 accuracy of each class (None for a class absent from `labels`)."""
    pred = scores.argmax(dim=1)
    out: dict[str, float | None] = {}
    for c, name in enumerate(classes):
        mask = labels == c
        out[name] = float((pred[mask] == c).double().mean()) if mask.any() else None
    return out


def summary(scores: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> dict[str, object]:
    return {"top1": topk_accuracy(scores, labels, 1), "top5": topk_accuracy(scores, labels, 5),
            "per_class": per_class_accuracy(scores, labels, classes)}
