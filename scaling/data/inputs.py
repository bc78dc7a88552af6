"""What `scaling data write` can read: an image folder tree, a list file, or existing tar shards.

Each becomes a list of Records (where the bytes are + label names) and a label vocabulary. Nothing is
decoded here; the writer's workers read and check the bytes in parallel.

- Folder tree: `SRC/<class name>/<image>`; the class is the sub-folder (sorted names -> ids 0..C-1).
- List file (`.txt`, `.tsv`, `.csv`, `.lst`): one sample per line, `path label [label ...]` separated by
  whitespace, tabs or commas; paths relative to the list's folder; labels are names or integer ids.
- Shards: a `.tar`, a brace pattern, a folder of tars or a `shards.json` (local), e.g. img2dataset output
  (`KEY.jpg` + `KEY.json` + `KEY.txt`). Labels from `.cls`, from `.json` `labels`/`label`, or from `--labels`.
"""

from __future__ import annotations

import json
import os
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from scaling.config import ConfigError
from scaling.data.reader import IMAGE_EXTS, split_key
from scaling.data.shards import MANIFEST, is_local, list_shards, local_path

LIST_SUFFIXES = (".txt", ".tsv", ".csv", ".lst")
_FILE_EXTS = {"." + e for e in IMAGE_EXTS} | {".tif", ".tiff", ".gif"}
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass
class Record:
    key: str  # sanitised, unique
    labels: list[str] = field(default_factory=list)  # label names (or ids as text)
    path: str = ""  # a file, or the tar holding the member
    offset: int = -1  # byte offset of the member's data in `path` when it is a tar; -1 for a plain file
    size: int = -1


def sanitize(raw: str) -> str:
    """A key webdataset can use: no path separators, no dots (the key ends at the first dot)."""
    return _UNSAFE.sub("_", raw).strip("_") or "sample"


class KeyMaker:
    """Unique keys: the sanitised name, then `name_1`, `name_2`... for repeats (within what it has seen)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, raw: str) -> str:
        base = sanitize(raw)
        key, n = base, 1
        while key in self.seen:
            key, n = f"{base}_{n}", n + 1
        self.seen.add(key)
        return key


@dataclass
class Inputs:
    """The records of a source as a stream (keys sanitised, not yet unique), and its label names: known at open
    (folder tree: the sub-folders; shards: the manifest's classes) or gathered while `records` is consumed."""

    records: Iterator[Record]
    fixed_classes: list[str] | None
    names: set[str] = field(default_factory=set)

    def classes(self) -> list[str] | None:
        """The label vocabulary once the records were consumed (None: unlabelled)."""
        if self.fixed_classes and not self.names <= set(self.fixed_classes):
            return sorted(set(self.fixed_classes) | self.names)
        return self.fixed_classes or vocab_of(self.names)


def open_inputs(src: str) -> Inputs:
    """The records of `src` (a folder tree, a list file or shards), streamed: nothing is held per record."""
    path = Path(local_path(src))
    if not is_local(src):
        raise ConfigError(f"{src!r}: `scaling data write` reads local inputs; copy the shards here first.")
    if path.is_dir() and not (path / MANIFEST).is_file() and not any(path.glob("*.tar")):
        classes = sorted(d.name for d in path.iterdir() if d.is_dir())
        if not classes:
            raise ConfigError(f"folder {str(path)!r} has no class sub-folders: put images in SRC/<class>/<file>.")
        return Inputs(_folder_records(path, classes), classes)
    if path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
        inputs = Inputs(iter(()), None)
        inputs.records = _list_records(path, inputs.names)
        return inputs
    shards = list_shards(src)
    for url in shards.urls:
        if not is_local(url):
            raise ConfigError(f"shard {url!r} is remote: `scaling data write` reads local shards only.")
    inputs = Inputs(iter(()), shards.classes or None)
    inputs.records = _shard_records(shards.urls, shards.classes, inputs.names)
    return inputs


def scan(src: str, labels_file: str | None = None) -> tuple[list[Record], list[str] | None]:
    """All records of `src` with unique keys, and the label vocabulary (None: unlabelled). Holds every record:
    for small inputs (evaluation sets); `scaling data write` streams them (shuffle.py)."""
    inputs = open_inputs(src)
    keys = KeyMaker()
    records = []
    for rec in inputs.records:
        rec.key = keys(rec.key)
        records.append(rec)
    vocab = inputs.classes()
    if labels_file:
        table = dict(read_labels_file(labels_file))
        for r in records:
            r.labels = table.get(r.key, [])
        vocab = vocab_of({name for r in records for name in r.labels})
    if not records:
        raise ConfigError(no_images(src))
    return records, vocab


def no_images(src: str) -> str:
    return (f"{src!r} holds no images: give a folder tree (one sub-folder per class), a list file "
            "(path label per line) or tar shards.")


def _folder_records(root: Path, classes: list[str]) -> Iterator[Record]:
    for name in classes:
        for dirpath, _, files in sorted(os.walk(root / name)):
            for f in sorted(files):
                if os.path.splitext(f)[1].lower() in _FILE_EXTS:
                    yield Record(sanitize(f"{name}_{os.path.splitext(f)[0]}"), [name], os.path.join(dirpath, f))


def _list_records(list_path: Path, names: set[str]) -> Iterator[Record]:
    folder = str(list_path.parent)
    with list_path.open() as lines:  # line by line: a list of a billion images is never held
        for line in lines:
            parts = [p for p in re.split(r"[\t,]|\s+", line.strip()) if p]
            if not parts or parts[0].startswith("#"):
                continue
            # os.path, not pathlib: a Path interns every name it parses, a table that grows with the inputs
            p = parts[0] if os.path.isabs(parts[0]) else os.path.join(folder, parts[0])
            names.update(parts[1:])
            stem = os.path.splitext(os.path.basename(parts[0]))[0]
            yield Record(sanitize(stem), parts[1:], p)  # a missing file is counted by the writer


def vocab_of(names: set[str]) -> list[str] | None:
    if not names:
        return None
    if all(x.isdigit() for x in names):  # integer ids: keep them as the ids
        return [str(i) for i in range(max(int(x) for x in names) + 1)]
    return sorted(names)


def _shard_records(urls: list[str], classes: list[str], names: set[str]) -> Iterator[Record]:
    for url in urls:
        for rec in _scan_tar(local_path(url), classes):
            names.update(rec.labels)
            yield rec


def _scan_tar(path: str, classes: list[str]) -> Iterator[Record]:
    """One Record per sample with an image; labels read from .cls / .json (small members)."""
    current: str | None = None
    rec: Record | None = None
    try:
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                k, ext = split_key(member.name)
                if not member.isreg() or k is None:
                    continue
                if k != current:
                    if rec is not None and rec.offset >= 0:
                        yield rec
                    current, rec = k, Record(sanitize(k))
                assert rec is not None
                if ext in IMAGE_EXTS and rec.offset < 0:
                    rec.path, rec.offset, rec.size = path, member.offset_data, member.size
                elif ext == "cls":
                    raw = tar.extractfile(member).read().decode().strip()  # type: ignore[union-attr]
                    rec.labels = [classes[int(raw)] if classes and raw.isdigit() else raw]
                elif ext == "json" and not rec.labels:
                    rec.labels = _json_labels(tar.extractfile(member).read(), classes)  # type: ignore[union-attr]
                tar.members = []
    except (tarfile.TarError, OSError) as e:
        raise ConfigError(f"shard {path!r} cannot be read ({e}); fix or remove it and run again.") from e
    if rec is not None and rec.offset >= 0:
        yield rec


def _json_labels(data: bytes, classes: list[str]) -> list[str]:
    try:
        meta = json.loads(data)
    except ValueError:
        return []
    raw = meta.get("labels", meta.get("label")) if isinstance(meta, dict) else None
    if raw is None:
        return []  # img2dataset metadata (url, caption, size...): no labels
    values = raw if isinstance(raw, list) else [raw]
    return [
        classes[v] if isinstance(v, int) and classes and 0 <= v < len(classes) else str(v) for v in values
    ]


def read_labels_file(path: str) -> Iterator[tuple[str, list[str]]]:
    """(sanitised key, label names) per `KEY label [label ...]` line, streamed."""
    if not Path(path).is_file():
        raise ConfigError(f"--labels {path!r} does not exist; give a file of `KEY label [label ...]` lines.")
    with open(path) as lines:
        for line in lines:
            parts = [p for p in re.split(r"[\t,]|\s+", line.strip()) if p]
            if len(parts) >= 2 and not parts[0].startswith("#"):
                yield sanitize(parts[0]), parts[1:]
