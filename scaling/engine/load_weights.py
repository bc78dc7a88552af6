"""Loading weights into a model that may be ZeRO-3-sharded: one module's parameters gathered at a time."""

from __future__ import annotations

import torch
import torch.nn as nn

from scaling.models.weights import check_fit, fit_pos_embed


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
