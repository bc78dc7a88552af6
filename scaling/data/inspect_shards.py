"""`scaling data inspect`: count and check shards by walking tar headers, optionally write their manifest.

This is how shards written elsewhere (img2dataset, another tool) get the per-shard counts that epoch mode
needs: `scaling data inspect 'shards/{00000..00099}.tar' --write-manifest`.
"""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path
from typing import Any

from tqdm import tqdm

from scaling.config import ConfigError
from scaling.data.decode import DECODE_ERRORS, ImageError, image_size
from scaling.data.reader import _META_RE, IMAGE_EXTS, split_key
from scaling.data.shards import ShardSet, is_local, list_shards, local_path, write_manifest


def scan_tar(url: str, check_images: int = 0) -> dict[str, Any]:
    """Samples, field counts, label values and problems of one shard (headers + label members only)."""
    out: dict[str, Any] = {
        "url": url,
        "samples": 0,
        "fields": {},
        "labels": set(),
        "json_labels": False,
        "error": None,
        "corrupt_images": 0,
        "checked_images": 0,
    }
    try:
        if is_local(url):
            f = open(local_path(url), "rb")  # noqa: SIM115 (closed below)
            if os.fstat(f.fileno()).st_size == 0:
                f.close()
                return out
            tar = tarfile.open(fileobj=f, mode="r:")
        else:
            import webdataset as wds

            f = wds.gopen(url, "rb")
            tar = tarfile.open(fileobj=f, mode="r|")
    except (OSError, tarfile.TarError) as e:
        out["error"] = f"cannot open: {e}"
        return out
    last = None
    try:
        for member in tar:
            tar.members = []
            k, ext = split_key(member.name)
            if not member.isreg() or k is None or _META_RE.match(member.name):
                continue
            out["fields"][ext] = out["fields"].get(ext, 0) + 1
            if k != last:
                out["samples"], last = out["samples"] + 1, k
            if ext == "cls":
                out["labels"].add(tar.extractfile(member).read().decode().strip())  # type: ignore[union-attr]
            elif ext == "json":
                _json_labels(tar.extractfile(member).read(), out)  # type: ignore[union-attr]
            elif ext in IMAGE_EXTS and out["checked_images"] < check_images:
                out["checked_images"] += 1
                _check_image(tar.extractfile(member).read(), out)  # type: ignore[union-attr]
    except (tarfile.TarError, OSError, EOFError, UnicodeDecodeError) as e:
        out["error"] = f"truncated or damaged after {out['samples']} samples: {e}"
    finally:
        tar.close()
        f.close()
    return out


def _json_labels(data: bytes, out: dict[str, Any]) -> None:
    try:
        meta = json.loads(data)
    except ValueError:
        return
    raw = meta.get("labels", meta.get("label")) if isinstance(meta, dict) else None
    if raw is not None:
        out["json_labels"] = True
        out["labels"].update(str(v) for v in (raw if isinstance(raw, list) else [raw]))


def _check_image(data: bytes, out: dict[str, Any]) -> None:
    import io

    from PIL import Image

    try:
        image_size(data)
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    except (ImageError, *DECODE_ERRORS):
        out["corrupt_images"] += 1


def inspect(spec: str, check_images: int = 0, progress: bool = True) -> tuple[ShardSet, list[dict[str, Any]]]:
    shards = list_shards(spec)
    results = [scan_tar(u, check_images) for u in tqdm(shards.urls, unit="shard", disable=not progress)]
    return shards, results


def summary(shards: ShardSet, results: list[dict[str, Any]]) -> dict[str, Any]:
    counts = [r["samples"] for r in results]
    fields: dict[str, int] = {}
    for r in results:
        for k, v in r["fields"].items():
            fields[k] = fields.get(k, 0) + v
    label_field, classes = label_vocabulary(shards, results)
    mismatch = []
    if shards.counts is not None:
        mismatch = [r["url"] for r, c in zip(results, shards.counts) if r["samples"] != int(c)]
    return {
        "source": shards.source,
        "shards": len(results),
        "samples": sum(counts),
        "samples_per_shard": {
            "min": min(counts, default=0),
            "max": max(counts, default=0),
            "mean": sum(counts) / max(len(counts), 1),
        },
        "fields": fields,
        "label_field": label_field,
        "num_classes": len(classes),
        "empty_shards": sum(1 for c in counts if c == 0),
        "damaged_shards": [r["url"] + ": " + r["error"] for r in results if r["error"]],
        "corrupt_images": sum(r["corrupt_images"] for r in results),
        "checked_images": sum(r["checked_images"] for r in results),
        "manifest": shards.source if shards.counts is not None else None,
        "manifest_count_mismatch": mismatch,
    }


def label_vocabulary(shards: ShardSet, results: list[dict[str, Any]]) -> tuple[str, list[str]]:
    names: set[str] = set().union(*(r["labels"] for r in results)) if results else set()
    has_cls = any("cls" in r["fields"] for r in results)
    if not names:
        return "none", []
    field = "cls" if has_cls else "json"
    if shards.classes:
        return field, list(shards.classes)
    if all(n.isdigit() for n in names):
        return field, [str(i) for i in range(max(int(n) for n in names) + 1)]
    return field, sorted(names)


def write_manifest_for(shards: ShardSet, results: list[dict[str, Any]]) -> Path:
    """shards.json next to local shards that all sit in one folder."""
    if not all(is_local(u) for u in shards.urls):
        raise ConfigError(
            "--write-manifest needs local shards; for remote ones, write shards.json by hand "
            "(format in scaling/data/shards.py) next to them."
        )
    folders = {os.path.dirname(os.path.abspath(local_path(u))) for u in shards.urls}
    if len(folders) != 1:
        raise ConfigError("--write-manifest needs all shards in one folder; inspect each folder separately.")
    label_field, classes = label_vocabulary(shards, results)
    names = [os.path.basename(local_path(u)) for u in shards.urls]
    return write_manifest(
        folders.pop(),
        names,
        [r["samples"] for r in results],
        classes,
        label_field,
        created_by="scaling data inspect",
    )
