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

_REGULAR = (48, 0, 55)  # b"0", b"\0", b"7": regular files


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


def _local_samples(path: str) -> Iterator[dict[str, bytes]]:
    """The caption fields ({"txt": ..., "json": ...}, maybe empty) of each sample, in tar order."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        off, long_name, key, fields = 0, None, None, {}
        while off + 512 <= size:
            header = mm[off : off + 512]
            if header[0] == 0:  # end-of-archive blocks
                off = size
                break
            try:
                member_size = int(header[124:135], 8)  # 11 octal digits, the usual form
            except ValueError:
                member_size = _octal(header[124:136])
            kind = header[156]
            data = off + 512
            off = data + ((member_size + 511) & ~511)
            if data + member_size > size:
                raise ShardError(f"member at byte {data - 512} runs past the end of the file")
            if kind == 76 or kind == 120:  # b"L", b"x": the next member's name (GNU long name, pax record)
                payload = mm[data : data + member_size]
                long_name = payload.rstrip(b"\0") if kind == 76 else _pax_path(payload)
                continue
            name, long_name = long_name, None
            if kind not in _REGULAR:
                continue
            if name is None:
                end = header.find(0, 0, 100)
                name = header[: end if end >= 0 else 100]
                if header[345] and header[257:262] == b"ustar":
                    name = header[345:500].split(b"\0", 1)[0] + b"/" + name
            dot = name.find(b".", name.rfind(b"/") + 1)
            if dot < 0 or (name[:2] == b"__" and _META_RE.match(name.decode("utf-8", "replace"))):
                continue  # no extension, or webdataset's __meta__ members (the reader's rule)
            k = name[:dot]
            if k != key:
                if key is not None:
                    yield fields
                key, fields = k, {}
            ext = name[dot + 1 :].lower()
            if ext == b"txt" or ext == b"json":
                fields[ext.decode()] = mm[data : data + member_size]
        if key is not None:
            yield fields
        if off != size:  # tar blocks are whole: the file was cut inside a header or a member's padding
            raise ShardError(f"the file ends inside a tar block (byte {size})")
    finally:
        mm.close()


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


def shard_captions(url: str) -> Iterator[str | None]:
    """Each sample's caption in tar order (None: the sample has none). Raises ShardError when the shard
    cannot be opened, or is damaged partway (after yielding what came before)."""
    try:
        samples = _local_samples(local_path(url)) if is_local(url) else _stream_samples(url)
        for fields in samples:
            yield caption_of(fields)
    except (OSError, ValueError, tarfile.TarError, EOFError) as e:
        raise ShardError(str(e)) from e
