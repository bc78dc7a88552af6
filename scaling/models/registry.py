"""Every model size in one table (big_vision `decode_variant`, timm `test_vit`): sizes, not code.

Names are DESIGN.md's; the tiny sizes at the bottom exist so tests and CPU smoke runs build in
milliseconds. Any field can be overridden at creation (`create_model(name, img_size=32)`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class ViTSpec:
    width: int
    depth: int
    heads: int
    mlp_dim: int
    patch_size: int
    img_size: int = 224
    in_chans: int = 3
    # MAE decoder (He et al.: 8 blocks, width 512, 16 heads; MLP ratio 4)
    decoder_width: int = 512
    decoder_depth: int = 8
    decoder_heads: int = 16

    def __post_init__(self) -> None:
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}.")
        if self.decoder_width % self.decoder_heads:
            raise ValueError(
                f"decoder_width {self.decoder_width} is not divisible by decoder_heads {self.decoder_heads}."
            )
        if self.img_size % self.patch_size:
            raise ValueError(
                f"img_size {self.img_size} is not divisible by patch_size {self.patch_size}: "
                f"choose an image size that is a multiple of {self.patch_size} "
                f"(e.g. {self.img_size // self.patch_size * self.patch_size or self.patch_size})."
            )

    @property
    def grid(self) -> int:
        return self.img_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid * self.grid

    @property
    def head_dim(self) -> int:
        return self.width // self.heads


MODELS: dict[str, ViTSpec] = {
    # Paper sizes (Singh et al. 2023, table 1; DESIGN.md). Params without head at 224 px in the comment.
    "vit_base_patch16": ViTSpec(768, 12, 12, 3072, 16),  # 85.8M
    "vit_large_patch16": ViTSpec(1024, 24, 16, 4096, 16),  # 303.3M
    "vit_huge_patch14": ViTSpec(1280, 32, 16, 5120, 14),  # 630.8M
    "vit_2b_patch14": ViTSpec(2560, 24, 32, 10240, 14),  # 1.890B
    "vit_6.5b_patch14": ViTSpec(4096, 32, 32, 16384, 14),  # 6.448B
    # Small sizes for ablations and CPU work.
    "vit_tiny_patch16": ViTSpec(192, 12, 3, 768, 16),
    "vit_small_patch16": ViTSpec(384, 12, 6, 1536, 16),
    # Test sizes: 32 px images, build and train on a CPU in milliseconds.
    "vit_micro_patch4": ViTSpec(
        64, 4, 4, 256, 4, img_size=32, decoder_width=32, decoder_depth=2, decoder_heads=4
    ),
    "vit_nano_patch4": ViTSpec(
        32, 2, 2, 64, 4, img_size=16, decoder_width=16, decoder_depth=1, decoder_heads=2
    ),
}


def get_spec(name: str, **overrides: int) -> ViTSpec:
    """The spec of model `name` with any field overridden; unknown names list the valid ones."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}. Valid names: {', '.join(MODELS)}.")
    fields = {f.name for f in dataclasses.fields(ViTSpec)}
    bad = sorted(set(overrides) - fields)
    if bad:
        raise ValueError(f"unknown model override(s) {bad}. Valid fields: {', '.join(sorted(fields))}.")
    return dataclasses.replace(MODELS[name], **overrides)
