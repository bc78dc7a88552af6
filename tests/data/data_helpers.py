"""Helpers of the data tests: real JPEGs and tar shards. A module of its own (not conftest) so that
`from data_helpers import ...` cannot pick up another folder's conftest."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image


def jpeg_bytes(seed: int, width: int = 40, height: int = 32, quality: int = 85) -> bytes:
    """A small real JPEG whose content depends on `seed` (smooth gradient + noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = rng.uniform(0, 255, 3)
    img = (
        base
        + 60 * np.sin(x[..., None] / (3 + seed % 5) + rng.uniform(0, 6, 3))
        + rng.normal(0, 8, (height, width, 3))
    )
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_tar(path: Path, samples: list[dict[str, bytes]]) -> Path:
    """Write samples ({"__key__": ..., "jpg": ..., "cls": ...}) as a webdataset tar at `path`."""
    with tarfile.open(path, "w") as tar:
        for sample in samples:
            for ext, data in sample.items():
                if ext != "__key__":
                    add_member(tar, f"{sample['__key__']}.{ext}", data)
    return path


def uneven_shards(folder: Path, sizes: list[int], labelled: bool = True, prefix: str = "s") -> list[str]:
    """Tars of the given sizes with unique keys `{prefix}{shard}_{i}`; returns all keys in write order."""
    folder.mkdir(parents=True, exist_ok=True)
    keys = []
    for s, n in enumerate(sizes):
        samples = []
        for i in range(n):
            key = f"{prefix}{s}_{i}"
            sample = {"__key__": key, "jpg": jpeg_bytes(s * 1000 + i)}
            if labelled:
                sample["cls"] = str((s + i) % 3).encode()
            samples.append(sample)
            keys.append(key)
        write_tar(folder / f"{s:06d}.tar", samples)
    return keys


def manifest_for(folder: Path) -> Path:
    """shards.json for the tars in `folder`, through the `scaling data inspect` code path."""
    from scaling.data.inspect_shards import inspect, write_manifest_for

    shards, results = inspect(str(folder), progress=False)
    return write_manifest_for(shards, results)


def caption_shards(folder: Path, shards: list[list[str | None]], fields: str = "txt+json",
                   image: bytes | None = None) -> list[Path]:
    """img2dataset-like shards: per sample KEY.jpg, and for a caption (None: no caption member) KEY.txt and/or
    KEY.json {"caption": ...} (`fields`: "txt+json", "txt" or "json"). Keys are `{shard:05d}{i:04d}`."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for s, captions in enumerate(shards):
        samples = []
        for i, caption in enumerate(captions):
            sample: dict[str, bytes] = {"__key__": f"{s:05d}{i:04d}", "jpg": image or jpeg_bytes(s * 100 + i % 100)}
            if caption is not None and "json" in fields:
                sample["json"] = json.dumps({"caption": caption, "url": f"http://127.0.0.1/{s}/{i}.jpg"}).encode()
            if caption is not None and "txt" in fields:
                sample["txt"] = caption.encode()
            samples.append(sample)
        paths.append(write_tar(folder / f"{s:05d}.tar", samples))
    return paths
