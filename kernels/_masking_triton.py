"""Triton kernels of MAE masking (imported lazily by masking.py).

Encoder side: each program takes BLOCK_I patches of one sample, recomputes the noise of `mask_noise`
from the sample's seed (24-bit integer keys, the same bits the reference turns into floats), ranks its
patches by counting (rank_i = #{j: key_j < key_i or (key_j == key_i and j < i)}, which is exactly the
position a stable ascending argsort gives, ties included), and moves each kept patch, plus its pos-embed,
straight to row rank_i of the output. No sort, no intermediate (x + pos), no index tensor read back.
A third grid axis splits D so wide models still get enough programs; only d-block 0 writes the indices.
"""

import triton
import triton.language as tl


@triton.jit
def _hash32(x):
    # lowbias32 on uint32 (reference._hash32). Products are cast back to uint32 so the wrap-around is the
    # same whatever type the constant promotes the product to.
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D).to(tl.uint32)
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B).to(tl.uint32)
    x = x ^ (x >> 16)
    return x


@triton.jit
def _noise_keys(base, idx):
    # 24-bit key of patch idx: noise[b, idx] * 2**24 in reference.mask_noise.
    bits = _hash32((base + (idx.to(tl.uint32) * 0x9E3779B9).to(tl.uint32)).to(tl.uint32))
    return (bits >> 8).to(tl.int32)


@triton.jit
def mask_gather_fwd_kernel(
    X, POS, SEEDS, XK, IDS_KEEP, IDS_RESTORE, MASK,
    sxb, sxl, sxd, spl, spd,
    L, D, len_keep,
    BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr, BLOCK_D: tl.constexpr,
):
    # X [B, L, D] (any strides), POS [L, D] (any strides); XK [B, len_keep, D] contiguous;
    # IDS_KEEP [B, len_keep], IDS_RESTORE [B, L] int64 and MASK [B, L] (x dtype) contiguous.
    pid_i = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    pid_d = tl.program_id(2)
    seed = tl.load(SEEDS + b)
    lo = (seed & 0xFFFFFFFF).to(tl.uint32)
    hi = ((seed >> 32) & 0xFFFFFFFF).to(tl.uint32)
    base = _hash32(lo ^ _hash32(hi))

    offs_i = pid_i * BLOCK_I + tl.arange(0, BLOCK_I)
    i_ok = offs_i < L
    key_i = _noise_keys(base, offs_i)
    rank = tl.zeros([BLOCK_I], tl.int32)
    for start_j in range(0, L, BLOCK_J):
        offs_j = start_j + tl.arange(0, BLOCK_J)
        key_j = _noise_keys(base, offs_j)
        before = (key_j[None, :] < key_i[:, None]) | (
            (key_j[None, :] == key_i[:, None]) & (offs_j[None, :] < offs_i[:, None])
        )
        before = before & (offs_j < L)[None, :]
        rank += tl.sum(before.to(tl.int32), 1)
    kept = i_ok & (rank < len_keep)

    if pid_d == 0:
        tl.store(IDS_RESTORE + b * L + offs_i, rank.to(tl.int64), mask=i_ok)
        # via fp32: the interpreter turns bool straight into bfloat16 as raw bits (1 -> 9e-41).
        is_masked = (rank >= len_keep).to(tl.float32)
        tl.store(MASK + b * L + offs_i, is_masked.to(MASK.dtype.element_ty), mask=i_ok)
        tl.store(IDS_KEEP + b * len_keep + rank, offs_i.to(tl.int64), mask=kept)

    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    tile = kept[:, None] & (offs_d < D)[None, :]
    x = tl.load(X + b * sxb + offs_i[:, None] * sxl + offs_d[None, :] * sxd, mask=tile, other=0.0)
    p = tl.load(POS + offs_i[:, None] * spl + offs_d[None, :] * spd, mask=tile, other=0.0)
    # Same arithmetic as torch's x + pos: widen both, add once in fp32, round once to the result dtype.
    y = (x.to(tl.float32) + p.to(tl.float32)).to(XK.dtype.element_ty)
    tl.store(XK + (b * len_keep + rank[:, None]) * D + offs_d[None, :], y, mask=tile)


@triton.jit
def mask_gather_bwd_kernel(
    GK, IDS_RESTORE, GX,
    sgb, sgk, sgd,
    L, D, len_keep,
    BLOCK_I: tl.constexpr, BLOCK_D: tl.constexpr,
):
    # GK [B, len_keep, D] (any strides) -> GX [B, L, D] contiguous:
    # GX[b, i] = GK[b, r] if r < len_keep else 0, r = ids_restore[b, i]. Every element of GX is written.
    pid_i = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    pid_d = tl.program_id(2)
    offs_i = pid_i * BLOCK_I + tl.arange(0, BLOCK_I)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    i_ok = offs_i < L
    d_ok = offs_d < D
    r = tl.load(IDS_RESTORE + b * L + offs_i, mask=i_ok, other=0)
    kept = i_ok & (r < len_keep)
    g = tl.load(GK + b * sgb + r[:, None] * sgk + offs_d[None, :] * sgd, mask=kept[:, None] & d_ok[None, :],
                other=0.0)
    tl.store(GX + (b * L + offs_i[:, None]) * D + offs_d[None, :], g.to(GX.dtype.element_ty),
             mask=i_ok[:, None] & d_ok[None, :])


@triton.jit
def unshuffle_fill_fwd_kernel(
    XK, MT, IDS_RESTORE, POS, OUT,
    sxb, sxk, sxd, smd, srb, srl, spl, spd,
    L, D, len_keep,
    BLOCK_I: tl.constexpr, BLOCK_D: tl.constexpr,
):
    # XK [B, K, D], MT [D], IDS_RESTORE [B, L], POS [L, D] (any strides) -> OUT [B, L, D] contiguous:
    # OUT[b, i] = (XK[b, r] if r < K else MT) + POS[i], r = ids_restore[b, i].
    pid_i = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    pid_d = tl.program_id(2)
    offs_i = pid_i * BLOCK_I + tl.arange(0, BLOCK_I)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    i_ok = offs_i < L
    d_ok = offs_d < D
    r = tl.load(IDS_RESTORE + b * srb + offs_i * srl, mask=i_ok, other=0)
    kept = i_ok & (r < len_keep)
    x = tl.load(XK + b * sxb + r[:, None] * sxk + offs_d[None, :] * sxd, mask=kept[:, None] & d_ok[None, :],
                other=0.0)
    # The reference casts the mask token to x_kept's dtype before the gather: round it the same way.
    mt = tl.load(MT + offs_d * smd, mask=d_ok, other=0.0).to(XK.dtype.element_ty)
    val = tl.where(kept[:, None], x, mt[None, :])
    tile = i_ok[:, None] & d_ok[None, :]
    p = tl.load(POS + offs_i[:, None] * spl + offs_d[None, :] * spd, mask=tile, other=0.0)
    y = (val.to(tl.float32) + p.to(tl.float32)).to(OUT.dtype.element_ty)
    tl.store(OUT + (b * L + offs_i[:, None]) * D + offs_d[None, :], y, mask=tile)


@triton.jit
def unshuffle_fill_bwd_kernel(
    GO, IDS_RESTORE, GF,
    sgb, sgl, sgd, srb, srl,
    L, D,
    BLOCK_I: tl.constexpr, BLOCK_D: tl.constexpr,
):
    # GO [B, L, D] (any strides) -> GF [B, L, D] contiguous in shuffled order: GF[b, r] = GO[b, i],
    # r = ids_restore[b, i], a permutation, so every row of GF is written once. Rows r < K are dx_kept,
    # rows r >= K are the mask-token copies whose sum is d mask_token.
    pid_i = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    pid_d = tl.program_id(2)
    offs_i = pid_i * BLOCK_I + tl.arange(0, BLOCK_I)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    i_ok = offs_i < L
    tile = i_ok[:, None] & (offs_d < D)[None, :]
    r = tl.load(IDS_RESTORE + b * srb + offs_i * srl, mask=i_ok, other=0)
    g = tl.load(GO + b * sgb + offs_i[:, None] * sgl + offs_d[None, :] * sgd, mask=tile, other=0.0)
    tl.store(GF + (b * L + r[:, None]) * D + offs_d[None, :], g.to(GF.dtype.element_ty), mask=tile)
