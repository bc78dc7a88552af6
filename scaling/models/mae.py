"""Masked autoencoder (He et al. 2022), semantics equal to facebookresearch/mae `models_mae.py`.

The encoder is our timm-named ViT (keys `encoder.*`) and runs only on the visible 25% of patches; the
light decoder (keys `decoder.*`, 8 blocks of width 512 by default) sees every position and predicts
pixels; the loss is the per-patch-normalised pixel MSE averaged over masked patches only.
Masking goes through `scaling.models.masking`, which picks the fused Triton kernel or the torch
reference by the same `kernels` policy as attention.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from scaling.kernels import keep_count, mask_noise
from scaling.models.layers import LN_EPS, Block, Linear
from scaling.models.masking import mask_gather, unshuffle_fill
from scaling.models.pos_embed import sincos_2d
from scaling.models.registry import ViTSpec
from scaling.models.vit import VisionTransformer


class MAEDecoder(nn.Module):
    def __init__(self, spec: ViTSpec) -> None:
        super().__init__()
        self.spec = spec
        w = spec.decoder_width
        self.embed = Linear(spec.width, w)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, w))
        self.pos_embed = nn.Parameter(torch.zeros(1, spec.num_patches + 1, w), requires_grad=False)
        self.blocks = nn.ModuleList([Block(w, spec.decoder_heads, 4 * w) for _ in range(spec.decoder_depth)])
        self.norm = nn.LayerNorm(w, eps=LN_EPS)
        self.pred = Linear(w, spec.patch_size**2 * spec.in_chans)
        with torch.no_grad():  # own tensors, still whole here (see VisionTransformer)
            self.pos_embed.copy_(sincos_2d(spec.decoder_width, spec.grid).unsqueeze(0))
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """latent: [B, 1 + K, D_enc] (cls first) -> pixel predictions [B, L, p*p*C]."""
        x = self.embed(latent)
        cls = x[:, :1] + self.pos_embed[:, :1]
        patches = unshuffle_fill(x[:, 1:], self.mask_token, ids_restore, self.pos_embed[0, 1:])
        x = torch.cat([cls, patches], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.pred(self.norm(x))[:, 1:]


class MaskedAutoencoder(nn.Module):
    def __init__(self, spec: ViTSpec, norm_pix_loss: bool = True, pos_embed: str = "sincos") -> None:
        super().__init__()
        self.spec, self.norm_pix_loss = spec, norm_pix_loss
        self.encoder = VisionTransformer(spec, num_classes=0, pos_embed=pos_embed)
        self.decoder = MAEDecoder(spec)

    def patchify(self, images: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> [B, L, p*p*C] in MAE's (p, q, c) order."""
        p, g, c = self.spec.patch_size, self.spec.grid, self.spec.in_chans
        x = images.reshape(images.shape[0], c, g, p, g, p)
        return torch.einsum("nchpwq->nhwpqc", x).reshape(images.shape[0], g * g, p * p * c)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        p, g, c = self.spec.patch_size, self.spec.grid, self.spec.in_chans
        x = x.reshape(x.shape[0], g, g, p, p, c)
        return torch.einsum("nhwpqc->nchpwq", x).reshape(x.shape[0], c, g * p, g * p)

    def forward_encoder(
        self, images: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None, seeds: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        enc = self.encoder
        x = enc.patch_embed(images)  # [B, L, D], pos-embed is added inside the masking gather
        B, L, _ = x.shape
        len_keep = keep_count(L, mask_ratio)
        if noise is None and seeds is None:
            noise = torch.rand(B, L, device=x.device)
        x, _, ids_restore, mask = mask_gather(x, enc.pos_embed[0, 1:], len_keep, noise=noise, seeds=seeds)
        x = torch.cat([enc.cls_with_pos(B), x], dim=1)
        return enc.forward_tokens(x), mask, ids_restore

    def loss(self, images: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean over masked patches of the per-patch MSE; targets normalised per patch when norm_pix_loss.
        The target, its mean and variance are fp32 whatever the run's precision: in bf16 (8 mantissa bits) a
        patch's variance comes out far off (MAE's own runs compute the loss in fp32 outside autocast)."""
        target = self.patchify(images).float()
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1.0e-6) ** 0.5
        per_patch = ((pred.float() - target) ** 2).mean(dim=-1)  # [B, L]
        mask = mask.float()
        return (per_patch * mask).sum() / mask.sum()

    def forward(
        self,
        images: torch.Tensor,
        mask_ratio: float = 0.75,
        noise: torch.Tensor | None = None,
        seeds: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """images [B, C, H, W] -> (loss, pred [B, L, p*p*C], mask [B, L]; 0 is keep, 1 is remove).

        Masks come from `noise` [B, L] (MAE semantics: keep the smallest), else from per-sample int64
        `seeds` [B] through `mask_noise` (reproducible from (seed, step, rank)), else from torch.rand.
        """
        latent, mask, ids_restore = self.forward_encoder(images, mask_ratio, noise, seeds)
        pred = self.decoder(latent, ids_restore)
        return self.loss(images, pred, mask), pred, mask


__all__ = ["MaskedAutoencoder", "MAEDecoder", "mask_noise"]
