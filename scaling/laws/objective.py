"""The robust objective: Huber loss on log residuals, as in Hoffmann et al. 2022 (delta 1e-3).

Residuals are r = log(pred) - log(y). A law with a subtracted term (convergence: - C S2) can predict
pred <= 0 during a search; log is undefined there, so below `_FLOOR * y` the log is continued by its tangent
line. That keeps the objective finite and once differentiable, which L-BFGS-B needs; at any sensible optimum
pred is far above the floor and the continuation never matters.
"""

from __future__ import annotations

import numpy as np

HUBER_DELTA = 1e-3
_FLOOR = 1e-6


def log_residual(pred: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """r = log(pred / y) (tangent-continued below a floor) and dr/dpred, both shaped like pred."""
    floor = _FLOOR * y
    safe = np.maximum(pred, floor)
    r = np.log(safe / y) + np.where(pred < floor, (pred - floor) / floor, 0.0)
    return r, 1.0 / safe


def huber(r: np.ndarray, delta: float = HUBER_DELTA) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def huber_irls_weight(r: np.ndarray, delta: float = HUBER_DELTA) -> np.ndarray:
    """Weights that make a least-squares step minimise Huber: 1 inside delta, delta/|r| outside."""
    a = np.abs(r)
    return np.where(a <= delta, 1.0, delta / np.maximum(a, 1e-300))


def huber_log(pred: np.ndarray, y: np.ndarray, delta: float = HUBER_DELTA) -> tuple[np.ndarray, np.ndarray]:
    """Per-point Huber of the log residual and its derivative in pred, in one pass (the refine's hot path)."""
    floor = _FLOOR * y
    below = pred < floor
    safe = np.where(below, floor, pred)
    r = np.log(safe / y)
    if below.any():
        r = r + np.where(below, (pred - floor) / floor, 0.0)
    a = np.abs(r)
    inside = a <= delta
    value = np.where(inside, 0.5 * r * r, delta * (a - 0.5 * delta))
    return value, np.clip(r, -delta, delta) / safe
