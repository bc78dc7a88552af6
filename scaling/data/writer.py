"""`scaling data write`: images -> sample-shuffled webdataset tar shards + a `shards.json` manifest.

Layout per sample: `KEY.jpg` and, when labelled, `KEY.cls` (one integer id) or `KEY.json`
(`{"labels": [ids]}`, when any sample has several labels). Ids index the manifest's `classes`. Samples are
shuffled globally at write time (so a reader's shuffle block of consecutive samples is already a random
draw) by an external shuffle (shuffle.py): a uniformly random order, with memory bounded whatever the number
of inputs (one of 4096 buckets of records in memory, never all of them; the inputs are streamed). Shards are
written in parallel by `workers` processes, at most 2 x workers shards in flight, each shard to a temporary
name then renamed, so a crash never leaves a half shard under a final name. JPEGs are copied byte for byte;
other formats are re-encoded as JPEG; `max_size` optionally shrinks big images (shorter side) to cut decode
cost later.
"""

from __future__ import annotations

import io
import json
import logging
import multiprocessing
import os
import tarfile
import tempfile
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from scaling.config import ConfigError
from scaling.data.decode import DECODE_ERRORS, ImageError, image_size, is_jpeg
from scaling.data.inputs import Record, no_images, open_inputs, read_labels_file, vocab_of
from scaling.data.shards import MANIFEST, write_manifest
from scaling.data.shuffle import ExternalShuffle

log = logging.getLogger("scaling.data")
_MTIME = 1_700_000_000  # fixed member times: the same inputs and seed give byte-identical shards


@dataclass(frozen=True)
class WriteOptions:
    shard_size: int = 10_000
    workers: int = 4
    seed: int = 0
    quality: int = 95  # JPEG quality for re-encoded images
    max_size: int = 0  # shrink images whose shorter side exceeds this (0: keep the bytes as they are)
    prefix: str = ""
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.shard_size < 1:
            raise ConfigError(
                f"--shard-size {self.shard_size}: must be >= 1 (samples per shard; 1e4 is usual)."
            )
        if self.workers < 1:
            raise ConfigError(f"--workers {self.workers}: must be >= 1.")
        if not 1 <= self.quality <= 100:
            raise ConfigError(f"--quality {self.quality}: JPEG quality is 1..100.")
        if self.max_size < 0:
            raise ConfigError(f"--max-size {self.max_size}: 0 keeps sizes, else the shorter side in pixels.")


def _read_bytes(rec: Record) -> bytes:
    with open(rec.path, "rb") as f:
        if rec.offset < 0:
            return f.read()
        f.seek(rec.offset)
        data = f.read(rec.size)
    if len(data) != rec.size:
        raise OSError(f"{rec.path}: member of {rec.size} bytes is cut short")
    return data


def _as_jpeg(data: bytes, quality: int, max_size: int) -> bytes:
    """JPEG bytes for the image: the input itself when it is a JPEG that needs no resizing."""
    h, w = image_size(data)  # raises ImageError for non-images
    if is_jpeg(data) and (max_size == 0 or min(h, w) <= max_size):
        if not data.rstrip(b"\0").endswith(b"\xff\xd9"):
            raise ImageError("JPEG is truncated (no end-of-image marker)")
        return data
    try:
        with Image.open(io.BytesIO(data)) as im:
            if max_size and min(h, w) > max_size:
                s = max_size / min(h, w)
                size = (max(1, round(w * s)), max(1, round(h * s)))
                im.draft("RGB", size)
                im = im.convert("RGB").resize(size, Image.Resampling.BICUBIC)
            else:
                im = im.convert("RGB")
            out = io.BytesIO()
            im.save(out, "JPEG", quality=quality)
            return out.getvalue()
    except DECODE_ERRORS as e:
        raise ImageError(f"cannot re-encode: {e}") from e


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), _MTIME, 0o444
    tar.addfile(info, io.BytesIO(data))


def _write_shard(job: tuple[str, list[Record], dict[str, int], str, WriteOptions]) -> tuple[str, int, dict]:
    """Write one shard; returns (name, samples written, skipped counts by kind)."""
    path, records, vocab, label_field, opts = job
    skipped: dict[str, int] = {}
    written = 0
    tmp = path + ".tmp"
    with tarfile.open(tmp, "w") as tar:
        for rec in records:
            try:
                jpeg = _as_jpeg(_read_bytes(rec), opts.quality, opts.max_size)
            except OSError as e:
                skipped["unreadable_file"] = skipped.get("unreadable_file", 0) + 1
                log.warning("data write: cannot read %s (%s); skipped", rec.path, e)
                continue
            except ImageError as e:
                skipped["corrupt_image"] = skipped.get("corrupt_image", 0) + 1
                log.warning("data write: %s is not a usable image (%s); skipped", rec.path, e)
                continue
            ids = [vocab[name] for name in rec.labels if name in vocab]
            if label_field != "none" and not ids:
                skipped["missing_label"] = skipped.get("missing_label", 0) + 1
                continue
            _add(tar, f"{rec.key}.jpg", jpeg)
            if label_field == "cls":
                _add(tar, f"{rec.key}.cls", str(ids[0]).encode())
            elif label_field == "json":
                _add(tar, f"{rec.key}.json", json.dumps({"labels": ids}).encode())
            written += 1
    os.replace(tmp, path)
    return os.path.basename(path), written, skipped


def _jobs(
    records: Iterator[Record], out: Path, vocab: dict[str, int], label_field: str, opts: WriteOptions
) -> Iterator[tuple[str, list[Record], dict[str, int], str, WriteOptions]]:
    chunk: list[Record] = []
    index = 0
    for rec in records:
        chunk.append(rec)
        if len(chunk) == opts.shard_size:
            yield str(out / f"{opts.prefix}{index:06d}.tar"), chunk, vocab, label_field, opts
            chunk, index = [], index + 1
    if chunk:
        yield str(out / f"{opts.prefix}{index:06d}.tar"), chunk, vocab, label_field, opts


def _scatter(
    src: str, labels_file: str | None, shuffle: ExternalShuffle, progress: bool
) -> tuple[list[str] | None, int]:
    """Stream the inputs (and --labels rows) into the shuffle's buckets; returns (label vocabulary, the most
    labels of one sample)."""
    inputs = open_inputs(src)
    for rec in tqdm(inputs.records, unit=" inputs", desc=f"shuffle {src}", disable=not progress):
        shuffle.add(rec)
    if not shuffle.records:
        raise ConfigError(no_images(src))
    if not labels_file:
        return inputs.classes(), shuffle.max_labels
    for key, labels in read_labels_file(labels_file):
        shuffle.add_labels(key, labels)
    names: set[str] = set()
    most = 0
    for bucket in shuffle.buckets_in_order():  # the join's label names, one bucket at a time
        for rec in bucket:
            names.update(rec.labels)
            most = max(most, len(rec.labels))
    return vocab_of(names), most


def _write_all(jobs: Iterator[tuple], workers: int, bar: tqdm) -> list[tuple[str, int, dict]]:
    """Write shards in order, at most 2 x workers in flight (the records of the rest are not yet read)."""
    results: list[tuple[str, int, dict]] = []
    if workers == 1:
        for job in jobs:
            results.append(_write_shard(job))
            bar.update(len(job[1]))
        return results
    pending: deque = deque()
    with multiprocessing.Pool(workers) as pool:
        for job in jobs:
            pending.append((pool.apply_async(_write_shard, (job,)), len(job[1])))
            if len(pending) >= 2 * workers:
                result, n = pending.popleft()
                results.append(result.get())
                bar.update(n)
        while pending:
            result, n = pending.popleft()
            results.append(result.get())
            bar.update(n)
    return results


def write_shards(
    src: str, out_dir: str, opts: WriteOptions, labels_file: str | None = None, progress: bool = True
) -> Path:
    """Write the shards and the manifest; returns the manifest's path."""
    out = Path(out_dir)
    if (out / MANIFEST).exists() and not opts.overwrite:
        raise ConfigError(
            f"{out_dir!r} already holds shards ({MANIFEST}); choose another folder or pass --overwrite."
        )
    near = out.absolute().parent
    while not near.is_dir():  # the buckets go next to the output (same disk), in a folder removed at the end
        near = near.parent
    shuffle = ExternalShuffle(tempfile.mkdtemp(prefix=f".{out.name}-shuffle-", dir=near), opts.seed)
    try:
        classes, most_labels = _scatter(src, labels_file, shuffle, progress)
        label_field = "none" if classes is None else ("json" if most_labels > 1 else "cls")
        vocab = {name: i for i, name in enumerate(classes or [])}
        out.mkdir(parents=True, exist_ok=True)
        bar = tqdm(total=shuffle.records, unit="img", desc=f"write {out_dir}", disable=not progress)
        jobs = _jobs(shuffle.shuffled(), out, vocab, label_field, opts)
        results = _write_all(jobs, opts.workers, bar)
        bar.close()
    finally:
        shuffle.remove()
    skipped: dict[str, int] = {}
    for _, _, s in results:
        for k, v in s.items():
            skipped[k] = skipped.get(k, 0) + v
    names, counts = [r[0] for r in results], [r[1] for r in results]
    if skipped:
        log.warning("data write: skipped %s", ", ".join(f"{v} {k}" for k, v in sorted(skipped.items())))
    return write_manifest(
        out,
        names,
        counts,
        classes or [],
        label_field,
        source=str(src),
        seed=opts.seed,
        created_by="scaling data write",
        skipped=skipped,
        shuffle="external: uniformly random order, bounded memory (scaling/data/shuffle.py)",
    )
