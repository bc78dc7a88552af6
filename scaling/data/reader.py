"""Read samples out of webdataset tar shards, from any sample position, counting what is broken.

A sample is a run of consecutive tar members sharing a key, webdataset's rule: the key is the member path up
to the first dot of its file name (`a/b/000123.jpg` and `a/b/000123.cls` are sample `a/b/000123`). Only the
fields in use are read: samples before the start position cost one 512-byte header per member (local files
are walked with seeks, so the payloads are never read), and `.txt` captions or img2dataset's `.json`
metadata are skipped unless a label is wanted. With a caption vocabulary (data.caption_vocab) the labels are
the vocabulary ids of the caption's terms (`.txt`, else `.json` caption/text; vocab.py), and a caption with
none of its terms is a `no_label` sample.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from scaling.data.captions import caption_of
from scaling.data.shards import ShardSet, is_local, local_path
from scaling.data.skips import SkipCounter
from scaling.data.vocab import CaptionVocab

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "bmp")
_KEY_RE = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")  # webdataset's base_plus_ext
_META_RE = re.compile(r"__[^/]*__($|/)")  # webdataset skips __meta__ members
EMPTY = "empty"


@dataclass(slots=True)
class Item:
    """One raw sample. `problem` names the skip kind when it cannot be used (then image may be None)."""

    key: str | None
    image: bytes | None = None
    labels: list[int] | None = None
    problem: str | None = None
    detail: str = ""
    index: int = -1  # sample index, for sources that generate rather than read (synthetic) and lost samples
    shard: int = -1  # lost samples: their shard


def split_key(name: str) -> tuple[str | None, str]:
    m = _KEY_RE.match(name)
    return (m.group(1), m.group(2).lower()) if m else (None, "")


class TarSource:
    """Reads pieces (shard, lo, hi) of a ShardSet as Items; broken parts come back as Items with a problem."""

    def __init__(
        self,
        shards: ShardSet,
        need_labels: bool,
        retries: int = 3,
        retry_delay_s: float = 1.0,
        captions: CaptionVocab | None = None,
    ):
        self.shards = shards
        self.need_labels = need_labels
        self.captions = captions if need_labels else None
        self._label_exts = ("txt", "json") if self.captions is not None else ("cls", "json")
        self.retries = retries
        self.retry_delay_s = retry_delay_s
        self.vocab = {name: i for i, name in enumerate(shards.classes)}
        self._dead: set[int] = set()  # shards that failed to open after retries: not retried again

    def _open(self, shard: int, skips: SkipCounter) -> tuple[IO[bytes], tarfile.TarFile] | str | None:
        """(file, tar) ready to walk; EMPTY for a zero-byte file; None when it cannot be opened."""
        url = self.shards.urls[shard]
        if shard in self._dead:
            return None
        error: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.retry_delay_s * attempt)
            try:
                if is_local(url):
                    f: IO[bytes] = open(local_path(url), "rb")  # noqa: SIM115 (closed by read())
                    if os.fstat(f.fileno()).st_size == 0:
                        f.close()
                        return EMPTY
                    return f, tarfile.open(fileobj=f, mode="r:")  # seekable: headers walked with seeks
                import webdataset as wds

                f = wds.gopen(url, "rb")
                return f, tarfile.open(fileobj=f, mode="r|")
            except (OSError, tarfile.TarError, ValueError) as e:
                error = e
        self._dead.add(shard)
        logging.getLogger("scaling.data").error(
            "data: cannot open shard %s after %d attempts (%s); skipping its samples",
            url,
            self.retries + 1,
            error,
        )
        return None

    def read(self, shard: int, lo: int, hi: int | None, skips: SkipCounter) -> Iterator[Item]:
        """Samples lo..hi-1 of `shard` (to its end when hi is None). With hi known, exactly hi - lo Items
        come back: positions the tar cannot deliver are Items with problem truncated_tar or samples_lost
        (the shard cannot be opened: counted once as unreadable_shard, its samples one by one)."""
        url = self.shards.urls[shard]
        known_dead = shard in self._dead
        opened = self._open(shard, skips)
        if opened is None:
            if hi is not None:  # the manifest's samples: each slot is refilled, the shard counted (lane.py)
                yield from (
                    Item(None, problem="samples_lost", detail=url, index=i, shard=shard) for i in range(lo, hi)
                )
            elif not known_dead:  # no count to refill: the shard is all there is to count
                skips.add("unreadable_shard", url, level=logging.ERROR)
            return
        if opened == EMPTY:
            if hi is None or hi == lo:
                skips.add("empty_shard", url)
            else:
                yield from (
                    Item(None, problem="truncated_tar", detail=f"{url} is empty") for _ in range(lo, hi)
                )
            return
        assert isinstance(opened, tuple)
        f, tar = opened
        got = 0
        try:
            for item in self._samples(tar, lo, hi, url):
                got += 1
                yield item
        except (tarfile.TarError, OSError, EOFError) as e:
            yield Item(None, problem="truncated_tar", detail=f"{url}: {e}")
            got += 1
        finally:
            tar.close()
            f.close()
        if hi is None:
            if got == 0 and lo == 0:
                skips.add("empty_shard", url)
            return
        for _ in range(lo + got, hi):  # the tar ended before its manifest count
            yield Item(None, problem="truncated_tar", detail=f"{url} ends before sample {hi} of its manifest")

    def _samples(self, tar: tarfile.TarFile, lo: int, hi: int | None, url: str) -> Iterator[Item]:
        index, key = -1, None
        fields: dict[str, bytes] = {}
        for member, k, ext in _sample_members(tar):
            if k != key:
                if index >= lo:
                    yield self._item(key, fields, url)
                index += 1
                key, fields = k, {}
                if hi is not None and index >= hi:
                    return
            if index >= lo and self._wanted(ext, fields):
                reader = tar.extractfile(member)
                if reader is not None:
                    fields[ext] = reader.read()
                    if len(fields[ext]) != member.size:
                        raise tarfile.ReadError(f"member {member.name} is cut short")
        if key is not None and index >= lo:
            yield self._item(key, fields, url)

    def _wanted(self, ext: str, fields: dict[str, bytes]) -> bool:
        if ext in IMAGE_EXTS:
            return not any(e in fields for e in IMAGE_EXTS)
        return self.need_labels and ext in self._label_exts

    def _item(self, key: str | None, fields: dict[str, bytes], url: str) -> Item:
        image = next((fields[e] for e in IMAGE_EXTS if e in fields), None)
        if image is None:
            return Item(key, problem="missing_field", detail=f"{url}: sample {key} has no image")
        if not self.need_labels:
            return Item(key, image)
        labels, problem = self._labels(fields)
        if problem:
            return Item(key, None, problem=problem, detail=f"{url}: sample {key}: {labels}")
        return Item(key, image, labels)  # type: ignore[arg-type]

    def _labels(self, fields: dict[str, bytes]) -> tuple[list[int] | str, str | None]:
        """Label ids from `.cls` (an integer) or `.json` ({"labels": [...]} or {"label": x}, ids or names); with
        a caption vocabulary, from the caption."""
        if self.captions is not None:
            caption = caption_of(fields)
            if caption is None:
                return "no caption (.txt, or caption/text in .json)", "missing_field"
            ids = self.captions.labels(caption)
            return (ids, None) if ids else (f"no vocabulary term in caption {caption[:80]!r}", "no_label")
        try:
            if "cls" in fields:
                return [int(fields["cls"].decode().strip())], None
            if "json" in fields:
                meta = json.loads(fields["json"])
                raw = (
                    meta.get("labels", meta.get("label", meta.get("cls"))) if isinstance(meta, dict) else None
                )
                if raw is not None:
                    names = raw if isinstance(raw, list) else [raw]
                    ids = [self._label_id(v) for v in names]
                    if any(i is None for i in ids):
                        return f"label not in the manifest's vocabulary: {names}", "unknown_label"
                    if ids:
                        return ids, None  # type: ignore[return-value]
        except (ValueError, UnicodeDecodeError) as e:
            return f"unreadable label ({e})", "missing_field"
        return "no .cls, and no labels/label key in .json", "missing_field"

    def _label_id(self, value: object) -> int | None:
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value if value >= 0 else None
        if isinstance(value, str):
            if value in self.vocab:
                return self.vocab[value]
            return int(value) if value.isdigit() and not self.vocab else None
        return None


def _sample_members(tar: tarfile.TarFile) -> Iterator[tuple[tarfile.TarInfo, str, str]]:
    """(member, sample key, field extension) for each regular, non-metadata member, in tar order, streaming."""
    while True:
        member = tar.next()
        tar.members = []  # tarfile keeps every header otherwise: unbounded memory on big shards
        if member is None:
            return
        if not member.isreg() or _META_RE.match(member.name):
            continue
        k, ext = split_key(member.name)
        if k is not None:
            yield member, k, ext


def scan_shard(url: str) -> dict[str, object]:
    """Count samples and field kinds of one shard by walking its headers (for `scaling data inspect`)."""
    source = TarSource(ShardSet([url]), need_labels=False, retries=0, retry_delay_s=0.0)
    skips = SkipCounter(log_every_s=1e9)
    opened = source._open(0, skips)
    if opened is None:
        return {"url": url, "samples": 0, "fields": {}, "error": "cannot open"}
    if not isinstance(opened, tuple):
        return {"url": url, "samples": 0, "fields": {}, "error": None}
    f, tar = opened
    exts: dict[str, int] = {}
    keys, last, error = 0, None, None
    try:
        for _member, k, ext in _sample_members(tar):
            exts[ext] = exts.get(ext, 0) + 1
            if k != last:
                keys, last = keys + 1, k
    except (tarfile.TarError, OSError, EOFError) as e:
        error = f"truncated: {e}"
    finally:
        tar.close()
        f.close()
    return {"url": url, "samples": keys, "fields": exts, "error": error}
