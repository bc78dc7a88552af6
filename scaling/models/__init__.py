"""Model family: one registry of sizes, timm-named ViT encoder, MAE, and the WSP classifier objective.

    create_model("vit_base_patch16")                  # encoder, no head (timm num_classes=0)
    create_model("vit_huge_patch14", num_classes=1000) # classifier
    create_mae("vit_2b_patch14")                      # MAE with the 8x512 decoder
Any ViTSpec field can be overridden: create_model("vit_tiny_patch16", img_size=32, patch_size=4).
Builds on the `meta` device (`with torch.device("meta"):`) and under deepspeed.zero.Init.
"""

from __future__ import annotations

from scaling.models.attention import attention, get_kernels, set_kernels
from scaling.models.classifier import multi_hot_targets, soft_target_cross_entropy
from scaling.models.mae import MaskedAutoencoder
from scaling.models.registry import MODELS, ViTSpec, get_spec
from scaling.models.vit import VisionTransformer


def create_model(
    name: str,
    num_classes: int = 0,
    pos_embed: str = "learned",
    global_pool: str = "token",
    drop_path: float = 0.0,
    **overrides: int,
) -> VisionTransformer:
    """ViT encoder `name` (see MODELS), with a linear head when num_classes > 0; global_pool="avg" and
    drop_path are MAE's fine-tuning options."""
    return VisionTransformer(get_spec(name, **overrides), num_classes=num_classes, pos_embed=pos_embed,
                             global_pool=global_pool, drop_path=drop_path)


def create_mae(name: str, norm_pix_loss: bool = True, **overrides: int) -> MaskedAutoencoder:
    """MAE around encoder `name`; decoder size from the spec (override decoder_width/depth/heads)."""
    return MaskedAutoencoder(get_spec(name, **overrides), norm_pix_loss=norm_pix_loss)


__all__ = [
    "MODELS",
    "MaskedAutoencoder",
    "ViTSpec",
    "VisionTransformer",
    "attention",
    "create_mae",
    "create_model",
    "get_kernels",
    "get_spec",
    "multi_hot_targets",
    "set_kernels",
    "soft_target_cross_entropy",
]
