"""`synthetic`: deterministic, learnable images generated from the sample index, for tests and smoke runs.

Sample i has class `i % num_classes`. Its image is the class's pattern (a base colour plus three oriented
low-frequency sinusoids, each with a class-specific frequency and colour) at a per-sample random phase,
plus a little fixed-texture noise at a per-sample offset. Low frequencies make masked patches predictable
from visible ones (MAE's loss falls), and colour + orientation identify the class (a classifier learns).
The content is a fixed function of the index: the run seed only changes the order and the assignment, so
runs with different seeds see the same dataset, and a train and a val split (disjoint index ranges) share
class patterns.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from scaling.data import counter_rng
from scaling.data.reader import Item

SHARD_SIZE = 1000  # the synthetic set is cut into virtual shards so it shares the shard assignment code
COMPONENTS = 3
_CLASS_KEY = counter_rng.stream_key(0x5EED, 1)  # class patterns: fixed, independent of the run seed
_SAMPLE_KEY = counter_rng.stream_key(0x5EED, 2)


def synthetic_counts(num_samples: int) -> np.ndarray:
    """Per-virtual-shard sample counts for a synthetic set of `num_samples`."""
    full, rest = divmod(num_samples, SHARD_SIZE)
    counts = [SHARD_SIZE] * full + ([rest] if rest else [])
    return np.asarray(counts, dtype=np.int64)


def synthetic_key(index: int) -> str:
    return f"synthetic-{index:06d}"


class SyntheticImages:
    """Renders uint8 [n, 3, size, size] batches for sample indices; microseconds per 32 px image."""

    def __init__(self, num_classes: int, size: int) -> None:
        if num_classes < 1:
            raise ValueError(f"synthetic data needs num_classes >= 1, got {num_classes}.")
        self.num_classes = num_classes
        self.size = size
        u = counter_rng.uniforms(_CLASS_KEY, np.arange(num_classes), 3 + 4 * COMPONENTS)  # [C, 15]
        self.base = 60.0 + 135.0 * u[:, :3]  # [C, 3] mean colour per class
        comp = u[:, 3:].reshape(num_classes, COMPONENTS, 4)  # [C, K, 4]
        angle = np.pi * comp[..., 0]  # orientation of each sinusoid
        freq = 1.0 + 3.0 * comp[..., 1]  # 1..4 cycles per image: low frequency
        self.kx = 2 * np.pi * freq * np.cos(angle) / size  # [C, K] radians per pixel along x
        self.ky = 2 * np.pi * freq * np.sin(angle) / size
        # Colour of each component: a signed RGB direction, so classes differ in hue as well as orientation.
        hue = 2 * np.pi * (comp[..., 2:3] + np.arange(3) / 3.0)  # [C, K, 3]
        self.color = 35.0 * np.cos(hue) * (0.6 + 0.4 * comp[..., 3:4])
        # One noise texture, read at a per-sample offset: deterministic noise without per-pixel hashing.
        self.noise = np.random.default_rng(0).integers(-6, 7, size=(3, 2 * size, 2 * size)).astype(np.float32)
        self.grid = np.arange(size, dtype=np.float32)

    def labels(self, index: np.ndarray) -> np.ndarray:
        return np.asarray(index, dtype=np.int64) % self.num_classes

    def render(self, index: np.ndarray) -> np.ndarray:
        """uint8 [n, 3, size, size] for sample indices [n]."""
        index = np.asarray(index, dtype=np.int64)
        n, s = len(index), self.size
        cls = self.labels(index)
        u = counter_rng.uniforms(_SAMPLE_KEY, index, COMPONENTS + 3)  # [n, K + 3]
        phase = 2 * np.pi * u[:, :COMPONENTS]  # [n, K]
        amp = 0.75 + 0.5 * u[:, COMPONENTS : COMPONENTS + 1]  # [n, 1] contrast jitter
        # sin(kx x + ky y + p) = sin(kx x + p) cos(ky y) + cos(kx x + p) sin(ky y): separable, [n, K, s] each.
        ax = self.kx[cls][:, :, None] * self.grid + phase[:, :, None]
        ay = self.ky[cls][:, :, None] * self.grid
        wave = np.einsum("nkx,nky->nkyx", np.sin(ax), np.cos(ay)) + np.einsum(
            "nkx,nky->nkyx", np.cos(ax), np.sin(ay)
        )  # [n, K, s, s]
        img = np.einsum("nkc,nkyx->ncyx", self.color[cls] * amp[:, :, None], wave)  # [n, 3, s, s]
        img += self.base[cls][:, :, None, None]
        off = (u[:, COMPONENTS + 1 :] * s).astype(np.int64)  # [n, 2] noise offsets
        for i in range(n):
            oy, ox = off[i]
            img[i] += self.noise[:, oy : oy + s, ox : ox + s]
        return np.clip(img, 0, 255).astype(np.uint8)


class SyntheticSource:
    """Reads virtual shards of the synthetic set as Items (the lane code treats them like tar shards)."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes

    def read(self, shard: int, lo: int, hi: int | None, skips: object) -> Iterator[Item]:
        assert hi is not None, "synthetic shards always have counts"
        for index in range(shard * SHARD_SIZE + lo, shard * SHARD_SIZE + hi):
            yield Item(synthetic_key(index), labels=[index % self.num_classes], index=index)
