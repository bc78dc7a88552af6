"""Fused non-causal attention (FlashAttention-2 style), forward and backward, for (B, H, N, D) tensors.

Equals `reference.attention_reference` (softmax(q k^T / sqrt(D)) v) up to float rounding; never builds the
N x N score matrix. Forward: one program per (batch*head, query block) streams key blocks with an online
softmax and stores O and the per-row log-sum-exp. Backward is split in three deterministic kernels (no
atomics): delta = rowsum(dO * O), then dK/dV per key block looping over query blocks, then dQ per query
block looping over key blocks (it recomputes the scores once more instead of accumulating dQ atomically).

A head dim that is not a power of two is held as two column parts (80 = 64 + 16, `head_split`), so D=80
costs 80 columns of work rather than 128, without copying or padding the tensors. Block sizes are fixed
per tile width (no autotuning: the compile cost stays predictable, a few seconds per dtype and head dim);
under the Triton interpreter small blocks are used so CPU tests cover several blocks and ragged tails.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from scaling.kernels import _support

MAX_HEAD_DIM = 128
GPU_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
# The interpreter's tl.dot multiplies bfloat16 as raw integers (silently wrong): fp32/fp16 only there.
INTERPRETER_DTYPES = (torch.float32, torch.float16)


@dataclass(frozen=True)
class Blocks:
    """Tile sizes of one kernel: rows per program (m), rows per inner step (n), warps and pipeline stages."""

    m: int
    n: int
    warps: int = 4
    stages: int = 2


@dataclass(frozen=True)
class AttentionConfig:
    fwd: Blocks
    dkdv: Blocks  # m: query rows per inner step, n: key rows per program
    dq: Blocks  # m: query rows per program, n: key rows per inner step
    delta_rows: int = 64


# Keyed by the tile width DA + DB (see `head_split`): 64 for D <= 64, 96 for 80 (64 + 16) and 96 (64 + 32),
# 128 above. Chosen on an H200 with `benchmarks/bench_kernels_gpu.py --sweep` (bf16, N = 197 and 1025,
# whole-backward time per dK/dV or dQ candidate); module state, so a benchmark can try others. Small
# query steps in dK/dV (16 rows) suit the short ViT sequences; D=128 uses 32-key forward steps, best at
# N <= 257 (N = 1025 prefers 64: 5% slower here).
GPU_CONFIGS: dict[int, AttentionConfig] = {
    64: AttentionConfig(fwd=Blocks(64, 64, 4, 3), dkdv=Blocks(16, 64, 4, 3), dq=Blocks(64, 32, 4, 3)),
    96: AttentionConfig(fwd=Blocks(64, 64, 4, 3), dkdv=Blocks(16, 64, 4, 3), dq=Blocks(64, 32, 4, 3)),
    128: AttentionConfig(fwd=Blocks(64, 32, 4, 3), dkdv=Blocks(32, 64, 4, 3), dq=Blocks(64, 32, 4, 3)),
}
INTERPRETER_CONFIG = AttentionConfig(Blocks(32, 16), Blocks(16, 32), Blocks(32, 16), delta_rows=32)


def _pow2_at_least(n: int) -> int:
    return 1 << (n - 1).bit_length()


def head_split(head_dim: int) -> tuple[int, int]:
    """Columns (DA, DB) the kernels hold a head of `head_dim` in: DA a power of two, DB 0 or a power of
    two >= 16 (tl.dot needs K >= 16); DA + DB >= head_dim, the excess read as zeros. 64 -> (64, 0),
    80 -> (64, 16), 128 -> (128, 0), 112 -> (64, 64)."""
    da = max(16, 1 << (head_dim.bit_length() - 1))
    rest = head_dim - da
    return da, (0 if rest <= 0 else max(16, _pow2_at_least(rest)))


def config_for(head_dim: int, device: torch.device) -> AttentionConfig:
    if device.type == "cpu":
        return INTERPRETER_CONFIG
    width = sum(head_split(head_dim))
    return GPU_CONFIGS[min(k for k in GPU_CONFIGS if k >= width)]


def supports_fused_attention(q: torch.Tensor) -> tuple[bool, str]:
    """Whether `flash_attention` can run on a tensor like `q` (device, dtype, head dim), and if not, why.

    Supported: CUDA tensors in float16/bfloat16/float32, or CPU tensors in float32/float16 under the Triton
    interpreter (TRITON_INTERPRET=1); 4-D (B, H, N, D) with D a multiple of 16 from 16 to 128.
    """
    reason = _support.device_reason(q)
    if reason:
        return False, reason
    dtypes = GPU_DTYPES if q.device.type == "cuda" else INTERPRETER_DTYPES
    if q.dtype not in dtypes:
        where = "CUDA" if q.device.type == "cuda" else "the Triton interpreter (CPU)"
        return False, f"dtype {q.dtype} not supported on {where}; supported: {', '.join(map(str, dtypes))}"
    if q.dtype == torch.bfloat16 and torch.cuda.get_device_capability(q.device) < (8, 0):
        return False, "bfloat16 attention needs a GPU of compute capability >= 8.0"
    if q.dim() != 4:
        return False, f"expected (B, H, N, D) tensors, got shape {tuple(q.shape)}"
    d = q.shape[-1]
    # D % 16 == 8 (e.g. 72, 40) gave wrong results on an H200 (Triton 3.6) while right in the interpreter:
    # only multiples of 16, each checked on that GPU (16 ... 128), are accepted.
    if not (16 <= d <= MAX_HEAD_DIM and d % 16 == 0):
        return False, f"head dim {d} not supported; supported: multiples of 16 from 16 to {MAX_HEAD_DIM}"
    if q.shape[2] == 0:
        return False, "sequence length N must be >= 1"
    return True, ""


def _check(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    ok, reason = supports_fused_attention(q)
    if not ok:
        raise ValueError(f"flash_attention: {reason}.")
    for name, t in (("k", k), ("v", v)):
        if t.shape != q.shape or t.dtype != q.dtype or t.device != q.device:
            raise ValueError(
                f"flash_attention: {name} must match q in shape, dtype and device; got q {tuple(q.shape)} "
                f"{q.dtype} {q.device}, {name} {tuple(t.shape)} {t.dtype} {t.device}."
            )


def _precision(dtype: torch.dtype) -> str:
    # fp32 inputs: exact fp32 products (no TF32) so fp32 results match a float64 reference to ~1e-6.
    return "ieee" if dtype == torch.float32 else "tf32"


def _strides(t: torch.Tensor) -> tuple[int, int, int, int]:
    return tuple(t.stride())  # type: ignore[return-value]


def _forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    from scaling.kernels import _attention_triton as kt

    B, H, N, D = q.shape
    cfg = config_for(D, q.device)
    da, db = head_split(D)
    o = _support.new_output((B, H, N, D), q.dtype, q.device)
    lse = _support.new_output((B * H, N), torch.float32, q.device)  # base-2 log-sum-exp of scaled scores
    qk_scale = (1.0 / math.sqrt(D)) * math.log2(math.e)
    grid = (_support.cdiv(N, cfg.fwd.m), B * H)
    with _support.launch_device(q):
        kt.attn_fwd_kernel[grid](
            q, k, v, o, lse, *_strides(q), *_strides(k), *_strides(v), H, N, qk_scale,
            HEAD_DIM=D, DA=da, DB=db, BLOCK_M=cfg.fwd.m, BLOCK_N=cfg.fwd.n, PRECISION=_precision(q.dtype),
            num_warps=cfg.fwd.warps, num_stages=cfg.fwd.stages,
        )
    return o, lse


def _backward(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, o: torch.Tensor, lse: torch.Tensor, do: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from scaling.kernels import _attention_triton as kt

    B, H, N, D = q.shape
    cfg = config_for(D, q.device)
    da, db = head_split(D)
    sm_scale = 1.0 / math.sqrt(D)
    qk_scale = sm_scale * math.log2(math.e)
    precision = _precision(q.dtype)
    delta = _support.new_output((B * H, N), torch.float32, q.device)
    dq = _support.new_output((B, H, N, D), q.dtype, q.device)
    dk = _support.new_output((B, H, N, D), q.dtype, q.device)
    dv = _support.new_output((B, H, N, D), q.dtype, q.device)
    qkv_do_strides = (*_strides(q), *_strides(k), *_strides(v), *_strides(do))
    with _support.launch_device(q):
        kt.attn_bwd_delta_kernel[(_support.cdiv(N, cfg.delta_rows), B * H)](
            o, do, delta, *_strides(do), H, N, HEAD_DIM=D, BLOCK_D=_pow2_at_least(D), BLOCK_M=cfg.delta_rows,
        )
        kt.attn_bwd_dkdv_kernel[(_support.cdiv(N, cfg.dkdv.n), B * H)](
            q, k, v, do, lse, delta, dk, dv, *qkv_do_strides, H, N, qk_scale, sm_scale,
            HEAD_DIM=D, DA=da, DB=db, BLOCK_M=cfg.dkdv.m, BLOCK_N=cfg.dkdv.n, PRECISION=precision,
            num_warps=cfg.dkdv.warps, num_stages=cfg.dkdv.stages,
        )
        kt.attn_bwd_dq_kernel[(_support.cdiv(N, cfg.dq.m), B * H)](
            q, k, v, do, lse, delta, dq, *qkv_do_strides, H, N, qk_scale, sm_scale,
            HEAD_DIM=D, DA=da, DB=db, BLOCK_M=cfg.dq.m, BLOCK_N=cfg.dq.n, PRECISION=precision,
            num_warps=cfg.dq.warps, num_stages=cfg.dq.stages,
        )
    return dq, dk, dv


class FlashAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        o, lse = _forward(q, k, v)
        ctx.save_for_backward(q, k, v, o, lse)
        return o

    @staticmethod
    def backward(ctx, do: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q, k, v, o, lse = ctx.saved_tensors
        return _backward(q, k, v, o, lse, do)


def flash_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Non-causal softmax attention softmax(q k^T / sqrt(D)) v, fused, differentiable in q, k and v.

    q, k, v: (B, H, N, D), same shape, dtype and device, any strides (views of one qkv projection are
    read in place, never copied). Any N >= 1; D a multiple of 16 from 16 to 128 (64, 80, 128 for ViT-B to
    ViT-6.5B; 80 runs as 64 + 16 columns inside the kernel). dtypes: float16, bfloat16, float32 on CUDA (fp32
    accumulation; fp32 inputs use exact fp32 products, no TF32); float32/float16 on CPU under the Triton
    interpreter (TRITON_INTERPRET=1). Returns a contiguous (B, H, N, D) tensor of q's dtype equal to
    `scaling.kernels.attention_reference(q, k, v)` up to rounding. Raises ValueError naming what is
    supported otherwise (see `supports_fused_attention`).
    """
    _check(q, k, v)
    return FlashAttention.apply(q, k, v)
