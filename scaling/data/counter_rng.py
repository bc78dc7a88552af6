"""Counter-based randomness: every random number is a pure function of (seed, stream, index).

Why not a stateful generator: a crop, a flip, a shuffle order or a shard draw must be recomputable for any
sample after a restart, in any worker, without replaying the stream. Hashing the coordinates with
splitmix64 (Steele et al. 2014; the seeding hash of java.util.SplittableRandom) gives independent-looking
uniforms at numpy speed, and the loader's state stays a few integers.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on a uint64 array (wrapping arithmetic is the point)."""
    with np.errstate(over="ignore"):
        x = x + _GOLDEN
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        return x ^ (x >> np.uint64(31))


def stream_key(*parts: int) -> int:
    """One 64-bit key from a tuple of non-negative integers, e.g. (seed, purpose, epoch)."""
    h = np.zeros(1, dtype=np.uint64)
    for p in parts:
        h = _mix(h ^ np.uint64(int(p) & 0xFFFFFFFFFFFFFFFF))
    return int(h[0])


def hashes(key: int, index: np.ndarray | int, n: int = 1) -> np.ndarray:
    """uint64 hashes [len(index), n] for stream `key` at positions `index` (an int or int array)."""
    idx = np.atleast_1d(np.asarray(index, dtype=np.int64)).astype(np.uint64)
    base = _mix(idx ^ np.uint64(key))  # [N]
    with np.errstate(over="ignore"):
        lanes = base[:, None] + np.arange(n, dtype=np.uint64)[None, :] * _GOLDEN  # [N, n]
    return _mix(lanes)


def uniforms(key: int, index: np.ndarray | int, n: int = 1) -> np.ndarray:
    """float64 uniforms in [0, 1), shape [len(index), n]."""
    return (hashes(key, index, n) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def integers(key: int, index: np.ndarray | int, high: int) -> np.ndarray:
    """int64 uniform in [0, high) at each index, shape [len(index)]."""
    return np.minimum((uniforms(key, index, 1)[:, 0] * high).astype(np.int64), high - 1)


def permutation(key: int, n: int) -> np.ndarray:
    """A uniformly random permutation of range(n), as a pure function of `key` (argsort of hashes)."""
    return np.argsort(hashes(key, np.arange(n), 1)[:, 0], kind="stable")
