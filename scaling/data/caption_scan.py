"""Captions out of one tar shard, fast: headers only, images never read, let alone decoded.

A local shard is memory-mapped and its 512-byte tar headers parsed directly (ustar, GNU long names, pax
`path` records): a member that is not a caption costs one header, and its pages are never touched by Python.
Remote shards (`pipe:`, URLs) stream through tarfile, as the training reader reads them. A sample's caption
is its `.txt`, else the `caption`/`text` field of its `.json` (captions.caption_of).
"""

from __future__ import annotations

import mmap
import os
import struct
import tarfile
from collections.abc import Iterator
from itertools import repeat

from scaling.data.captions import caption_of
from scaling.data.reader import _META_RE, _sample_members
from scaling.data.shards import is_local, local_path

CHUNK = 4096  # samples per list of captions: the caller works on whole lists, in C loops
# A tar header's name (0-99), size digits (124-134), type flag (156) and first byte of the ustar prefix (345).
_HEADER = struct.Struct("100s24x11s21xB188xB")


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


def _decode(raw: list[bytes], fix: list[tuple[int, bytes | None]]) -> list[str | None]:
    """Captions from the walk's chunk: the .txt bytes decoded in one C loop, then the rare samples without a
    .txt (a .json caption, or none) filled in."""
    texts: list[str | None] = list(map(str, raw, repeat("utf-8"), repeat("replace")))
    for i, meta in fix:
        texts[i] = caption_of({} if meta is None else {"json": meta})
    return texts


def _local_chunks(path: str, chunk: int) -> Iterator[list[str | None]]:
    """Each sample's caption in tar order, `chunk` samples at a time. A damaged shard yields the samples before
    the damage, then raises ShardError."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    # Per sample: its .txt bytes in `raw`, or b"" there and (index, .json bytes or None) in `fix`.
    raw: list[bytes] = []
    fix: list[tuple[int, bytes | None]] = []
    unpack = _HEADER.unpack_from
    try:
        off, long_name, key, txt, meta, meta_size = 0, None, None, None, -1, 0
        while off + 512 <= size:
            # This loop runs once per member, billions of times: one C call reads a header's name field, size
            # digits, type flag and the first byte of its ustar prefix; a member's data is never touched
            # unless it is a caption.
            name, digits, kind, prefix = unpack(mm, off)
            if not name[0]:  # end-of-archive blocks
                off = size
                break
            try:
                member_size = int(digits, 8)  # 11 octal digits, the usual form
            except ValueError:
                member_size = _octal(mm[off + 124 : off + 136])
            header, data = off, off + 512
            off = data + ((member_size + 511) & ~511)
            if data + member_size > size:
                raise ShardError(f"member at byte {header} runs past the end of the file")
            if kind == 76 or kind == 120:  # b"L", b"x": the next member's name (GNU long name, pax record)
                payload = mm[data : data + member_size]
                long_name = payload.rstrip(b"\0") if kind == 76 else _pax_path(payload)
                continue
            if kind != 48 and kind != 0 and kind != 55:  # b"0", b"\0", b"7": regular files only
                long_name = None
                continue
            if long_name is not None:
                name, long_name = long_name, None
            else:
                end = name.find(0)
                if end >= 0:
                    name = name[:end]
                if prefix and mm[header + 257 : header + 262] == b"ustar":
                    name = mm[header + 345 : header + 500].split(b"\0", 1)[0] + b"/" + name
            dot = name.find(b".", name.rfind(b"/") + 1)
            if dot < 0 or (name[:2] == b"__" and _META_RE.match(name.decode("utf-8", "replace"))):
                continue  # no extension, or webdataset's __meta__ members (the reader's rule)
            k = name[:dot]
            if k != key:
                if key is not None:
                    if txt is None:
                        fix.append((len(raw), mm[meta : meta + meta_size] if meta >= 0 else None))
                        txt = b""
                    raw.append(txt)
                    if len(raw) == chunk:
                        yield _decode(raw, fix)
                        raw, fix = [], []
                key, txt, meta = k, None, -1
            ext = name[dot + 1 :].lower()
            if ext == b"txt":
                txt = mm[data : data + member_size]
            elif ext == b"json":  # read only if the sample has no .txt
                meta, meta_size = data, member_size
        if key is not None:
            if txt is None:
                fix.append((len(raw), mm[meta : meta + meta_size] if meta >= 0 else None))
                txt = b""
            raw.append(txt)
        if off != size:  # tar blocks are whole: the file was cut inside a header or a member's padding
            raise ShardError(f"the file ends inside a tar block (byte {size})")
    except (ShardError, ValueError, OSError):
        if raw:
            yield _decode(raw, fix)  # the samples before the damage still count
        raise
    finally:
        mm.close()
    if raw:
        yield _decode(raw, fix)


def _stream_samples(url: str) -> Iterator[dict[str, bytes]]:
    import webdataset as wds

    key, fields = None, {}
    with wds.gopen(url, "rb") as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
        for member, k, ext in _sample_members(tar):
            if k != key:
                if key is not None:
                    yield fields
                key, fields = k, {}
            if ext in ("txt", "json"):
                fields[ext] = tar.extractfile(member).read()  # type: ignore[union-attr]
    if key is not None:
        yield fields


def _stream_chunks(url: str, chunk: int) -> Iterator[list[str | None]]:
    out: list[str | None] = []
    for fields in _stream_samples(url):
        out.append(caption_of(fields))
        if len(out) == chunk:
            yield out
            out = []
    if out:
        yield out


def shard_caption_chunks(url: str, chunk: int = CHUNK) -> Iterator[list[str | None]]:
    """Each sample's caption in tar order (None: the sample has none), in lists of `chunk` samples (the last
    may be shorter). Raises ShardError when the shard cannot be opened, or is damaged partway (after yielding
    what came before)."""
    try:
        if is_local(url):
            yield from _local_chunks(local_path(url), chunk)
        else:
            yield from _stream_chunks(url, chunk)
    except (OSError, ValueError, tarfile.TarError, EOFError) as e:
        raise ShardError(str(e)) from e


def shard_captions(url: str) -> Iterator[str | None]:
    """Each sample's caption in tar order, one at a time (see shard_caption_chunks)."""
    for chunk in shard_caption_chunks(url):
        yield from chunk
