"""Frozen features of a labelled set, extracted once and cached under a key of weights + data + transform.

Per sample: the cls token and the mean of the patch tokens of the encoder's last (normed) layer, float32.
The cache file is `CACHE_DIR/<sha256 of (weights fingerprint, data fingerprint, transform, normalisation,
FORMAT)>.pt`, written to a temporary name and renamed, so a crashed run never leaves a half file; new
weights (or rewritten shards) change the key and miss the cache.
Extraction runs in one process (batches on the chosen device); multi-rank extraction is not done here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from scaling.data import normalize_images
from scaling.data.config import IMAGENET_MEAN, IMAGENET_STD
from scaling.data.eval_set import EvalSet, EvalTransform
from scaling.eval.encoder import Encoder

log = logging.getLogger(__name__)
FORMAT = "scaling.eval.features/1"
KINDS = ("cls", "mean", "concat")


@dataclass
class Features:
    cls: torch.Tensor  # float32 [N, D]
    mean: torch.Tensor  # float32 [N, D], mean of the patch tokens
    labels: torch.Tensor  # int64 [N]
    keys: list[str]
    classes: list[str]
    from_cache: bool = False
    path: str = ""

    def get(self, kind: str) -> torch.Tensor:
        if kind == "cls":
            return self.cls
        if kind == "mean":
            return self.mean
        if kind == "concat":
            return torch.cat([self.cls, self.mean], dim=1)
        raise ValueError(f"feature {kind!r}: use one of {', '.join(KINDS)}.")


def default_cache_dir() -> Path:
    return Path(os.environ.get("SCALING_CACHE", Path.home() / ".cache" / "scaling")) / "features"


def cache_key(encoder: Encoder, data: EvalSet, transform: EvalTransform, mean: tuple, std: tuple,
              limit: int = 0) -> str:
    spec = {"format": FORMAT, "weights": encoder.fingerprint, "model": encoder.name, "data": data.fingerprint(),
            "transform": dataclasses.asdict(transform), "mean": list(mean), "std": list(std), "limit": limit}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


@torch.no_grad()
def extract(
    encoder: Encoder,
    data: EvalSet,
    transform: EvalTransform,
    *,
    batch_size: int = 256,
    cache_dir: str | Path | None = None,
    device: str = "cpu",
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
    limit: int = 0,
) -> Features:
    """Features of every sample of `data` (the first `limit` when > 0), from the cache when its key matches
    (no forward pass then)."""
    key = cache_key(encoder, data, transform, mean, std, limit)
    path = Path(cache_dir or default_cache_dir()) / f"{key}.pt"
    if path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        return Features(saved["cls"], saved["mean"], saved["labels"], list(saved["keys"]), list(saved["classes"]),
                        from_cache=True, path=str(path))
    model = encoder.model.to(device).eval()
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    cls, avg, labels, keys = [], [], [], []
    for batch in data.batches(transform, batch_size, 0, min(limit, data.num_samples) if limit else None):
        images = normalize_images(batch["image"].to(device), dtype=torch.float32, mean=mean, std=std)
        with torch.autocast(device_type=torch.device(device).type, dtype=dtype, enabled=dtype != torch.float32):
            tokens = model.forward_features(images)  # [B, 1 + L, D], final norm applied
        cls.append(tokens[:, 0].float().cpu())
        avg.append(tokens[:, 1:].float().mean(dim=1).cpu())
        labels.append(batch["label"])
        keys.extend(batch["key"])
    feats = Features(torch.cat(cls), torch.cat(avg), torch.cat(labels), keys, list(data.classes), path=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save({"cls": feats.cls, "mean": feats.mean, "labels": feats.labels, "keys": keys,
                "classes": feats.classes}, tmp)
    os.replace(tmp, path)
    log.info("features of %d samples cached at %s", len(keys), path)
    return feats
