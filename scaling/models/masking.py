"""MAE masking step, dispatched by the `kernels` policy like attention.

mask_gather:    choose kept patches, gather them and add their pos-embed  (encoder side)
unshuffle_fill: put kept tokens back, fill mask tokens, add decoder pos-embed (decoder side)
The fused path is the Triton kernels of `scaling.kernels`; the reference is the torch chain in
`scaling.kernels.reference`. Both give the same masks for the same seeds.
"""

from __future__ import annotations

import torch

from scaling.kernels import mask_gather_reference, mask_noise, unshuffle_fill_reference
from scaling.models.attention import resolve_masking


def mask_gather(
    x: torch.Tensor,
    pos_embed: torch.Tensor,
    len_keep: int,
    noise: torch.Tensor | None = None,
    seeds: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """x [B, L, D], pos [L, D] -> (x_kept [B, K, D], ids_keep [B, K], ids_restore [B, L], mask [B, L])."""
    if noise is None:
        if seeds is None:
            raise ValueError("mask_gather needs either noise [B, L] or per-sample seeds [B].")
        if resolve_masking(x) == "fused":
            from scaling.kernels import fused_mask_gather

            return fused_mask_gather(x, pos_embed, seeds, len_keep)
        noise = mask_noise(seeds, x.shape[1])
    return mask_gather_reference(x, pos_embed, noise, len_keep)


def unshuffle_fill(
    x_kept: torch.Tensor, mask_token: torch.Tensor, ids_restore: torch.Tensor, pos_embed: torch.Tensor
) -> torch.Tensor:
    """x_kept [B, K, D], mask_token [1, 1, D], ids_restore [B, L], pos_embed [L, D] -> [B, L, D]."""
    if resolve_masking(x_kept) == "fused":
        from scaling.kernels import fused_unshuffle_fill

        return fused_unshuffle_fill(x_kept, mask_token, ids_restore, pos_embed)
    return unshuffle_fill_reference(x_kept, mask_token, ids_restore, pos_embed)
