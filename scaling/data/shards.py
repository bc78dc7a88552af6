"""Shard listing and the `shards.json` manifest: which tar files a dataset is and how many samples each holds.

A source is a brace pattern (`shards/{000000..000099}.tar`), several joined with `::` (webdataset's rule),
a manifest file or its folder, or any URL webdataset's `gopen` reads (`https://`, `s3://` via `pipe:`...).
Counts come from the manifest (written by `scaling data write`, or by `scaling data inspect --write-manifest`
for shards made elsewhere, e.g. by img2dataset); a pattern of local shards picks up a `shards.json` lying next
to them. Epoch mode needs the counts; resampled mode does not.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import braceexpand
import numpy as np

from scaling.config import ConfigError

MANIFEST = "shards.json"
FORMAT = "scaling.shards/1"


@dataclass
class ShardSet:
    urls: list[str]
    counts: np.ndarray | None = None  # int64 [S] samples per shard; None when no manifest covers them
    classes: list[str] = field(default_factory=list)  # label vocabulary: label id i is classes[i]
    label_field: str = "unknown"  # "cls", "json", "none" (no labels) or "unknown" (no manifest)
    source: str = ""

    @property
    def num_samples(self) -> int | None:
        return None if self.counts is None else int(self.counts.sum())


def is_local(url: str) -> bool:
    """A plain path or file:// URL; the rest (https://, s3://, pipe:...) goes through webdataset gopen."""
    if url.startswith("pipe:"):
        return False
    return "://" not in url or url.startswith("file://")


def local_path(url: str) -> str:
    return url[len("file://") :] if url.startswith("file://") else url


def expand(spec: str) -> list[str]:
    """`a/{000..002}.tar::b/{0..1}.tar` -> the five URLs, in order."""
    urls: list[str] = []
    for part in spec.split("::"):
        if part.strip():
            urls.extend(braceexpand.braceexpand(part.strip()))
    return urls


def _read_text(url: str) -> str:
    if is_local(url):
        return Path(local_path(url)).read_text()
    import webdataset as wds  # remote manifests are opened like shards

    with wds.gopen(url, "rb") as stream:
        return stream.read().decode()


def _join(base: str, name: str) -> str:
    if "://" in name or name.startswith("/") or name.startswith("pipe:"):
        return name
    return base.rstrip("/") + "/" + name if base else name


def read_manifest(url: str) -> ShardSet:
    """Load a manifest; shard names are relative to the manifest's folder (or URL prefix)."""
    try:
        data = json.loads(_read_text(url))
    except FileNotFoundError as e:
        raise ConfigError(
            f"manifest {url!r} does not exist; write one with `scaling data inspect SHARDS "
            "--write-manifest` or point data.train at the shards."
        ) from e
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"manifest {url!r} cannot be read as JSON ({e}); rewrite it with "
            "`scaling data inspect SHARDS --write-manifest`."
        ) from e
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("shards"), list):
        raise ConfigError(
            f"{url!r} is not a {FORMAT} manifest (keys format, shards); rewrite it with "
            "`scaling data inspect SHARDS --write-manifest`."
        )
    base = url.rsplit("/", 1)[0] if "/" in url else ""
    urls = [_join(base, s["name"]) for s in data["shards"]]
    counts = np.asarray([int(s["samples"]) for s in data["shards"]], dtype=np.int64)
    return ShardSet(urls, counts, list(data.get("classes", [])), str(data.get("label_field", "unknown")), url)


def write_manifest(
    out_dir: str | Path,
    names: list[str],
    counts: list[int],
    classes: list[str],
    label_field: str,
    **extra: object,
) -> Path:
    """Write `out_dir/shards.json` (atomically) and return its path."""
    path = Path(out_dir) / MANIFEST
    data = {
        "format": FORMAT,
        "num_samples": int(sum(counts)),
        "num_shards": len(names),
        "label_field": label_field,
        "num_classes": len(classes),
        "classes": list(classes),
        "shards": [{"name": n, "samples": int(c)} for n, c in zip(names, counts)],
        **extra,
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)
    return path


def _manifest_next_to(urls: list[str]) -> ShardSet | None:
    """A local manifest in the shards' common folder whose shards include all `urls`, with their counts."""
    if not urls or not all(is_local(u) for u in urls):
        return None
    folders = {os.path.dirname(os.path.abspath(local_path(u))) for u in urls}
    if len(folders) != 1:
        return None
    candidate = os.path.join(folders.pop(), MANIFEST)
    if not os.path.isfile(candidate):
        return None
    manifest = read_manifest(candidate)
    by_path = {os.path.abspath(local_path(u)): i for i, u in enumerate(manifest.urls)}
    picks = [by_path.get(os.path.abspath(local_path(u))) for u in urls]
    if any(p is None for p in picks):
        return None
    assert manifest.counts is not None
    counts = manifest.counts[np.asarray(picks, dtype=np.int64)]
    return ShardSet(urls, counts, manifest.classes, manifest.label_field, candidate)


def list_shards(spec: str) -> ShardSet:
    """Resolve a data source string (see module doc) to shard URLs and, where known, their counts."""
    spec = spec.strip()
    local = is_local(spec)
    if spec.endswith(".json"):
        return read_manifest(spec)
    if local and os.path.isdir(local_path(spec)):
        folder = local_path(spec)
        if os.path.isfile(os.path.join(folder, MANIFEST)):
            return read_manifest(os.path.join(folder, MANIFEST))
        tars = sorted(str(p) for p in Path(folder).glob("*.tar"))
        if not tars:
            raise ConfigError(
                f"folder {spec!r} holds no shards.json and no .tar files; write shards with "
                "`scaling data write SRC OUT_DIR` or point data.train at them."
            )
        return ShardSet(tars, None, source=spec)
    urls = expand(spec)
    if not urls:
        raise ConfigError(
            f"data source {spec!r} expands to no shards; give a pattern like shards/{{000000..000099}}.tar."
        )
    found = _manifest_next_to(urls)
    return found if found is not None else ShardSet(urls, None, source=spec)


def probe_indices(num_shards: int, at_most: int) -> list[int]:
    """At most `at_most` shard indices spread evenly over the list, first and last included."""
    if num_shards <= at_most:
        return list(range(num_shards))
    return sorted({round(i * (num_shards - 1) / (at_most - 1)) for i in range(at_most)})


def missing_local(urls: list[str]) -> list[str]:
    """The local shard files among `urls` that do not exist (remote URLs are checked when opened)."""
    return [u for u in urls if is_local(u) and not os.path.isfile(local_path(u))]
