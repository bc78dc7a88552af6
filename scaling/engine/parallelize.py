"""Everything distribution-specific applied to a plain model, in one place and a fixed order
(torchtitan `parallelize.py`): build under zero.Init -> optional apex LayerNorm -> activation checkpointing.
Also: loading weights into a ZeRO-3-sharded model, gathering one module at a time.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import platform
from typing import Any

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from scaling.engine.optim import ALIGN
from scaling.models import create_mae, create_model
from scaling.models.layers import Block
from scaling.models.weights import check_fit, fit_pos_embed

log = logging.getLogger(__name__)

PRECISION_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
GLIBC_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # the ceiling glibc's own dynamic threshold grows to (64-bit)


@contextlib.contextmanager
def returning_large_frees_to_the_os():
    """While zero.Init builds on the host, give each freed full-size tensor back to the OS.

    glibc raises its mmap threshold after every large free, so the full tensors that zero.Init creates and
    frees one module at a time soon come from the heap, which they leave fragmented: on 2 CPU ranks a ViT-L
    build kept 1.15 GB on one rank for a 0.61 GB shard. With the threshold held at 128 KiB during the build
    the rank keeps its shard plus 16 MB. Afterwards the threshold goes to glibc's own ceiling (its steady
    state). Not glibc, or MALLOC_MMAP_THRESHOLD_ set by the user: nothing changes."""
    libc = None
    if platform.libc_ver()[0] == "glibc" and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        try:
            libc = ctypes.CDLL(None)
            libc = libc if libc.mallopt(M_MMAP_THRESHOLD, 128 * 1024) == 1 else None
        except (OSError, AttributeError):
            libc = None
    try:
        yield
    finally:
        if libc is not None:
            libc.mallopt(M_MMAP_THRESHOLD, GLIBC_MMAP_THRESHOLD_MAX)


def build_model(cfg, ds_config: dict[str, Any], num_classes: int) -> nn.Module:
    """The stage's model, constructed under deepspeed.zero.Init when the policy is ZeRO-3 (each module is
    sharded as its constructor returns, so no rank ever holds the whole model)."""
    import deepspeed

    stage3 = ds_config.get("zero_optimization", {}).get("stage", 0) == 3
    dtype = PRECISION_DTYPES[cfg.deepspeed.precision]
    # dtype comes from the config's bf16/fp16 sections. Passing dtype= as well hits an operator-precedence
    # bug in DeepSpeed 0.19 (Init._set_dtype) that ignores it and picks bf16 on any device without fp16.
    ctx = deepspeed.zero.Init(config_dict_or_path=ds_config) if stage3 else contextlib.nullcontext()
    m = cfg.model
    if m.drop_path > 0:  # layers.Block imports timm's DropPath; torch._dynamo's import fails inside zero.Init
        import timm.layers  # noqa: F401
    with ctx, returning_large_frees_to_the_os() if stage3 else contextlib.nullcontext():
        if cfg.stage == "mae":
            model = create_mae(m.name, norm_pix_loss=m.norm_pix_loss, **m.spec_overrides())
        else:
            model = create_model(m.name, num_classes=num_classes, pos_embed=m.pos_embed, global_pool=m.global_pool,
                                 drop_path=m.drop_path, **m.spec_overrides())
    if not stage3 and dtype != torch.float32:
        model = model.to(dtype)
    return model


def swap_in_apex_layernorm(model: nn.Module) -> int:
    """Replace every nn.LayerNorm by NVIDIA apex's FusedLayerNorm (same parameter names)."""
    from apex.normalization import FusedLayerNorm

    count = 0
    for parent in model.modules():
        for name, child in list(parent.named_children()):
            if type(child) is nn.LayerNorm:
                fused = FusedLayerNorm(child.normalized_shape, eps=child.eps)
                fused.weight, fused.bias = child.weight, child.bias
                setattr(parent, name, fused)
                count += 1
    return count


def _checkpointed_forward(original, *args):
    return checkpoint(original, *args, use_reentrant=False)


def apply_activation_checkpointing(model: nn.Module) -> int:
    """Recompute each transformer block in backward (keeps module and state-dict names unchanged)."""
    count = 0
    for module in model.modules():
        if isinstance(module, Block):
            module.forward = functools.partial(_checkpointed_forward, module.forward)
            count += 1
    return count


def misaligned_partitions(model: nn.Module) -> list[str]:
    """Parameters whose whole tensor is this rank's ZeRO-3 partition (one rank, or small persistent ones) and
    starts off a 16-byte boundary although its size is a multiple of ALIGN: GEMMs reading them leave Hopper's
    kernels for sm80 ones. `optim.param_groups` orders the flat buffer so that this list stays empty."""
    return [name for name, p in model.named_parameters()
            if getattr(p, "ds_tensor", None) is not None and p.ds_tensor.numel() == p.ds_numel
            and p.ds_numel % ALIGN == 0 and p.ds_tensor.data_ptr() % 16]


def _real_shape(p: torch.Tensor) -> tuple[int, ...]:
    return tuple(getattr(p, "ds_shape", p.shape))


def load_into_model(model: nn.Module, sd: dict[str, torch.Tensor], strict: bool = True,
                    allow_missing: tuple[str, ...] = ()) -> None:
    """Copy `sd` into `model`'s parameters, sharded or not, gathering one module's own parameters at a
    time (peak memory: the largest module, not the model). Keys and shapes are checked first (`check_fit`)."""
    import deepspeed

    shapes = {k: _real_shape(p) for k, p in model.named_parameters()}
    fit_pos_embed(sd, shapes)
    mismatched = check_fit(shapes, sd, strict, allow_missing)
    for prefix, module in model.named_modules():
        own = list(module.named_parameters(recurse=False))
        if not own:
            continue
        with deepspeed.zero.GatheredParameters([p for _, p in own], modifier_rank=0):
            with torch.no_grad():
                for name, p in own:
                    key = f"{prefix}.{name}" if prefix else name
                    if key in sd and key not in mismatched:
                        p.data.copy_(sd[key].to(p.dtype))
