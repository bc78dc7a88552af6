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


class KeyMaker:
    """Keys safe for webdataset: no path separators, no dots (the key ends at the first dot), unique."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, raw: str) -> str:
        base = _UNSAFE.sub("_", raw).strip("_") or "sample"
        key, n = base, 1
        while key in self.seen:
            key, n = f"{base}_{n}", n + 1
        self.seen.add(key)
        return key


def scan(src: str, labels_file: str | None = None) -> tuple[list[Record], list[str] | None]:
    """Records of `src` and the label vocabulary (None: unlabelled)."""
    path = Path(local_path(src))
    if not is_local(src):
        raise ConfigError(f"{src!r}: `scaling data write` reads local inputs; copy the shards here first.")
    if path.is_dir() and not (path / MANIFEST).is_file() and not any(path.glob("*.tar")):
        records, vocab = _scan_folder(path)
    elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
        records, vocab = _scan_list(path)
    else:
        records, vocab = _scan_shards(src)
    if labels_file:
        vocab = _apply_labels_file(records, Path(labels_file))
    if not records:
        raise ConfigError(
            f"{src!r} holds no images: give a folder tree (one sub-folder per class), a list file "
            "(path label per line) or tar shards."
        )
    return records, vocab


def _scan_folder(root: Path) -> tuple[list[Record], list[str]]:
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not classes:
        raise ConfigError(f"folder {str(root)!r} has no class sub-folders: put images in SRC/<class>/<file>.")
    keys = KeyMaker()
    records = []
    for name in classes:
        for dirpath, _, files in sorted(os.walk(root / name)):
            for f in sorted(files):
                if os.path.splitext(f)[1].lower() in _FILE_EXTS:
                    p = os.path.join(dirpath, f)
                    records.append(Record(keys(f"{name}_{os.path.splitext(f)[0]}"), [name], p))
    return records, classes


def _scan_list(list_path: Path) -> tuple[list[Record], list[str] | None]:
    keys = KeyMaker()
    records = []
    for line in list_path.read_text().splitlines():
        parts = [p for p in re.split(r"[\t,]|\s+", line.strip()) if p]
        if not parts or parts[0].startswith("#"):
            continue
        p = parts[0] if os.path.isabs(parts[0]) else str(list_path.parent / parts[0])
        stem = os.path.splitext(os.path.basename(parts[0]))[0]
        records.append(Record(keys(stem), parts[1:], p))  # a missing file is counted by the writer
    return records, _vocab(records)


def _vocab(records: list[Record]) -> list[str] | None:
    names = {label for r in records for label in r.labels}
    if not names:
        return None
    if all(x.isdigit() for x in names):  # integer ids: keep them as the ids
        return [str(i) for i in range(max(int(x) for x in names) + 1)]
    return sorted(names)


def _scan_shards(src: str) -> tuple[list[Record], list[str] | None]:
    shards = list_shards(src)
    keys = KeyMaker()
    records: list[Record] = []
    for url in shards.urls:
        if not is_local(url):
            raise ConfigError(f"shard {url!r} is remote: `scaling data write` reads local shards only.")
        records.extend(_scan_tar(local_path(url), keys, shards.classes))
    names = {label for r in records for label in r.labels}
    vocab = shards.classes or _vocab(records)
    if shards.classes and not names <= set(shards.classes):
        vocab = sorted(set(shards.classes) | names)
    return records, vocab


def _scan_tar(path: str, keys: KeyMaker, classes: list[str]) -> list[Record]:
    """One Record per sample with an image; labels read from .cls / .json (small members)."""
    out: list[Record] = []
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
                        out.append(rec)
                    current, rec = k, Record(keys(k))
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
        out.append(rec)
    return out


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


def _apply_labels_file(records: list[Record], path: Path) -> list[str] | None:
    """`KEY label [label ...]` per line; keys are matched after the same sanitising as the records'."""
    if not path.is_file():
        raise ConfigError(
            f"--labels {str(path)!r} does not exist; give a file of `KEY label [label ...]` lines."
        )
    table: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        parts = [p for p in re.split(r"[\t,]|\s+", line.strip()) if p]
        if len(parts) >= 2 and not parts[0].startswith("#"):
            table[_UNSAFE.sub("_", parts[0]).strip("_")] = parts[1:]
    for r in records:
        r.labels = table.get(r.key, [])
    return _vocab(records)
