"""Fused kernels (installed as `scaling.kernels`), each with a plain-torch reference beside it.

`reference.py` holds the semantics every kernel must equal; the model's CPU path calls it directly.
"""

from scaling.kernels.reference import (
    attention_reference,
    keep_count,
    mask_gather_reference,
    mask_noise,
    sample_seeds,
    unshuffle_fill_reference,
)

__all__ = [
    "attention_reference",
    "keep_count",
    "mask_gather_reference",
    "mask_noise",
    "sample_seeds",
    "unshuffle_fill_reference",
]
