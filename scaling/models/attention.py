"""The one attention function every block calls, and the switch that picks its implementation.

`kernels` policy (config key `model.kernels`):
  fused      Triton FlashAttention kernel of `scaling.kernels` (CUDA; CPU only under TRITON_INTERPRET=1)
  sdpa       torch.nn.functional.scaled_dot_product_attention (torch picks flash/efficient/cuDNN/math)
  reference  plain softmax(q k^T / sqrt(d)) v in torch: the semantics the others must equal
  auto       fused where supported (CUDA, fp16/bf16, supported head dim), else sdpa; the reason is logged once
             (`announce`, at a run's start)
The same policy picks the MAE masking path (fused Triton gather vs the torch reference).
"""

from __future__ import annotations

import logging
from typing import Literal

import torch
import torch.nn.functional as F

from scaling.kernels import attention_reference

KernelPolicy = Literal["auto", "fused", "sdpa", "reference"]
POLICIES: tuple[str, ...] = ("auto", "fused", "sdpa", "reference")

log = logging.getLogger(__name__)
_policy: str = "auto"
_logged: set[str] = set()


def set_kernels(policy: str) -> None:
    """Select the attention/masking implementation for every model in this process."""
    global _policy
    if policy not in POLICIES:
        raise ValueError(f"unknown kernels policy {policy!r}; choose one of {', '.join(POLICIES)}.")
    _policy = policy
    _logged.clear()


def get_kernels() -> str:
    return _policy


def _log_once(key: str, message: str) -> None:
    if key not in _logged:
        _logged.add(key)
        log.info(message)


def announce(device: torch.device, dtype: torch.dtype, head_dims: list[int]) -> None:
    """Log what `auto` picks for attention of these head dims (and MAE's masking) on `device`, now: at the start
    of a run, before its progress bar, since a line logged mid-bar breaks the bar's line. The forwards' own
    resolve() then finds each choice logged already."""
    for d in head_dims:
        t = torch.empty(1, 1, 1, d, dtype=dtype, device=device)
        resolve(t)
        resolve_masking(t)


def _fused_support(t: torch.Tensor) -> tuple[bool, str]:
    try:
        from scaling.kernels import supports_fused_attention
    except ImportError as e:  # triton missing or kernels not built for this platform
        return False, f"fused kernels unavailable ({e})"
    return supports_fused_attention(t)


def resolve(t: torch.Tensor) -> str:
    """The implementation the current policy picks for tensor `t` ('fused', 'sdpa' or 'reference')."""
    if _policy != "auto":
        return _policy
    if t.device.type != "cuda":
        _log_once("auto-cpu", "kernels=auto: using torch SDPA (no CUDA device)")
        return "sdpa"
    ok, why = _fused_support(t)
    if ok:
        _log_once("auto-fused", "kernels=auto: using the fused Triton kernels")
        return "fused"
    _log_once("auto-sdpa", f"kernels=auto: falling back to torch SDPA: {why}")
    return "sdpa"


def resolve_masking(t: torch.Tensor) -> str:
    """The MAE masking path for tensor `t`: 'fused' (Triton) or 'reference' (torch gather chain)."""
    if _policy == "fused":
        return "fused"
    if _policy == "auto" and t.device.type == "cuda":
        try:
            from scaling.kernels import supports_fused_masking
        except ImportError as e:  # triton missing on this platform
            ok, why = False, str(e)
        else:
            ok, why = supports_fused_masking(t)
        if ok:
            return "fused"
        _log_once("mask-ref", f"kernels=auto: MAE masking uses the torch reference ({why})")
    return "reference"


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Non-causal attention. q, k, v: [B, H, N, D] -> [B, H, N, D], scale 1/sqrt(D)."""
    impl = resolve(q)
    if impl == "fused":
        from scaling.kernels import flash_attention

        return flash_attention(q, k, v)
    if impl == "sdpa":
        return F.scaled_dot_product_attention(q, k, v)
    return attention_reference(q, k, v)
