"""Stage transforms as crop boxes, plus the two steps that run on the device: normalise and soft targets.

Why boxes: a crop is chosen from the JPEG header's size *before* decoding, so the decoder can skip the
resolution the crop does not need (decode.py) and resize straight from the box. The box sampling is
torchvision's RandomResizedCrop, step for step, fed with counter-based uniforms so that any sample's crop
can be recomputed after a resume.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from scaling.data.config import IMAGENET_MEAN, IMAGENET_STD

STAGES = ("mae", "wsp", "finetune")
ATTEMPTS = 10  # torchvision RandomResizedCrop tries 10 boxes before its centre fallback
UNIFORMS_PER_SAMPLE = 4 * ATTEMPTS + 1  # area, log-ratio, top, left per attempt; then the flip


@dataclass(frozen=True)
class CropSpec:
    """How one training sample becomes a `size` x `size` image."""

    size: int
    scale: tuple[float, float] | None = (0.08, 1.0)  # None: centre crop of `center_fraction` (evaluation)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    center_fraction: float = 0.875


STAGE_MIN_SCALE = {"mae": 0.2}  # other stages: 0.08


def stage_crop(stage: str, image_size: int, min_scale: float = 0.0) -> CropSpec:
    """RandomResizedCrop(scale=(min_scale, 1)) + flip; min_scale 0 takes the stage's: 0.2 for MAE (He et
    al.), 0.08 for WSP and fine-tuning (the standard crop of SWAG's weakly-supervised pretraining)."""
    if stage not in STAGES:
        raise ValueError(f"stage={stage!r}: use one of {', '.join(STAGES)}.")
    if image_size < 1:
        raise ValueError(f"image_size={image_size}: must be a positive number of pixels.")
    low = min_scale or STAGE_MIN_SCALE.get(stage, 0.08)
    return CropSpec(size=image_size, scale=(low, 1.0))


def sample_box(spec: CropSpec, height: int, width: int, u: np.ndarray) -> tuple[int, int, int, int, bool]:
    """(left, top, crop_w, crop_h, flip) in source pixels from `UNIFORMS_PER_SAMPLE` uniforms `u`."""
    flip = bool(spec.flip and u[-1] < 0.5)
    if spec.scale is None:
        side = max(1, int(round(min(height, width) * spec.center_fraction)))
        return (width - side) // 2, (height - side) // 2, side, side, False
    area = height * width
    log_lo, log_hi = math.log(spec.ratio[0]), math.log(spec.ratio[1])
    lo, hi = spec.scale
    for a in range(ATTEMPTS):
        ua, ur, ut, ul = u[4 * a : 4 * a + 4]
        target = area * (lo + (hi - lo) * ua)
        aspect = math.exp(log_lo + (log_hi - log_lo) * ur)
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = min(int(ut * (height - h + 1)), height - h)
            left = min(int(ul * (width - w + 1)), width - w)
            return left, top, w, h, flip
    # Fallback (as torchvision): the whole image, clamped to the allowed aspect ratios, centred.
    in_ratio = width / height
    if in_ratio < spec.ratio[0]:
        w, h = width, int(round(width / spec.ratio[0]))
    elif in_ratio > spec.ratio[1]:
        w, h = int(round(height * spec.ratio[1])), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h, flip


def normalize_images(
    images: torch.Tensor,
    dtype: torch.dtype = torch.float32,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
) -> torch.Tensor:
    """uint8 [..., 3, H, W] in 0..255 -> `dtype` (x / 255 - mean) / std, on the tensor's own device.

    The arithmetic runs in float32 and is cast last, so bf16 outputs round once.
    """
    if images.dtype != torch.uint8:
        raise TypeError(f"normalize_images wants uint8 images from the loader, got {images.dtype}.")
    if images.dim() < 3 or images.shape[-3] != 3:
        raise ValueError(f"normalize_images wants [..., 3, H, W] images, got shape {tuple(images.shape)}.")
    scale = torch.tensor([1.0 / (255.0 * s) for s in std], dtype=torch.float32, device=images.device)
    shift = torch.tensor([m / s for m, s in zip(mean, std)], dtype=torch.float32, device=images.device)
    out = images.to(torch.float32) * scale[:, None, None] - shift[:, None, None]
    return out if dtype == torch.float32 else out.to(dtype)


def soft_targets(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Padded label ids [B, L] (-1 = none) -> float32 [B, num_classes], each row 1/k on its k labels.

    Multi-label hashtag targets as in SWAG / Mahajan et al.: softmax cross-entropy against the normalised
    multi-hot vector. A label repeated in a row counts once.
    """
    batch = labels.shape[0]
    out = torch.zeros(batch, num_classes, dtype=torch.float32)
    valid = labels >= 0
    if (labels >= num_classes).any():
        bad = int(labels.max())
        raise ValueError(f"label id {bad} is outside num_classes={num_classes}: raise data.num_classes.")
    rows = torch.arange(batch)[:, None].expand_as(labels)
    out[rows[valid], labels[valid]] = 1.0  # multi-hot; duplicates collapse
    counts = out.sum(dim=1, keepdim=True)
    if (counts == 0).any():
        raise ValueError("a sample reached batching without labels; the reader should have replaced it.")
    return out / counts
