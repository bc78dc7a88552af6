"""Fused kernels (installed as `scaling.kernels`), each with a plain-torch reference beside it.

`reference.py` holds the semantics every kernel must equal; the model's CPU path calls it directly.
The Triton kernels run on CUDA, or on CPU under the Triton interpreter (TRITON_INTERPRET=1, for tests);
Triton itself is imported only on the first fused call.

- `flash_attention(q, k, v)`: non-causal attention on (B, H, N, D), equals `attention_reference`.
- `fused_mask_gather(x, pos_embed, seeds, len_keep)`: MAE encoder masking, equals
  `mask_gather_reference(x, pos_embed, mask_noise(seeds, L), len_keep)`.
- `fused_unshuffle_fill(x_kept, mask_token, ids_restore, pos_embed)`: MAE decoder unmasking, equals
  `unshuffle_fill_reference`.
- `supports_fused_attention(q)`, `supports_fused_masking(x)`: (ok, reason) for dispatch fall-backs.
"""

from scaling.kernels.attention import flash_attention, supports_fused_attention
from scaling.kernels.masking import fused_mask_gather, fused_unshuffle_fill, supports_fused_masking
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
    "flash_attention",
    "fused_mask_gather",
    "fused_unshuffle_fill",
    "keep_count",
    "mask_gather_reference",
    "mask_noise",
    "sample_seeds",
    "supports_fused_attention",
    "supports_fused_masking",
    "unshuffle_fill_reference",
]
