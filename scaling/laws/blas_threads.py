"""Run L-BFGS-B with single-threaded OpenBLAS.

Since SciPy 1.15, L-BFGS-B is C code calling BLAS/LAPACK (dpotrf, dtrtrs, ...) on tiny matrices, and
OpenBLAS wakes worker threads for them that then spin against the main thread (scipy/scipy#22438,
OpenMathLib/OpenBLAS#5383). On 2 shared cores we measured a fit 5-7x slower in a process where numpy was
imported without OPENBLAS_NUM_THREADS=1. threadpoolctl fixes this generally; it is not a dependency here,
so this does the one thing we need: find the OpenBLAS builds numpy and scipy loaded, and set their thread
count to 1 for the duration of a block. Where none is found (MKL, macOS, Windows) it does nothing.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

_PREFIXES = ("scipy_openblas", "openblas")
_SUFFIXES = ("", "64_", "_64_", "_")


@cache
def _openblas_controls() -> tuple[tuple, ...]:
    maps = Path("/proc/self/maps")
    if not maps.is_file():
        return ()
    paths = sorted(
        {line.split()[-1] for line in maps.read_text().splitlines() if "openblas" in line.lower() and ".so" in line}
    )
    controls = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in _PREFIXES:
            for suffix in _SUFFIXES:
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    get.restype, put.argtypes = ctypes.c_int, [ctypes.c_int]
                    controls.append((get, put))
                    break
            else:
                continue
            break
    return tuple(controls)


@contextmanager
def single_blas_thread() -> Iterator[None]:
    controls = _openblas_controls()
    before = [get() for get, _ in controls]
    for _, put in controls:
        put(1)
    try:
        yield
    finally:
        for (_, put), n in zip(controls, before):
            put(n)
