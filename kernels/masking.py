"""Fused MAE masking: encoder-side gather and decoder-side unshuffle/fill, each one pass, with backward.

`fused_mask_gather` equals `mask_gather_reference(x, pos_embed, mask_noise(seeds, L), len_keep)` and
`fused_unshuffle_fill` equals `unshuffle_fill_reference`, bit for bit in every dtype (the kernels only move
data and add once in fp32, like torch does). The data movement of both backwards is a Triton permutation;
the reductions the references' autograd performs (pos-embed and mask-token gradients) are done with the
same torch sums over the same layouts, so gradients are bit-identical too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from scaling.kernels import _support

DTYPES = (torch.float16, torch.bfloat16, torch.float32)
# The interpreter converts fp32 -> bfloat16 by truncation (the GPU rounds to nearest even): no bf16 there.
INTERPRETER_DTYPES = (torch.float16, torch.float32)


@dataclass(frozen=True)
class MaskBlocks:
    rows: int  # patches per program
    rank_cols: int  # patches compared per step of the rank count
    cols: int  # max channels per program (a third grid axis covers wider D)
    warps: int = 4


GPU_BLOCKS = MaskBlocks(rows=32, rank_cols=128, cols=256)
INTERPRETER_BLOCKS = MaskBlocks(rows=16, rank_cols=16, cols=32)  # small: CPU tests cover several blocks


def _blocks(device: torch.device, dim: int) -> tuple[MaskBlocks, int]:
    blocks = GPU_BLOCKS if device.type == "cuda" else INTERPRETER_BLOCKS
    block_d = min(blocks.cols, max(16, 1 << (dim - 1).bit_length()))
    return blocks, block_d


def supports_fused_masking(x: torch.Tensor) -> tuple[bool, str]:
    """Whether the fused masking kernels can run on a tensor like `x`, and if not, why.

    Supported: float16/bfloat16/float32 tensors on CUDA; float16/float32 on CPU under the Triton interpreter.
    """
    reason = _support.device_reason(x)
    if reason:
        return False, reason
    return _dtype_ok(x.dtype, x.device)


def _dtype_ok(dtype: torch.dtype, device: torch.device) -> tuple[bool, str]:
    dtypes = DTYPES if device.type == "cuda" else INTERPRETER_DTYPES
    if dtype in dtypes:
        return True, ""
    where = "CUDA" if device.type == "cuda" else "the Triton interpreter (CPU)"
    return False, f"dtype {dtype} not supported on {where}; supported: {', '.join(map(str, dtypes))}"


def _require(cond: bool, fn: str, msg: str | Callable[[], str]) -> None:
    # msg may be a lambda: the message is only formatted on failure (this runs on every training step).
    if not cond:
        raise ValueError(f"{fn}: {msg() if callable(msg) else msg}.")


def _pos_2d(pos_embed: torch.Tensor, L: int, D: int, fn: str, device: torch.device) -> torch.Tensor:
    _require(
        tuple(pos_embed.shape) in ((L, D), (1, L, D)), fn,
        f"pos_embed must be [{L}, {D}] or [1, {L}, {D}], got {tuple(pos_embed.shape)}",
    )
    _require(pos_embed.device == device, fn, lambda: f"pos_embed is on {pos_embed.device}, expected {device}")
    ok, reason = _dtype_ok(pos_embed.dtype, device)
    _require(ok, fn, lambda: "pos_embed " + reason)
    return pos_embed.reshape(L, D)  # a view: strides are passed to the kernel


class _MaskGather(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, pos_embed: torch.Tensor, seeds: torch.Tensor, len_keep: int):
        from scaling.kernels import _masking_triton as kt

        B, L, D = x.shape
        pos = _pos_2d(pos_embed, L, D, "fused_mask_gather", x.device)
        out_dtype = torch.promote_types(x.dtype, pos.dtype)  # dtype of x + pos in the reference
        x_kept = _support.new_output((B, len_keep, D), out_dtype, x.device)
        ids_keep = _support.new_output((B, len_keep), torch.int64, x.device)
        ids_restore = _support.new_output((B, L), torch.int64, x.device)
        mask = _support.new_output((B, L), x.dtype, x.device)
        blocks, block_d = _blocks(x.device, D)
        grid = (_support.cdiv(L, blocks.rows), B, _support.cdiv(D, block_d))
        with _support.launch_device(x):
            kt.mask_gather_fwd_kernel[grid](
                x, pos, seeds, x_kept, ids_keep, ids_restore, mask, *x.stride(), *pos.stride(),
                L, D, len_keep,
                BLOCK_I=blocks.rows, BLOCK_J=blocks.rank_cols, BLOCK_D=block_d, num_warps=blocks.warps,
            )
        ctx.save_for_backward(ids_restore)
        ctx.meta = (x.dtype, pos_embed.dtype, pos_embed.shape, out_dtype, len_keep)
        ctx.mark_non_differentiable(ids_keep, ids_restore, mask)
        return x_kept, ids_keep, ids_restore, mask

    @staticmethod
    def backward(ctx, g_kept: torch.Tensor, *_unused: torch.Tensor):
        from scaling.kernels import _masking_triton as kt

        (ids_restore,) = ctx.saved_tensors
        x_dtype, pos_dtype, pos_shape, out_dtype, len_keep = ctx.meta
        B, L = ids_restore.shape
        D = g_kept.shape[-1]
        g_xp = _support.new_output((B, L, D), out_dtype, g_kept.device)  # d(x + pos), zero where masked
        blocks, block_d = _blocks(g_kept.device, D)
        grid = (_support.cdiv(L, blocks.rows), B, _support.cdiv(D, block_d))
        with _support.launch_device(g_kept):
            kt.mask_gather_bwd_kernel[grid](
                g_kept, ids_restore, g_xp, *g_kept.stride(), L, D, len_keep,
                BLOCK_I=blocks.rows, BLOCK_D=block_d, num_warps=blocks.warps,
            )
        g_x = g_xp.to(x_dtype) if ctx.needs_input_grad[0] else None
        g_pos = None
        if ctx.needs_input_grad[1]:  # the reference's autograd reduces the broadcast pos with this same sum
            g_pos = g_xp.sum(0, keepdim=True).to(pos_dtype).reshape(pos_shape)
        return g_x, g_pos, None, None


class _UnshuffleFill(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x_kept, mask_token, ids_restore, pos_embed):
        from scaling.kernels import _masking_triton as kt

        B, K, D = x_kept.shape
        L = ids_restore.shape[1]
        pos = _pos_2d(pos_embed, L, D, "fused_unshuffle_fill", x_kept.device)
        mt = mask_token.reshape(D)
        out_dtype = torch.promote_types(x_kept.dtype, pos.dtype)
        out = _support.new_output((B, L, D), out_dtype, x_kept.device)
        blocks, block_d = _blocks(x_kept.device, D)
        grid = (_support.cdiv(L, blocks.rows), B, _support.cdiv(D, block_d))
        with _support.launch_device(x_kept):
            kt.unshuffle_fill_fwd_kernel[grid](
                x_kept, mt, ids_restore, pos, out, *x_kept.stride(), *mt.stride(), *ids_restore.stride(),
                *pos.stride(), L, D, K, BLOCK_I=blocks.rows, BLOCK_D=block_d, num_warps=blocks.warps,
            )
        ctx.save_for_backward(ids_restore)
        ctx.meta = (x_kept.dtype, K, mask_token.dtype, mask_token.shape, pos_embed.dtype, pos_embed.shape)
        return out

    @staticmethod
    def backward(ctx, g_out: torch.Tensor):
        from scaling.kernels import _masking_triton as kt

        (ids_restore,) = ctx.saved_tensors
        x_dtype, K, mt_dtype, mt_shape, pos_dtype, pos_shape = ctx.meta
        B, L, D = g_out.shape
        need_x, need_mt, _, need_pos = ctx.needs_input_grad
        g_x = g_mt = g_pos = None
        if need_x or need_mt:
            # Gradient of the reference's cat([x_kept, mask_tokens]) in shuffled order [B, L, D]: rows < K
            # belong to x_kept, rows >= K are the mask-token copies.
            g_full = _support.new_output((B, L, D), x_dtype, g_out.device)
            blocks, block_d = _blocks(g_out.device, D)
            grid = (_support.cdiv(L, blocks.rows), B, _support.cdiv(D, block_d))
            with _support.launch_device(g_out):
                kt.unshuffle_fill_bwd_kernel[grid](
                    g_out, ids_restore, g_full, *g_out.stride(), *ids_restore.stride(), L, D,
                    BLOCK_I=blocks.rows, BLOCK_D=block_d, num_warps=blocks.warps,
                )
            g_x = g_full[:, :K] if need_x else None
            if need_mt:  # the reference's .to() then expand backward, same ops: bit-identical
                g_mt = g_full[:, K:].to(mt_dtype).sum((0, 1), keepdim=True).reshape(mt_shape)
        if need_pos:
            g_pos = g_out.sum(0, keepdim=True).to(pos_dtype).reshape(pos_shape)
        return g_x, g_mt, None, g_pos


def fused_mask_gather(
    x: torch.Tensor, pos_embed: torch.Tensor, seeds: torch.Tensor, len_keep: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Encoder-side MAE masking in one pass: pick the kept patches from per-sample seeds, add pos-embed.

    x: [B, L, D] patch tokens (no cls, no pos-embed), float16/bfloat16/float32, any strides;
    pos_embed: [L, D] or [1, L, D], same device; seeds: int64 [B] (see `sample_seeds`); 0 <= len_keep <= L.
    Returns (x_kept [B, len_keep, D] in the dtype of x + pos_embed, ids_keep int64 [B, len_keep],
    ids_restore int64 [B, L], mask [B, L] in x.dtype, 0 is keep, 1 is remove), exactly
    `mask_gather_reference(x, pos_embed, mask_noise(seeds, L), len_keep)`, ties in the noise included.
    Differentiable in x and pos_embed (bit-identical to the reference's gradients).
    Runs on CUDA, or on CPU under TRITON_INTERPRET=1; raises ValueError otherwise (`supports_fused_masking`).
    """
    fn = "fused_mask_gather"
    ok, reason = supports_fused_masking(x)
    _require(ok, fn, reason)
    _require(x.dim() == 3, fn, lambda: f"x must be [B, L, D], got shape {tuple(x.shape)}")
    B, L, _ = x.shape
    _require(
        seeds.dtype == torch.int64 and tuple(seeds.shape) == (B,) and seeds.device == x.device, fn,
        f"seeds must be int64 [{B}] on {x.device}, got {seeds.dtype} {tuple(seeds.shape)} on {seeds.device}",
    )
    _require(0 <= len_keep <= L, fn, lambda: f"len_keep must be in [0, {L}], got {len_keep}")
    return _MaskGather.apply(x, pos_embed, seeds.contiguous(), int(len_keep))


def fused_unshuffle_fill(
    x_kept: torch.Tensor, mask_token: torch.Tensor, ids_restore: torch.Tensor, pos_embed: torch.Tensor
) -> torch.Tensor:
    """Decoder-side MAE unmasking in one pass: kept tokens back in place, mask token elsewhere, + pos-embed.

    x_kept: [B, K, D] float16/bfloat16/float32, any strides; mask_token: [D] or [1, 1, D];
    ids_restore: int64 [B, L], each row a permutation of 0..L-1 (as `fused_mask_gather` returns it; not
    checked); pos_embed: [L, D] or [1, L, D]. Returns [B, L, D] in the dtype of x_kept + pos_embed:
    out[b, i] = (x_kept[b, r] if r < K else mask_token) + pos_embed[i], r = ids_restore[b, i], exactly
    `unshuffle_fill_reference`. Differentiable in x_kept, mask_token and pos_embed (bit-identical gradients).
    Runs on CUDA, or on CPU under TRITON_INTERPRET=1; raises ValueError otherwise (`supports_fused_masking`).
    """
    fn = "fused_unshuffle_fill"
    ok, reason = supports_fused_masking(x_kept)
    _require(ok, fn, reason)
    _require(x_kept.dim() == 3, fn, lambda: f"x_kept must be [B, K, D], got shape {tuple(x_kept.shape)}")
    B, K, D = x_kept.shape
    _require(
        ids_restore.dtype == torch.int64 and ids_restore.dim() == 2 and ids_restore.shape[0] == B
        and ids_restore.device == x_kept.device, fn,
        f"ids_restore must be int64 [{B}, L] on {x_kept.device}, got {ids_restore.dtype} "
        f"{tuple(ids_restore.shape)} on {ids_restore.device}",
    )
    L = ids_restore.shape[1]
    _require(K <= L, fn, lambda: f"x_kept has {K} tokens, more than L = {L}")
    _require(
        mask_token.numel() == D and mask_token.device == x_kept.device, fn,
        f"mask_token must be [{D}] or [1, 1, {D}] on {x_kept.device}, got {tuple(mask_token.shape)} "
        f"on {mask_token.device}",
    )
    ok, reason = _dtype_ok(mask_token.dtype, x_kept.device)
    _require(ok, fn, lambda: "mask_token " + reason)
    return _UnshuffleFill.apply(x_kept, mask_token, ids_restore, pos_embed)
