"""k-nearest-neighbour classifier on frozen features, as DINO evaluates (Caron et al. 2021, eval_knn.py):
cosine similarity, the k = 20 nearest training samples vote with weight exp(similarity / T), T = 0.07."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from scaling.eval.metrics import summary


def knn_scores(
    train_x: torch.Tensor, train_y: torch.Tensor, query_x: torch.Tensor, num_classes: int,
    k: int = 20, temperature: float = 0.07, chunk: int = 1024,
) -> torch.Tensor:
    """Vote totals [Nq, C] of each query. Features are L2-normalised here."""
    if k < 1 or k > train_x.shape[0]:
        raise ValueError(f"kNN k={k}: must be in [1, {train_x.shape[0]}] (the training set size).")
    bank = F.normalize(train_x.float(), dim=1)
    out = torch.zeros(query_x.shape[0], num_classes)
    for start in range(0, query_x.shape[0], chunk):
        q = F.normalize(query_x[start : start + chunk].float(), dim=1)
        sim, idx = (q @ bank.T).topk(k, dim=1)  # [b, k]
        votes = (sim / temperature).exp()
        out[start : start + chunk].scatter_add_(1, train_y[idx], votes)
    return out


def knn_eval(
    train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor, val_y: torch.Tensor, classes: list[str],
    k: int = 20, temperature: float = 0.07,
) -> dict[str, object]:
    out = summary(knn_scores(train_x, train_y, val_x, len(classes), k, temperature), val_y, classes)
    out["settings"] = {"k": k, "temperature": temperature, "similarity": "cosine"}
    return out
