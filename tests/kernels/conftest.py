"""Kernel tests run the Triton kernels on CPU through the Triton interpreter.

TRITON_INTERPRET must be set before a `@triton.jit` function is defined; the kernel modules are imported
lazily on the first fused call, so setting it here, at collection, is early enough. The interpreter's
bfloat16 is unreliable (tl.dot multiplies the raw bits, fp32 -> bf16 truncates), so these tests use
fp32/fp16 and the GPU script (benchmarks/bench_kernels_gpu.py) checks bf16.
"""

import os

os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402

from scaling.kernels._support import poisoned_outputs  # noqa: E402


@pytest.fixture(autouse=True)
def _poison_kernel_outputs():
    """Every kernel output starts as NaN (floats) or -12345 (ints): an element left unwritten fails."""
    with poisoned_outputs():
        yield

