"""Plain-torch references for every fused kernel in this package.

These are the semantics the Triton kernels must equal; the model's CPU path uses them directly.

MAE masking follows facebookresearch/mae `models_mae.py::random_masking` exactly: for each sample, sort a
noise vector ascending (stable), keep the first `len_keep = int(L * (1 - mask_ratio))` positions. The noise
comes either from the caller (bit-for-bit MAE semantics) or from `mask_noise(seeds, L)`, a counter-based hash
of a per-sample 64-bit seed, so a resumed run (or a Triton kernel) reproduces the same masks from seeds alone.
"""

from __future__ import annotations

import math

import torch

# 32-bit mixing constants of the "lowbias32" integer hash (Wellons); all arithmetic is done in int64 and
# masked to 32 bits so the torch reference and a Triton kernel (uint32 arithmetic) give identical bits.
_M32 = 0xFFFFFFFF
_HASH_MUL1 = 0x7FEB352D
_HASH_MUL2 = 0x846CA68B
_GOLDEN = 0x9E3779B9


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 on int64 tensors holding values in [0, 2**32)."""
    x = x & _M32
    x = x ^ (x >> 16)
    x = (x * _HASH_MUL1) & _M32
    x = x ^ (x >> 15)
    x = (x * _HASH_MUL2) & _M32
    x = x ^ (x >> 16)
    return x


def mask_noise(seeds: torch.Tensor, num_patches: int) -> torch.Tensor:
    """Deterministic uniform noise in [0, 1) for MAE masking.

    seeds: int64 [B], one per sample (see `sample_seeds`); returns float32 [B, L] on seeds' device.
    noise[b, i] = hash(hash(seed_lo[b] ^ hash(seed_hi[b])) + i * GOLDEN) / 2**32, rounded to 24 bits so it
    is exact in float32 (ties are broken by position, as a stable argsort does).
    """
    if seeds.dtype != torch.int64 or seeds.dim() != 1:
        raise ValueError(
            f"seeds must be a 1-D int64 tensor, got {seeds.dtype} of shape {tuple(seeds.shape)}."
        )
    lo = seeds & _M32
    hi = (seeds >> 32) & _M32
    base = _hash32(lo ^ _hash32(hi))  # [B]
    idx = torch.arange(num_patches, device=seeds.device, dtype=torch.int64)
    bits = _hash32(base[:, None] + idx[None, :] * _GOLDEN)  # [B, L]
    return (bits >> 8).to(torch.float32) * (1.0 / (1 << 24))


def sample_seeds(
    seed: int, step: int, rank: int, batch_size: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Per-sample int64 seeds [batch_size] from (run seed, micro-step, data rank).

    A resumed run passes the same (seed, step, rank) and so masks exactly as the uninterrupted run did.
    """
    key = torch.tensor([seed & _M32, step & _M32, rank & _M32], dtype=torch.int64)
    h = _hash32(_hash32(_hash32(key[0]) ^ key[1]) ^ (key[2] * _GOLDEN))
    idx = torch.arange(batch_size, dtype=torch.int64)
    lo = _hash32(h + idx * _GOLDEN)
    hi = _hash32(lo ^ h)
    return (((hi & 0x7FFFFFFF) << 32) | lo).to(device)  # 63 bits: non-negative int64


def keep_count(num_patches: int, mask_ratio: float) -> int:
    """Tokens kept by MAE masking: int(L * (1 - mask_ratio)), as in models_mae.py."""
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}.")
    return int(num_patches * (1 - mask_ratio))


def mask_gather_reference(
    x: torch.Tensor, pos_embed: torch.Tensor, noise: torch.Tensor, len_keep: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Encoder side of MAE masking.

    x: [B, L, D] patch tokens (no cls, no pos-embed); pos_embed: [L, D] or [1, L, D]; noise: [B, L].
    Returns x_kept [B, len_keep, D] = (x + pos)[ids_keep], ids_keep [B, len_keep] (int64),
    ids_restore [B, L] (int64, inverse of the shuffle), mask [B, L] (x.dtype; 0 is keep, 1 is remove).
    """
    B, L, D = x.shape
    pos = pos_embed.reshape(1, L, D)
    ids_shuffle = torch.argsort(noise, dim=1, stable=True)  # ascend: small is keep, large is remove
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :len_keep]
    x_kept = torch.gather(x + pos, 1, ids_keep.unsqueeze(-1).expand(-1, -1, D))
    mask = torch.ones(B, L, device=x.device, dtype=x.dtype)
    mask[:, :len_keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return x_kept, ids_keep, ids_restore, mask


def unshuffle_fill_reference(
    x_kept: torch.Tensor, mask_token: torch.Tensor, ids_restore: torch.Tensor, pos_embed: torch.Tensor
) -> torch.Tensor:
    """Decoder side of MAE masking: put kept tokens back in place, mask tokens elsewhere, add pos-embed.

    x_kept: [B, K, D] decoder-embedded kept tokens (no cls); mask_token: [D] or [1, 1, D];
    ids_restore: [B, L]; pos_embed: [L, D] or [1, L, D]. Returns [B, L, D]:
    out[b, i] = (x_kept[b, ids_restore[b, i]] if ids_restore[b, i] < K else mask_token) + pos[i].
    """
    B, K, D = x_kept.shape
    L = ids_restore.shape[1]
    mask_tokens = mask_token.reshape(1, 1, D).expand(B, L - K, D).to(x_kept.dtype)
    full = torch.cat([x_kept, mask_tokens], dim=1)
    full = torch.gather(full, 1, ids_restore.unsqueeze(-1).expand(-1, -1, D))
    return full + pos_embed.reshape(1, L, D)


def attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Non-causal softmax attention, (B, H, N, D) in and out, scale 1/sqrt(D); math in q's dtype."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    attn = torch.softmax((q @ k.transpose(-2, -1)) * scale, dim=-1)
    return attn @ v
