"""Transformer building blocks with timm's parameter names (`attn.qkv`, `mlp.fc1`, `norm1`, ...).

Plain modules: no sharding, no checkpointing, no precision policy (applied by the engine, in one place).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from scaling.models.attention import attention

LN_EPS = 1e-6  # timm ViT / MAE


# MAE's initialisation (xavier-uniform weights, zero biases; LayerNorm's defaults are already MAE's) runs in
# each layer's own constructor. Under deepspeed.zero.Init a module is sharded as its constructor returns, so
# this needs no gather; a model-wide `apply(init)` afterwards would gather and re-shard every layer, holding a
# second full-size tensor per layer on every rank (and running the default init first, for nothing).
class Linear(nn.Linear):
    """nn.Linear (same keys) initialised as MAE does, or trunc-normal with `init_std` (classifier heads)."""

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, init_std: float | None = None
    ) -> None:
        self.init_std = init_std  # read by reset_parameters, which nn.Linear.__init__ calls
        super().__init__(in_features, out_features, bias=bias)

    def reset_parameters(self) -> None:
        if self.init_std is None:
            nn.init.xavier_uniform_(self.weight)
        else:
            nn.init.trunc_normal_(self.weight, std=self.init_std)
        if self.bias is not None:
            nn.init.zeros_(self.bias)


class PatchConv(nn.Conv2d):
    """The patch projection, initialised as MAE does: xavier-uniform on the weight viewed as a Linear."""

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.weight.view(self.weight.shape[0], -1))
        if self.bias is not None:
            nn.init.zeros_(self.bias)


class PatchEmbed(nn.Module):
    """[B, C, H, W] images -> [B, L, D] tokens by a stride-p convolution (timm key `patch_embed.proj`)."""

    def __init__(self, img_size: int, patch_size: int, in_chans: int, width: int) -> None:
        super().__init__()
        self.img_size, self.patch_size = img_size, patch_size
        self.grid = img_size // patch_size
        self.num_patches = self.grid * self.grid
        self.proj = PatchConv(in_chans, width, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.img_size, self.img_size):
            raise ValueError(
                f"input images are {tuple(x.shape[-2:])} but the model was built for "
                f"{self.img_size}x{self.img_size}; resize the input or build the model with img_size="
                f"{x.shape[-1]} (position embeddings are resampled when loading weights)."
            )
        return self.proj(x).flatten(2).transpose(1, 2)  # [B, D, g, g] -> [B, L, D]


class Attention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = Linear(width, width * 3, bias=True)
        self.proj = Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each [B, H, N, D]
        x = attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(B, N, C))


class Mlp(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = Linear(width, hidden)
        self.act = nn.GELU()
        self.fc2 = Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)).

    `drop_path` > 0 (fine-tuning): each residual branch is dropped per sample with that probability in
    training (stochastic depth, timm's DropPath; no parameters, so state-dict keys are unchanged)."""

    def __init__(self, width: int, heads: int, mlp_dim: int, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=LN_EPS)
        self.attn = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width, eps=LN_EPS)
        self.mlp = Mlp(width, mlp_dim)
        if drop_path > 0:
            # Imported when used: timm takes ~2 s to import. Under deepspeed.zero.Init it must already be imported
            # (parallelize.build_model does): its torch._dynamo import fails with zero.Init's Tensor patch.
            from timm.layers import DropPath

            self.drop_path: nn.Module = DropPath(drop_path)
        else:
            self.drop_path = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))
