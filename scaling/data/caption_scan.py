"""Captions out of one tar shard, fast: headers only, images never read, let alone decoded.

A local shard is memory-mapped and its 512-byte tar headers parsed directly (ustar, GNU long names, pax
`path` records): a member that is not a caption costs one header, and its pages are never touched by Python.
Remote shards (`pipe:`, URLs) stream through tarfile, as the training reader reads them. A sample's caption
is its `.txt`, else the `caption`/`text` field of its `.json` (captions.caption_of).
"""

from __future__ import annotations

import mmap
import os
import tarfile
from collections.abc import Iterator

from scaling.data.captions import caption_of
from scaling.data.reader import _META_RE, _sample_members
from scaling.data.shards import is_local, local_path

CAPTION_EXTS = (b"txt", b"json")
_REGULAR = (b"0", b"\0", b"7")


class ShardError(Exception):
    """The shard could not be opened (nothing was read) or is damaged after some samples."""


def _octal(field: bytes) -> int:
    if field[:1] and field[0] & 0x80:  # GNU base-256 for sizes of 8 GiB and more
        return int.from_bytes(field[1:], "big")
    digits = field.split(b"\0", 1)[0].strip()
    return int(digits, 8) if digits else 0


def _pax_path(data: bytes) -> bytes | None:
    """The `path` record of a pax extended header ("LEN path=VALUE\\n" records)."""
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            return None
        length = int(data[pos:space])
        key, _, value = data[space + 1 : pos + length - 1].partition(b"=")
        if key == b"path":
            return value
        pos += length
    return None


def _local_members(path: str) -> Iterator[tuple[bytes, bytes, bytes | None]]:
    """(key, ext, payload or None) per regular member; payloads only for caption fields."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        off, long_name = 0, None
        while off + 512 <= size:
            header = off
            if mm[header] == 0:  # end-of-archive blocks
                return
            member_size = _octal(mm[header + 124 : header + 136])
            kind = mm[header + 156 : header + 157]
            data = header + 512
            off = data + (member_size + 511) // 512 * 512
            if data + member_size > size:
                raise ShardError(f"member at byte {header} runs past the end of the file")
            if kind in (b"L", b"x"):  # the next member's name: GNU long name, or pax record
                payload = mm[data : data + member_size]
                long_name = payload.rstrip(b"\0") if kind == b"L" else _pax_path(payload)
                continue
            name, long_name = long_name, None
            if kind not in _REGULAR:
                continue
            if name is None:
                name = mm[header : header + 100].split(b"\0", 1)[0]
                if mm[header + 257 : header + 262] == b"ustar":
                    prefix = mm[header + 345 : header + 500].split(b"\0", 1)[0]
                    if prefix:
                        name = prefix + b"/" + name
            slash = name.rfind(b"/") + 1
            dot = name.find(b".", slash)
            if dot < 0 or (name[:2] == b"__" and _META_RE.match(name.decode("utf-8", "replace"))):
                continue  # no extension, or webdataset's __meta__ members (the reader's rule)
            ext = name[dot + 1 :].lower()
            yield name[:dot], ext, mm[data : data + member_size] if ext in CAPTION_EXTS else None
        if off != size:  # tar blocks are whole: the file was cut inside a header or a member's padding
            raise ShardError(f"the file ends inside a tar block (byte {size})")
    finally:
        mm.close()


def _stream_members(url: str) -> Iterator[tuple[bytes, bytes, bytes | None]]:
    import webdataset as wds

    with wds.gopen(url, "rb") as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
        for member, key, ext in _sample_members(tar):
            payload = None
            if ext in ("txt", "json"):
                payload = tar.extractfile(member).read()  # type: ignore[union-attr]
            yield key.encode(), ext.encode(), payload


def shard_captions(url: str) -> Iterator[str | None]:
    """Each sample's caption in tar order (None: the sample has none). Raises ShardError when the shard
    cannot be opened, or is damaged partway (after yielding what came before)."""
    try:
        members = _local_members(local_path(url)) if is_local(url) else _stream_members(url)
        key: bytes | None = None
        fields: dict[str, bytes] = {}
        for k, ext, payload in members:
            if k != key:
                if key is not None:
                    yield caption_of(fields)
                key, fields = k, {}
            if payload is not None:
                fields[ext.decode()] = payload
        if key is not None:
            yield caption_of(fields)
    except (OSError, ValueError, tarfile.TarError, EOFError) as e:
        raise ShardError(str(e)) from e
