"""Fine-tuning augmentation, MAE's recipe with timm's implementations: RandAugment (`rand_augment_transform`,
"rand-m9-mstd0.5-inc1"), RandomErasing (p 0.25, per-pixel noise), Mixup 0.8 / CutMix 1.0 with label smoothing
0.1 (`timm.data.Mixup`). Applied to a micro-batch after the loader's RandomResizedCrop + flip.

Deterministic and layout-free: before each micro-batch, python's, numpy's and torch's global generators are
seeded from (run seed, data stream, batch index), the key MAE's masks use; so 2 ranks x 1 and 1 rank x 2
accumulation steps augment every sample alike, drop path (torch's generator) included, and a resumed run
repeats the uninterrupted one. RandAugment runs on PIL images in the training process (a per-image cost the
data workers could take over later).
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from scaling.config import ConfigError, Range, check_ranges
from scaling.data.transforms import normalize_images


@dataclass
class AugmentConfig:
    """The `augment:` section (stage finetune only; MAE's fine-tune values in the comments)."""

    rand_augment: str = ""  # timm RandAugment spec, "rand-m9-mstd0.5-inc1"; "" off
    mixup: float = 0.0  # Mixup alpha, 0.8
    cutmix: float = 0.0  # CutMix alpha, 1.0
    mix_prob: float = 1.0  # probability of mixing a batch
    switch_prob: float = 0.5  # probability of CutMix rather than Mixup when both are on
    label_smoothing: float = 0.0  # 0.1
    reprob: float = 0.0  # RandomErasing probability, 0.25
    remode: str = "pixel"  # RandomErasing fill: pixel | rand | const

    RANGES: ClassVar[dict[str, Range]] = {
        "mixup": Range(0, note="Mixup alpha; MAE: 0.8; 0 off"),
        "cutmix": Range(0, note="CutMix alpha; MAE: 1.0; 0 off"),
        "mix_prob": Range(0, 1, note="a probability"),
        "switch_prob": Range(0, 1, note="a probability"),
        "label_smoothing": Range(0, 1, hi_open=True, note="MAE: 0.1"),
        "reprob": Range(0, 1, note="a probability; MAE: 0.25"),
    }

    def __post_init__(self) -> None:
        check_ranges(self, "augment")
        if self.remode not in ("pixel", "rand", "const"):
            raise ConfigError(f"augment.remode={self.remode!r}: use pixel, rand or const.")
        if self.rand_augment and not self.rand_augment.startswith("rand"):
            raise ConfigError(f"augment.rand_augment={self.rand_augment!r}: a timm spec such as "
                              "rand-m9-mstd0.5-inc1, or empty to switch it off.")

    @property
    def mixing(self) -> bool:
        return self.mixup > 0 or self.cutmix > 0


def batch_seed(seed: int, stream: int, index: int) -> int:
    """A 63-bit seed of (run seed, data stream, batch index)."""
    from scaling.data.counter_rng import stream_key

    return int(stream_key(seed, 0xA06, stream, index)) & 0x7FFF_FFFF_FFFF_FFFF


@functools.lru_cache(maxsize=4)
def _rand_augment(spec: str, size: int, mean: tuple[float, float, float]):
    from timm.data import rand_augment_transform

    hparams = {"translate_const": int(size * 0.45), "img_mean": tuple(round(255 * m) for m in mean)}
    return rand_augment_transform(spec, hparams)


def augment_batch(
    cfg: AugmentConfig, images: torch.Tensor, targets: torch.Tensor, *, seed: int, device: torch.device,
    dtype: torch.dtype, mean: tuple[float, float, float], std: tuple[float, float, float],
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 [B, 3, S, S] images + soft targets [B, C] -> normalised augmented images on `device` and the mixed,
    smoothed targets. Seeds the global generators with `seed` first (see module doc)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if cfg.rand_augment:
        from PIL import Image

        ra = _rand_augment(cfg.rand_augment, images.shape[-1], tuple(mean))
        out = torch.empty_like(images)
        for i in range(images.shape[0]):
            pil = Image.fromarray(images[i].permute(1, 2, 0).numpy())
            out[i] = torch.from_numpy(np.asarray(ra(pil), dtype=np.uint8).copy()).permute(2, 0, 1)
        images = out
    x = normalize_images(images.to(device), dtype=torch.float32, mean=mean, std=std)
    if cfg.reprob > 0:
        from timm.data.random_erasing import RandomErasing

        x = RandomErasing(probability=cfg.reprob, mode=cfg.remode, max_count=1, device=str(device))(x)
    targets = targets.to(device).float()
    num_classes = targets.shape[1]
    if cfg.mixing:
        from timm.data import Mixup

        if x.shape[0] % 2:
            raise ConfigError(f"augment.mixup/cutmix need an even micro batch (timm Mixup), got {x.shape[0]}.")
        if not torch.all(targets.max(dim=1).values == 1):
            raise ConfigError("augment.mixup/cutmix need single-label targets; this batch has multi-label rows.")
        mix = Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, prob=cfg.mix_prob, switch_prob=cfg.switch_prob,
                    label_smoothing=cfg.label_smoothing, num_classes=num_classes)
        x, targets = mix(x, targets.argmax(dim=1))
    elif cfg.label_smoothing > 0:
        targets = targets * (1 - cfg.label_smoothing) + cfg.label_smoothing / num_classes
    return x.to(dtype), targets
