"""Everything distribution-specific applied to a plain model, in one place and a fixed order
(torchtitan `parallelize.py`): build under zero.Init -> optional apex LayerNorm -> regional torch.compile
of each block -> activation checkpointing (`parallelize_model` applies the last three).
Weight loading lives in `load_weights.py`, the host allocator setting in `host_memory.py`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from typing import Any

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from scaling.engine.host_memory import returning_large_frees_to_the_os
from scaling.engine.optim import ALIGN
from scaling.models import create_mae, create_model
from scaling.models.layers import Block

log = logging.getLogger(__name__)

PRECISION_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


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


def checkpointed_blocks(num_blocks: int, mode: str, every: int = 2) -> list[int]:
    """Indices (model order) of the blocks recomputed in backward: none, all (`full`), or every `every`-th
    (`selective`: blocks every-1, 2*every-1, ..., as torchtitan's selective layer AC)."""
    if mode == "none":
        return []
    if mode == "full":
        return list(range(num_blocks))
    if mode == "selective":
        return [i for i in range(num_blocks) if (i + 1) % every == 0]
    raise ValueError(f"unknown activation checkpointing mode {mode!r}; use none, full or selective.")


def apply_activation_checkpointing(model: nn.Module, mode: str = "full", every: int = 2) -> int:
    """Recompute the chosen transformer blocks in backward (module and state-dict names unchanged).
    Returns the number of blocks checkpointed."""
    blocks = [m for m in model.modules() if isinstance(m, Block)]
    chosen = checkpointed_blocks(len(blocks), mode, every)
    for i in chosen:
        blocks[i].forward = functools.partial(_checkpointed_forward, blocks[i].forward)
    return len(chosen)


def compile_blocks(model: nn.Module, zero3: bool) -> int:
    """torch.compile each transformer block's forward (regional compilation, as torchtitan does): blocks of
    one width share a compiled graph, so compile time does not grow with depth.

    The module is not wrapped, only its `forward` replaced, so parameter names and the module hooks that
    ZeRO-3 installs at `deepspeed.initialize` stay as they are. Under ZeRO-3 each block becomes a ZeRO "leaf"
    module: its parameters are gathered by the block's own hooks, and its children get none; their hooks are
    `torch.compiler.disable`d functions, which would split the compiled graph at every Linear and LayerNorm.
    Returns the number of blocks compiled."""
    blocks = [m for m in model.modules() if isinstance(m, Block)]
    if zero3 and blocks:
        from deepspeed.utils import set_z3_leaf_modules

        set_z3_leaf_modules(model, [Block])
    for block in blocks:
        block.forward = torch.compile(block.forward)
    return len(blocks)


def parallelize_model(model: nn.Module, cfg, zero3: bool) -> dict[str, int]:
    """Apply what the config asks for, in the fixed order: apex LayerNorm (optim.impl=apex), compile, then
    activation checkpointing (which wraps the compiled forward, so a recompute reruns the compiled code).
    Returns counts of what was applied (logged by the caller, checked by tests)."""
    m = cfg.model
    done = {"apex_layernorms": swap_in_apex_layernorm(model) if cfg.optim.impl == "apex" else 0,
            "compiled_blocks": compile_blocks(model, zero3) if m.compile == "blocks" else 0}
    done["checkpointed_blocks"] = apply_activation_checkpointing(model, m.activation_checkpointing,
                                                                 m.activation_checkpointing_every)
    if any(done.values()):
        log.info("parallelize: %s", ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in done.items() if v))
    return done


def misaligned_partitions(model: nn.Module) -> list[str]:
    """Parameters whose whole tensor is this rank's ZeRO-3 partition (one rank, or small persistent ones) and
    starts off a 16-byte boundary although its size is a multiple of ALIGN: GEMMs reading them leave Hopper's
    kernels for sm80 ones. `optim.param_groups` orders the flat buffer so that this list stays empty."""
    return [name for name, p in model.named_parameters()
            if getattr(p, "ds_tensor", None) is not None and p.ds_tensor.numel() == p.ds_numel
            and p.ds_numel % ALIGN == 0 and p.ds_tensor.data_ptr() % 16]
