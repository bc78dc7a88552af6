"""WSP / fine-tune objective: softmax cross-entropy of a ViT classifier against soft targets.

Weak supervision gives each image several (hash)tags; targets are the multi-hot vector normalised to
sum 1 (Mahajan et al. 2018, used by the paper), and single-label data is the one-hot special case.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def multi_hot_targets(
    labels: list[list[int]], num_classes: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """[[tag ids] per sample] -> float32 [B, num_classes] rows summing to 1."""
    out = torch.zeros(len(labels), num_classes, device=device)
    for row, tags in enumerate(labels):
        if not tags:
            raise ValueError(f"sample {row} has no labels; soft targets need at least one.")
        bad = [t for t in tags if not 0 <= t < num_classes]
        if bad:
            raise ValueError(f"sample {row} has label ids {bad} outside [0, {num_classes}).")
        out[row, list(tags)] = 1.0
    return out / out.sum(dim=1, keepdim=True)


def soft_target_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -sum_c target_c * log softmax(logits)_c; targets [B, C] or class ids [B]."""
    if targets.dtype in (torch.int64, torch.int32):
        return F.cross_entropy(logits.float(), targets.long())
    if targets.shape != logits.shape:
        raise ValueError(f"targets {tuple(targets.shape)} must match logits {tuple(logits.shape)}.")
    return -(targets.float() * F.log_softmax(logits.float(), dim=-1)).sum(dim=-1).mean()
