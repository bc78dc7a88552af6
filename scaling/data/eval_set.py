"""A labelled evaluation set read exactly once, in a fixed order: every sample, no shuffle, no substitution.

Serves `scaling eval` (feature extraction) and validation during training (scaling/engine/validation.py):
the same samples, the same order and the same deterministic transform, so both give the same numbers.

Sources: webdataset shards with a manifest (a `shards.json`, its folder, or a pattern next to one: the
per-shard counts let each rank read only its own range), or an image folder tree (`ROOT/<class>/<image>`) /
list file, as `scaling data write` reads them. Sample i of the set is the i-th sample in shard order.
Ranks get contiguous, disjoint ranges covering every sample (`rank_range`); a broken sample is an error,
not a skip: an evaluation that silently drops or repeats samples is not comparable across runs.

Transform: resize the centre `center_fraction` square of the image to `size` (MAE's eval: resize 256 + centre
crop 224 = 0.875), no flip; images come out uint8 [B, 3, S, S] like the train loader's.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from scaling.config import ConfigError
from scaling.data.decode import ImageError, decode_crop, image_size
from scaling.data.inputs import LIST_SUFFIXES, scan
from scaling.data.reader import TarSource
from scaling.data.shards import MANIFEST, ShardSet, is_local, list_shards, local_path
from scaling.data.skips import SkipCounter
from scaling.data.transforms import CropSpec, sample_box

_NO_UNIFORMS = np.zeros(1)


@dataclass(frozen=True)
class EvalTransform:
    size: int
    center_fraction: float = 0.875
    interpolation: str = "bicubic"

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ConfigError(f"eval image size {self.size}: must be a positive number of pixels.")
        if not 0.0 < self.center_fraction <= 1.0:
            raise ConfigError(f"eval center_fraction={self.center_fraction}: must be in (0, 1] (MAE: 0.875).")
        if self.interpolation not in ("bilinear", "bicubic"):
            raise ConfigError(f"eval interpolation={self.interpolation!r}: use bilinear or bicubic.")

    @property
    def crop(self) -> CropSpec:
        return CropSpec(size=self.size, scale=None, flip=False, center_fraction=self.center_fraction)


@dataclass
class Sample:
    key: str
    image: bytes
    label: int  # the first label id (single-label evaluation)


class EvalSet:
    """The samples of `spec` in a fixed order; `read(lo, hi)` yields samples lo..hi-1 (checked)."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self._shards: ShardSet | None = None
        self._records = None
        path = Path(local_path(spec)) if is_local(spec) else None
        tree = path is not None and path.is_dir() and not (path / MANIFEST).is_file() and not any(path.glob("*.tar"))
        listing = path is not None and path.is_file() and path.suffix.lower() in LIST_SUFFIXES
        if tree or listing:
            records, classes = scan(spec)
            if not classes:
                raise ConfigError(f"evaluation data {spec!r} has no labels: give one class per sub-folder.")
            self._records, self.classes = records, list(classes)
            self.num_samples = len(records)
        else:
            shards = list_shards(spec)
            if shards.counts is None:
                raise ConfigError(
                    f"evaluation data {spec!r} has no manifest with per-shard counts (needed to read every "
                    "sample exactly once across ranks): run `scaling data inspect SHARDS --write-manifest`.")
            if shards.label_field == "none" or not shards.classes:
                raise ConfigError(
                    f"evaluation data {spec!r} has no labels or no class list in its manifest: write it with "
                    "`scaling data write SRC OUT --labels FILE` (or from a class-per-folder tree).")
            self._shards, self.classes = shards, list(shards.classes)
            self.num_samples = int(shards.counts.sum())
        if self.num_samples == 0:
            raise ConfigError(f"evaluation data {spec!r} holds no samples.")

    def fingerprint(self) -> str:
        """sha256 of what the set is: file paths, sizes and modification times, and the class list."""
        h = hashlib.sha256(repr(self.classes).encode())
        if self._shards is not None:
            for url, n in zip(self._shards.urls, self._shards.counts.tolist()):
                h.update(f"{url}|{n}|{_stat(url)}".encode())
        else:
            for r in self._records:
                h.update(f"{r.key}|{r.path}|{r.offset}|{r.size}|{_stat(r.path)}".encode())
        return h.hexdigest()

    def rank_range(self, rank: int, world_size: int) -> tuple[int, int]:
        """Samples [lo, hi) of `rank`: contiguous, disjoint, covering all; sizes differ by at most one."""
        n = self.num_samples
        return rank * n // world_size, (rank + 1) * n // world_size

    def read(self, lo: int = 0, hi: int | None = None) -> Iterator[Sample]:
        hi = self.num_samples if hi is None else hi
        if self._records is not None:
            vocab = {name: i for i, name in enumerate(self.classes)}
            for r in self._records[lo:hi]:
                with open(r.path, "rb") as f:
                    yield Sample(r.key, f.read(), vocab[r.labels[0]])
            return
        assert self._shards is not None
        source = TarSource(self._shards, need_labels=True, retries=1, retry_delay_s=0.5)
        skips = SkipCounter(log_every_s=1e9)
        start = 0
        for shard, n in enumerate(self._shards.counts.tolist()):
            a, b = max(lo, start), min(hi, start + n)
            if a < b:
                for item in source.read(shard, a - start, b - start, skips):
                    if item.problem is not None:
                        raise ConfigError(
                            f"evaluation data {self.spec!r}: sample {item.key} of shard "
                            f"{self._shards.urls[shard]!r} is unusable ({item.problem}: {item.detail}); "
                            "evaluation reads every sample exactly once: fix or rewrite the shard.")
                    label = item.labels[0]
                    if not 0 <= label < len(self.classes):
                        raise ConfigError(
                            f"evaluation data {self.spec!r}: sample {item.key} has label id {label}, outside "
                            f"the manifest's class list of {len(self.classes)} classes; fix the labels or the "
                            "manifest's `classes`.")
                    yield Sample(str(item.key), item.image, label)
            start += n
            if start >= hi:
                return

    def batches(
        self, transform: EvalTransform, batch_size: int, lo: int = 0, hi: int | None = None
    ) -> Iterator[dict[str, object]]:
        """{"image": uint8 [b, 3, S, S], "label": int64 [b], "key": [b]} for samples lo..hi-1; the last batch
        is smaller (b <= batch_size), never dropped."""
        crop = transform.crop
        chunk: list[Sample] = []
        for sample in self.read(lo, hi):
            chunk.append(sample)
            if len(chunk) == batch_size:
                yield _decode(chunk, crop, transform.interpolation, self.spec)
                chunk = []
        if chunk:
            yield _decode(chunk, crop, transform.interpolation, self.spec)


def _decode(chunk: list[Sample], crop: CropSpec, interpolation: str, spec: str) -> dict[str, object]:
    images = torch.empty((len(chunk), 3, crop.size, crop.size), dtype=torch.uint8)
    for i, s in enumerate(chunk):
        try:
            h, w = image_size(s.image)
            left, top, cw, ch, flip = sample_box(crop, h, w, _NO_UNIFORMS)
            decode_crop(s.image, (h, w), (left, top, cw, ch), flip, images[i], interpolation)
        except ImageError as e:
            raise ConfigError(f"evaluation data {spec!r}: sample {s.key} is not a decodable image ({e}).") from e
    return {"image": images, "label": torch.tensor([s.label for s in chunk], dtype=torch.int64),
            "key": [s.key for s in chunk]}


def _stat(path: str) -> str:
    if not is_local(path):
        return "remote"
    try:
        st = os.stat(local_path(path))
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"
