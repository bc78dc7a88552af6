"""Position embeddings: MAE's fixed 2-D sin-cos table, and bicubic resampling to a new grid."""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)


def _sincos_1d(dim: int, pos: torch.Tensor) -> torch.Tensor:
    """pos: [M] -> [M, dim]: half sin, half cos, frequencies 1/10000^(2i/dim) (MAE util/pos_embed.py)."""
    omega = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0)
    omega = 1.0 / 10000**omega
    out = pos.reshape(-1, 1).to(torch.float64) * omega.reshape(1, -1)
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1)


def sincos_2d(dim: int, grid: int, cls_token: bool = True) -> torch.Tensor:
    """[1 + grid*grid, dim] (or [grid*grid, dim]) fixed table equal to MAE's get_2d_sincos_pos_embed.

    The first half of the channels encodes the column (w) coordinate, the second the row (h), and the
    cls row is zeros, as in MAE, so MAE checkpoints and ours agree bit for bit in float32.
    """
    if dim % 4:
        raise ValueError(f"sin-cos position embedding needs a width divisible by 4, got {dim}.")
    coords = torch.arange(grid, dtype=torch.float64)
    gw, gh = torch.meshgrid(coords, coords, indexing="xy")  # MAE: np.meshgrid(grid_w, grid_h)
    emb = torch.cat([_sincos_1d(dim // 2, gw.reshape(-1)), _sincos_1d(dim // 2, gh.reshape(-1))], dim=1)
    if cls_token:
        emb = torch.cat([torch.zeros(1, dim, dtype=torch.float64), emb], dim=0)
    return emb.to(torch.float32)


def resample_pos_embed(pos_embed: torch.Tensor, new_grid: int, num_prefix_tokens: int = 1) -> torch.Tensor:
    """Bicubic-resample a [1, prefix + g*g, D] table to [1, prefix + new_grid^2, D] (timm semantics)."""
    prefix, grid_tokens = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    old_grid = int(math.isqrt(grid_tokens.shape[1]))
    if old_grid * old_grid != grid_tokens.shape[1]:
        raise ValueError(f"position embedding has {grid_tokens.shape[1]} grid tokens: not a square grid.")
    if old_grid == new_grid:
        return pos_embed
    dim = grid_tokens.shape[-1]
    orig_dtype = grid_tokens.dtype
    grid_tokens = grid_tokens.reshape(1, old_grid, old_grid, dim).permute(0, 3, 1, 2).float()
    grid_tokens = F.interpolate(
        grid_tokens, size=(new_grid, new_grid), mode="bicubic", antialias=True, align_corners=False
    )
    grid_tokens = grid_tokens.permute(0, 2, 3, 1).reshape(1, new_grid * new_grid, dim).to(orig_dtype)
    log.info(
        "resampled position embedding from a %dx%d to a %dx%d grid (bicubic)",
        old_grid,
        old_grid,
        new_grid,
        new_grid,
    )
    return torch.cat([prefix, grid_tokens], dim=1)
