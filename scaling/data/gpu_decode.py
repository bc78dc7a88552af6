"""GPU decode input mode: batched nvJPEG decode, then crop + antialiased resize + flip on the device.

For stages whose CPU budget per GPU is too small (MAE on ViT-B/L eats 3,000-7,000 images/s per H100), the
workers only read bytes and pick crop boxes from the headers; this stage turns them into uint8 images on the
GPU. Imports only torch and torchvision (benchmarks/gpu_decode.py loads this file on its own).

Measured on an H200 (benchmarks/results/data_gpu_decode_h200.json): nvJPEG alone decodes 6,800 img/s of
~1000 px JPEGs and 20,000 of ~450 px; with the per-image crop + resize, 3,500 and 6,900 img/s. The per-image
kernels are the cost, so each image gets as few as possible (the flip and the rounding are folded in).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision
from torchvision.io import ImageReadMode


def _decode_all(
    jpegs: list[torch.Tensor], device: torch.device
) -> tuple[list[torch.Tensor | None], list[int]]:
    """Decode a batch in one nvJPEG call; if the batch call fails, one by one to find the bad images."""
    try:
        out = torchvision.io.decode_jpeg(jpegs, mode=ImageReadMode.RGB, device=device)
        return list(out), []
    except RuntimeError:
        images: list[torch.Tensor | None] = []
        bad = []
        for i, data in enumerate(jpegs):
            try:
                images.append(torchvision.io.decode_jpeg(data, mode=ImageReadMode.RGB, device=device))
            except RuntimeError:
                images.append(None)
                bad.append(i)
        return images, bad


def decode_batch(
    jpegs: list[torch.Tensor],
    box: torch.Tensor,
    flip: torch.Tensor,
    size: int,
    device: torch.device | str,
    pre: torch.Tensor | None = None,
    pre_mask: torch.Tensor | None = None,
    interpolation: str = "bilinear",
) -> tuple[torch.Tensor, list[int]]:
    """uint8 [B, 3, size, size] on `device`, and the slots whose JPEG failed to decode.

    jpegs: B uint8 byte tensors (CPU); box: int64 [B, 4] (left, top, w, h) in source pixels; flip: bool [B];
    pre: uint8 [B, 3, size, size] already decoded on the CPU for the slots in pre_mask (non-JPEG images).
    A failed slot is filled with the next good slot of the batch (its own crop), so the batch stays full.
    """
    device = torch.device(device)
    b = len(jpegs)
    mask = pre_mask.tolist() if pre_mask is not None else [False] * b
    todo = [i for i in range(b) if not mask[i]]
    decoded, bad_local = _decode_all([jpegs[i] for i in todo], device) if todo else ([], [])
    out = torch.empty((b, 3, size, size), dtype=torch.uint8, device=device)
    if pre is not None and any(mask):
        idx = torch.tensor([i for i in range(b) if mask[i]], device=device)
        out[idx] = pre.to(device, non_blocking=True)[idx]
    boxes = box.tolist()
    ok: list[int] = []
    for j, i in enumerate(todo):
        img = decoded[j]
        if img is None:
            continue
        left, top, w, h = boxes[i]
        crop = img[:, top : top + h, left : left + w].unsqueeze(0).float()  # [1, 3, h, w]
        small = F.interpolate(
            crop, size=(size, size), mode=interpolation, antialias=True, align_corners=False
        )
        if interpolation != "bilinear":  # bicubic overshoots; bilinear weights are convex: stays in 0..255
            small.clamp_(0, 255)
        out[i].copy_(small[0].add_(0.5))  # the cast truncates: +0.5 rounds, in one kernel with the copy
        ok.append(i)
    # Flips for the whole batch at once (per-image kernels dominate this stage's cost).
    flips = flip.tolist()
    flipped = [i for i in ok if flips[i]]
    if flipped:
        idx = torch.tensor(flipped, device=device)
        out[idx] = out[idx].flip(-1)
    bad = [todo[j] for j in bad_local]
    good = ok + [i for i in range(b) if mask[i]]
    if bad and not good:
        raise RuntimeError(f"GPU decode: none of the {b} JPEGs of a batch decoded; check the shards.")
    for i in bad:  # next good slot, cyclically: deterministic
        donor = min(good, key=lambda g: (g - i) % b)
        out[i] = out[donor]
    return out, bad
