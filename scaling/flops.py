"""Analytic parameter counts and training FLOPs per sample: the one function that MFU logging,
`scaling plan`, sweeps and the scaling-law fits all use (nanoGPT `estimate_mfu`, big_vision).

Counted: every matrix multiply (2 FLOPs per multiply-add) — patch-embed conv, qkv/proj/MLP linears,
attention scores and weighted sum, decoder embed and pixel head, classifier head. Not counted: norms,
softmax, GELU, adds (under 1% at ViT sizes). Training = forward x 3 (backward = 2 x forward), the
convention of DESIGN.md's table (MAE B/16 59 GFLOPs, WSP B/16 105).
"""

from __future__ import annotations

from dataclasses import dataclass

from scaling.models.registry import ViTSpec

# Peak dense bf16 tensor FLOP/s per device (DESIGN.md); the MFU denominator.
PEAK_BF16_FLOPS: dict[str, float] = {"h100": 989e12, "h200": 989e12, "a100": 312e12}


def _blocks_flops(tokens: int, width: int, mlp_dim: int, depth: int) -> float:
    per_block = (
        2 * tokens * width * 3 * width  # qkv
        + 2 * 2 * tokens * tokens * width  # q k^T and attn @ v over all heads
        + 2 * tokens * width * width  # attention output projection
        + 2 * 2 * tokens * width * mlp_dim  # fc1 + fc2
    )
    return float(depth * per_block)


def encoder_params(spec: ViTSpec, num_classes: int = 0) -> int:
    d, m, p, c = spec.width, spec.mlp_dim, spec.patch_size, spec.in_chans
    block = 2 * 2 * d + (3 * d * d + 3 * d) + (d * d + d) + (d * m + m) + (m * d + d)
    params = (c * p * p * d + d) + d + (spec.num_patches + 1) * d + spec.depth * block + 2 * d
    return params + (d * num_classes + num_classes if num_classes else 0)


def decoder_params(spec: ViTSpec) -> int:
    w, p, c, L = spec.decoder_width, spec.patch_size, spec.in_chans, spec.num_patches
    block = 2 * 2 * w + (3 * w * w + 3 * w) + (w * w + w) + 2 * (4 * w * w) + 4 * w + w
    return (
        (spec.width * w + w)
        + w
        + (L + 1) * w
        + spec.decoder_depth * block
        + 2 * w
        + (w * p * p * c + p * p * c)
    )


@dataclass(frozen=True)
class StageFlops:
    forward: float  # FLOPs of one sample's forward pass
    train: float  # forward x 3


def mae_flops(spec: ViTSpec, mask_ratio: float = 0.75) -> StageFlops:
    """Encoder on the kept tokens (+cls), decoder on every position (+cls), patch embed on all patches."""
    L, d, w = spec.num_patches, spec.width, spec.decoder_width
    keep = int(L * (1 - mask_ratio))
    patch = 2 * L * spec.in_chans * spec.patch_size**2 * d
    enc = _blocks_flops(keep + 1, d, spec.mlp_dim, spec.depth)
    dec = (
        2 * (keep + 1) * d * w  # decoder embed
        + _blocks_flops(L + 1, w, 4 * w, spec.decoder_depth)
        + 2 * (L + 1) * w * spec.in_chans * spec.patch_size**2  # pixel head
    )
    fwd = float(patch + enc + dec)
    return StageFlops(fwd, 3 * fwd)


def classifier_flops(spec: ViTSpec, num_classes: int = 0) -> StageFlops:
    """WSP / fine-tune: encoder on every patch (+cls) and a linear head on the cls token."""
    L, d = spec.num_patches, spec.width
    patch = 2 * L * spec.in_chans * spec.patch_size**2 * d
    fwd = float(patch + _blocks_flops(L + 1, d, spec.mlp_dim, spec.depth) + 2 * d * num_classes)
    return StageFlops(fwd, 3 * fwd)


def stage_flops(spec: ViTSpec, stage: str, mask_ratio: float = 0.75, num_classes: int = 0) -> StageFlops:
    if stage == "mae":
        return mae_flops(spec, mask_ratio)
    if stage in ("wsp", "finetune"):
        return classifier_flops(spec, num_classes)
    raise ValueError(f"unknown stage {stage!r}; choose mae, wsp or finetune.")


def mfu(achieved_flops_per_s: float, device: str | None) -> float | None:
    """Model FLOPs utilisation against the device's peak dense bf16; None where the peak is unknown."""
    if device is None:
        return None
    peak = PEAK_BF16_FLOPS.get(device.lower())
    return achieved_flops_per_s / peak if peak else None


def device_kind(name: str) -> str | None:
    """'NVIDIA H100 80GB HBM3' -> 'h100'; None for CPUs and unknown cards."""
    lowered = name.lower()
    for kind in PEAK_BF16_FLOPS:
        if kind in lowered:
            return kind
    return None
