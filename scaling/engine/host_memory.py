"""The host allocator while ZeRO-3 builds a model: glibc's mmap threshold held low, so freed full-size
tensors go back to the OS instead of fragmenting the heap."""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
GLIBC_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # the ceiling glibc's own dynamic threshold grows to (64-bit)


@contextlib.contextmanager
def returning_large_frees_to_the_os():
    """While zero.Init builds on the host, give each freed full-size tensor back to the OS.

    glibc raises its mmap threshold after every large free, so the full tensors that zero.Init creates and
    frees one module at a time soon come from the heap, which they leave fragmented: on 2 CPU ranks a ViT-L
    build kept 1.15 GB on one rank for a 0.61 GB shard. With the threshold held at 128 KiB during the build
    the rank keeps its shard plus 16 MB. Afterwards the threshold goes to glibc's own ceiling (its steady
    state). Not glibc, or MALLOC_MMAP_THRESHOLD_ set by the user: nothing changes."""
    libc = None
    if platform.libc_ver()[0] == "glibc" and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        try:
            libc = ctypes.CDLL(None)
            libc = libc if libc.mallopt(M_MMAP_THRESHOLD, 128 * 1024) == 1 else None
        except (OSError, AttributeError):
            libc = None
    try:
        yield
    finally:
        if libc is not None:
            libc.mallopt(M_MMAP_THRESHOLD, GLIBC_MMAP_THRESHOLD_MAX)
