"""k-nearest-neighbour classifier on frozen features, as DINO evaluates (Caron et al. 2021, eval_knn.py):
cosine similarity, the k = 20 nearest training samples vote with weight exp(similarity / T), T = 0.07."""

from __future__ import annotations

import torch

from scaling.engine.validation import knn_scores
from scaling.eval.metrics import summary

__all__ = ["knn_eval", "knn_scores"]


def knn_eval(
    train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor, val_y: torch.Tensor, classes: list[str],
    k: int = 20, temperature: float = 0.07,
) -> dict[str, object]:
    out = summary(knn_scores(train_x, train_y, val_x, len(classes), k, temperature), val_y, classes)
    out["settings"] = {"k": k, "temperature": temperature, "similarity": "cosine"}
    return out
