"""Train/val leakage by content: the same image in both splits, not the same name.

Names say nothing: CIFAR exported with the usual tools has `train/c0/0.png` and `val/c0/0.png`, two different
images. What leaks is the image, so every sample gets two hashes: of its bytes (a copied file) and of its
decoded pixels with their size (the same picture in another file: another PNG compression level, stripped or
changed metadata, a lossless conversion such as JPEG -> PNG). A val sample whose bytes or pixels equal a train
sample's is a duplicate. A lossy re-encoding (JPEG -> JPEG at another quality) changes the pixels and is not
caught: that is near-duplicate search, a different tool.

The hashes depend only on the data, so they are cached per data set (its fingerprint: paths, sizes, mtimes)
beside the features and serve every encoder evaluated on it. Decoding runs in threads (Pillow and hashlib
release the GIL), each reading its own contiguous range of the set.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scaling.config import ConfigError
from scaling.data.eval_set import EvalSet

log = logging.getLogger(__name__)
FORMAT = "scaling.eval.overlap/1"
DIGEST = 16  # bytes of each blake2b hash
EXAMPLES = 5


@dataclass
class ContentHashes:
    keys: list[str]
    data: np.ndarray  # uint8 [N, DIGEST]: hash of the file's bytes
    pixels: np.ndarray  # uint8 [N, DIGEST]: hash of (width, height, RGB pixels); zeros when it does not decode


def _pixel_hash(image: bytes) -> bytes:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(image)) as img:
            rgb = img.convert("RGB")  # a grey PNG copy of a grey JPEG is the same picture
    except Exception:  # noqa: BLE001 - any undecodable image: compared by its bytes only
        return bytes(DIGEST)
    h = hashlib.blake2b(f"{rgb.width}x{rgb.height}|".encode(), digest_size=DIGEST)
    h.update(rgb.tobytes())
    return h.digest()


def _hash_range(data: EvalSet, lo: int, hi: int) -> tuple[list[str], list[bytes], list[bytes]]:
    keys, raw, pixels = [], [], []
    for s in data.read(lo, hi):
        keys.append(s.key)
        raw.append(hashlib.blake2b(s.image, digest_size=DIGEST).digest())
        pixels.append(_pixel_hash(s.image))
    return keys, raw, pixels


def content_hashes(data: EvalSet, cache_dir: str | Path, limit: int = 0, workers: int = 0) -> ContentHashes:
    """Both hashes of samples [0, limit or all) of `data`, from the cache when the data set is unchanged."""
    n = min(limit, data.num_samples) if limit else data.num_samples
    key = hashlib.sha256(f"{FORMAT}|{data.fingerprint()}|{n}".encode()).hexdigest()
    path = Path(cache_dir) / "content" / f"{key}.npz"
    if path.is_file():
        saved = np.load(path)
        return ContentHashes([str(k) for k in saved["keys"]], saved["data"], saved["pixels"])
    workers = workers or min(os.cpu_count() or 1, 16)
    bounds = np.linspace(0, n, min(workers, max(n, 1)) + 1).astype(int)
    log.info("hashing the bytes and pixels of %d samples of %s (train/val duplicate check; cached)", n, data.spec)
    with ThreadPoolExecutor(len(bounds) - 1) as pool:
        parts = list(pool.map(lambda b: _hash_range(data, *b), zip(bounds[:-1], bounds[1:])))
    keys = [k for p in parts for k in p[0]]
    hashes = ContentHashes(keys, *(np.frombuffer(b"".join(h for p in parts for h in p[i]), np.uint8).reshape(
        len(keys), DIGEST) for i in (1, 2)))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}.npz")
    np.savez(tmp, keys=np.array(keys, dtype=str), data=hashes.data, pixels=hashes.pixels)
    os.replace(tmp, path)
    return hashes


def duplicates(train: ContentHashes, val: ContentHashes) -> list[tuple[str, str, str]]:
    """(val key, train key, "identical file" | "same pixels") for every val sample whose bytes or decoded
    pixels equal a train sample's."""
    by_data = {h.tobytes(): k for h, k in zip(train.data, train.keys)}
    blank = bytes(DIGEST)
    by_pixels = {h.tobytes(): k for h, k in zip(train.pixels, train.keys) if h.tobytes() != blank}
    found = []
    for key, d, p in zip(val.keys, val.data, val.pixels):
        if d.tobytes() in by_data:
            found.append((key, by_data[d.tobytes()], "identical file"))
        elif p.tobytes() in by_pixels:
            found.append((key, by_pixels[p.tobytes()], "same pixels"))
    return found


def check_no_leak(train: EvalSet, val: EvalSet, cache_dir: str | Path, limit: int = 0) -> None:
    """Refuse a val set that shares images with the train set (the first `limit` train samples when > 0),
    with the count and a few examples; equal names alone are fine."""
    found = duplicates(content_hashes(train, cache_dir, limit), content_hashes(val, cache_dir))
    if not found:
        return
    files = sum(kind == "identical file" for _, _, kind in found)
    examples = "; ".join(f"val {v} = train {t} ({kind})" for v, t, kind in found[:EXAMPLES])
    raise ConfigError(
        f"--val {val.spec!r} holds {len(found)} of its {val.num_samples} images also in --train {train.spec!r} "
        f"({files} identical files, {len(found) - files} the same pixels in another file), e.g. {examples}. "
        "Evaluate on held-out images: remove them from one of the two sets.")
