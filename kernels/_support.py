"""Shared plumbing for the Triton kernels: where they can run, output allocation, poisoning for tests.

The Triton modules (`_attention_triton.py`, `_masking_triton.py`) are imported lazily, on the first fused
call, so that `import scaling.kernels` never imports Triton and `TRITON_INTERPRET=1` only has to be set
before that first call (Triton reads it when a `@triton.jit` function is defined).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

_poison = False


def interpreting() -> bool:
    """True when Triton runs kernels on the CPU through its interpreter (`TRITON_INTERPRET=1`)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "yes", "on")


def device_reason(t: torch.Tensor) -> str:
    """Why a Triton kernel cannot run on `t`'s device, or "" when it can."""
    if t.device.type == "cuda":
        return ""
    if t.device.type == "cpu":
        if interpreting():
            return ""
        return (
            "fused kernels run on CUDA tensors, or on CPU tensors only under the Triton interpreter "
            "(set TRITON_INTERPRET=1 before the first fused call); use the reference on CPU"
        )
    return f"fused kernels run on CUDA (or CPU under TRITON_INTERPRET=1), not on device '{t.device.type}'"


@contextlib.contextmanager
def poisoned_outputs() -> Iterator[None]:
    """Inside this block kernel outputs are allocated filled with NaN (floats) or a negative sentinel
    (integers): an element a kernel forgot to write then fails a comparison instead of passing by luck."""
    global _poison
    previous, _poison = _poison, True
    try:
        yield
    finally:
        _poison = previous


def new_output(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Uninitialised output for a kernel to fill completely (poisoned inside `poisoned_outputs`)."""
    out = torch.empty(shape, dtype=dtype, device=device)
    if _poison:
        out.fill_(float("nan") if dtype.is_floating_point else -12345)
    return out


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def launch_device(t: torch.Tensor) -> contextlib.AbstractContextManager:
    """Make `t`'s GPU current for the launch (Triton launches on the current device); a no-op when it
    already is, the usual case of one GPU per process."""
    if t.device.type == "cuda" and t.device.index != torch.cuda.current_device():
        return torch.cuda.device(t.device)
    return contextlib.nullcontext()
