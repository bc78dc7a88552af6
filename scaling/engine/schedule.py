"""Learning-rate schedule in samples seen: linear warmup, then cosine to a floor (MAE, MAWS)."""

from __future__ import annotations

import math


def lr_at(
    samples_seen: int, *, peak_lr: float, min_lr: float, warmup_samples: int, total_samples: int
) -> float:
    if warmup_samples and samples_seen < warmup_samples:
        return peak_lr * samples_seen / warmup_samples
    decay = max(total_samples - warmup_samples, 1)
    progress = min(max(samples_seen - warmup_samples, 0) / decay, 1.0)
    return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def peak_lr(base_lr: float, lr: float | str, global_batch: int) -> float:
    """The absolute `lr`, or MAE's linear scaling rule base_lr x global_batch / 256 when `lr` is auto."""
    return base_lr * global_batch / 256 if lr == "auto" else float(lr)
