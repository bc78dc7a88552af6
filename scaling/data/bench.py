"""`scaling data bench`: images/s of the real input pipeline against a plain reference, in the same run.

Reference (what most ViT code does): webdataset + PIL decode + torchvision RandomResizedCrop, flip, ToTensor,
Normalize, float32 batches. Ours: build_train_loader (crop first, DCT-scaled decode, one resize, uint8
batches; normalisation happens later, on the device). Both run `workers` DataLoader workers over the same
shards with the same crop scale and interpolation; rounds alternate between the two so that a noisy machine
slows both alike. The ratio (the figure) is the median over rounds of ours / reference.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Any

import torch

from scaling.data.config import DataConfig
from scaling.data.loader import build_train_loader
from scaling.data.shards import list_shards
from scaling.data.transforms import stage_crop


def _reference_loader(
    urls: list[str], stage: str, image_size: int, batch: int, workers: int, cfg: DataConfig
) -> Any:
    import torchvision.transforms as T
    import webdataset as wds
    from torch.utils.data import DataLoader

    spec = stage_crop(stage, image_size, cfg.min_scale)
    interp = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC}
    transform = T.Compose(
        [
            T.RandomResizedCrop(image_size, scale=spec.scale, interpolation=interp[cfg.interpolation]),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(cfg.mean, cfg.std),
        ]
    )
    dataset = (
        wds.WebDataset(urls, resampled=True, shardshuffle=False, nodesplitter=wds.split_by_node)
        .shuffle(cfg.shuffle_buffer)
        .decode("pil")
        .to_tuple("jpg;jpeg;png;webp")
        .map_tuple(transform)
        .batched(batch)
    )
    prefetch = cfg.prefetch if workers > 0 else None
    return iter(DataLoader(dataset, batch_size=None, num_workers=workers, prefetch_factor=prefetch))


def _time(it: Any, batches: int, warmup: int) -> float:
    """Images per second over `batches` batches after `warmup` (worker start-up and first reads excluded)."""
    for _ in range(warmup):
        next(it)
    start = time.perf_counter()
    n = 0
    for _ in range(batches):
        b = next(it)
        x = b["image"] if isinstance(b, dict) else b[0]
        n += x.shape[0]
    return n / (time.perf_counter() - start)


def _dataset_stats(url: str, n: int = 64) -> dict[str, float]:
    """Mean size and bytes of the first `n` images of a shard (what the figures depend on)."""
    import tarfile

    from scaling.data.decode import image_size
    from scaling.data.shards import is_local, local_path

    if not is_local(url):
        return {}
    sizes = []
    with tarfile.open(local_path(url), "r:") as tar:
        for m in tar:
            if m.name.rsplit(".", 1)[-1].lower() in ("jpg", "jpeg") and len(sizes) < n:
                data = tar.extractfile(m).read()  # type: ignore[union-attr]
                sizes.append((*image_size(data), len(data)))
    if not sizes:
        return {}
    return {
        "mean_height": statistics.mean(s[0] for s in sizes),
        "mean_width": statistics.mean(s[1] for s in sizes),
        "mean_kbytes": statistics.mean(s[2] for s in sizes) / 1024,
        "sampled": len(sizes),
    }


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_bench(
    shards: str,
    *,
    stage: str = "mae",
    image_size: int = 224,
    batch: int = 32,
    workers: int = 1,
    images: int = 512,
    rounds: int = 3,
    warmup: int = 2,
    cfg: DataConfig | None = None,
) -> dict[str, Any]:
    """Time both pipelines; returns the JSON record `scaling data bench --json` prints."""
    cfg = cfg or DataConfig()
    cfg = DataConfig(**{**cfg.__dict__, "train": shards, "mode": "resampled", "workers": workers})
    urls = list_shards(shards).urls
    batches = max(1, images // batch)
    ours, ref = [], []
    for _ in range(rounds):
        loader = build_train_loader(
            cfg, stage=stage, image_size=image_size, micro_batch=batch, rank=0, world_size=1, seed=len(ours)
        )
        ours.append(_time(loader, batches, warmup))
        loader.close()
        it = _reference_loader(urls, stage, image_size, batch, workers, cfg)
        ref.append(_time(it, batches, warmup))
        del it
    mine, theirs = statistics.median(ours), statistics.median(ref)
    # The figure: the median of per-round ratios. Each round pair ran back to back, so on a shared machine the
    # pair sees the same load; medians of the two series taken apart mix different loads.
    paired = statistics.median(a / b for a, b in zip(ours, ref))
    per = max(workers, 1)
    return {
        "shards": shards,
        "num_shards": len(urls),
        "stage": stage,
        "image_size": image_size,
        "batch": batch,
        "workers": workers,
        "images_per_round": batches * batch,
        "rounds": rounds,
        "img_per_s": round(mine, 1),
        "img_per_s_per_worker": round(mine / per, 1),
        "reference_img_per_s": round(theirs, 1),
        "reference_img_per_s_per_worker": round(theirs / per, 1),
        "ratio": round(paired, 3),
        "ratio_of_medians": round(mine / theirs, 3),
        "rounds_img_per_s": [round(x, 1) for x in ours],
        "rounds_reference_img_per_s": [round(x, 1) for x in ref],
        "dataset": _dataset_stats(urls[0]),
        "machine": {
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "decode": cfg.decode,
        "interpolation": cfg.interpolation,
        "caption_vocab": cfg.caption_vocab,
    }
