"""ViT encoder with timm's key names and semantics (cls token, absolute pos-embed, pre-norm, qkv bias).

State dict keys equal timm `VisionTransformer(global_pool="token", class_token=True)`:
`cls_token, pos_embed, patch_embed.proj.*, blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*,
norm.*` and `head.*` when num_classes > 0, so `timm` loads ours with strict=True and we load timm's.

Fine-tuning options (MAE's recipe): `global_pool="avg"` averages the patch tokens and normalises the pooled
vector with `fc_norm` (timm's `global_pool="avg"`: keys `fc_norm.*`, no `norm.*`); `drop_path` is the
stochastic-depth rate of the last block, rising linearly from 0 at the first (timm, MAE).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from scaling.models.layers import LN_EPS, Block, Linear, PatchEmbed
from scaling.models.pos_embed import sincos_2d
from scaling.models.registry import ViTSpec

GLOBAL_POOLS = ("token", "avg")


class VisionTransformer(nn.Module):
    def __init__(
        self,
        spec: ViTSpec,
        num_classes: int = 0,
        pos_embed: str = "learned",
        global_pool: str = "token",
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        if pos_embed not in ("learned", "sincos"):
            raise ValueError(f"pos_embed must be 'learned' or 'sincos', got {pos_embed!r}.")
        if global_pool not in GLOBAL_POOLS:
            raise ValueError(f"global_pool must be one of {', '.join(GLOBAL_POOLS)}, got {global_pool!r}.")
        if not 0.0 <= drop_path < 1.0:
            raise ValueError(f"drop_path must be in [0, 1), got {drop_path}.")
        self.spec, self.num_classes, self.pos_embed_type = spec, num_classes, pos_embed
        self.global_pool = global_pool
        self.patch_embed = PatchEmbed(spec.img_size, spec.patch_size, spec.in_chans, spec.width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, spec.width))
        # MAE keeps the sin-cos table fixed; `learned` starts from it too (a better start than noise).
        self.pos_embed = nn.Parameter(
            torch.zeros(1, spec.num_patches + 1, spec.width), requires_grad=pos_embed == "learned"
        )
        rates = [drop_path * i / max(spec.depth - 1, 1) for i in range(spec.depth)]
        self.blocks = nn.ModuleList([Block(spec.width, spec.heads, spec.mlp_dim, r) for r in rates])
        avg = global_pool == "avg"
        self.norm = nn.Identity() if avg else nn.LayerNorm(spec.width, eps=LN_EPS)
        self.fc_norm = nn.LayerNorm(spec.width, eps=LN_EPS) if avg else nn.Identity()
        # classifier heads start small (timm/MAE fine-tuning)
        head_std = 2e-5 if num_classes > 1000 else 0.01
        self.head = Linear(spec.width, num_classes, init_std=head_std) if num_classes > 0 else nn.Identity()
        # The layers initialised themselves (layers.Linear). This module's own tensors are still whole here:
        # zero.Init shards them when this constructor returns.
        with torch.no_grad():
            self.pos_embed.copy_(sincos_2d(spec.width, spec.grid).unsqueeze(0))
        nn.init.normal_(self.cls_token, std=0.02)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> [B, L, D] patch tokens with their position embedding (no cls token)."""
        return self.patch_embed(images) + self.pos_embed[:, 1:]

    def cls_with_pos(self, batch: int) -> torch.Tensor:
        return (self.cls_token + self.pos_embed[:, :1]).expand(batch, -1, -1)

    def forward_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Blocks + final norm on [B, 1 + T, D] tokens (cls first): all tokens, or only the visible ones."""
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        x = self.embed(images)
        x = torch.cat([self.cls_with_pos(x.shape[0]), x], dim=1)
        return self.forward_tokens(x)

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, 1 + L, D] output tokens -> [B, D]: the cls token, or fc_norm(mean of the patch tokens)."""
        if self.global_pool == "avg":
            return self.fc_norm(tokens[:, 1:].mean(dim=1))
        return tokens[:, 0]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> logits [B, num_classes], or the pooled feature [B, D] without a head."""
        return self.head(self.pool(self.forward_features(images)))


def fit_encoder_to_pool(model: nn.Module, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Encoder weights (token pooling: `norm.*`) for `model`: for a global_pool="avg" model, drop `norm.*` and
    start `fc_norm` fresh (weight 1, bias 0), as MAE's fine-tuning does; otherwise `sd` unchanged."""
    if getattr(model, "global_pool", "token") != "avg" or "fc_norm.weight" in sd:
        return sd
    width = model.spec.width
    out = {k: v for k, v in sd.items() if not k.startswith("norm.")}
    out["fc_norm.weight"], out["fc_norm.bias"] = torch.ones(width), torch.zeros(width)
    return out
