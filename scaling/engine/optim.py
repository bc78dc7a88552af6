"""Parameter groups and the optimizer: AdamW, no weight decay on norms, biases, pos-embeds and tokens;
layer-wise lr decay for fine-tuning (BEiT/MAE): block i gets lr x decay^(depth - i).

`impl`: torch AdamW on CPU; DeepSpeed's FusedAdam on GPU (`auto`/`deepspeed`); NVIDIA apex's FusedAdam
when a real NVIDIA apex imports (`apex`). An offloaded optimizer is always DeepSpeedCPUAdam.
"""

from __future__ import annotations

import re

import torch
import torch.nn as nn

NO_DECAY_NAMES = ("pos_embed", "cls_token", "mask_token")
# ZeRO-3 packs every rank's parameter partitions, group after group, into one flat buffer with no padding;
# on one GPU the forward reads the weights straight from it. A tensor that starts off a 16-byte boundary
# makes cuBLAS fall back from Hopper's kernels to sm80 ones: one 588-element bias (MAE's 14x14x3 decoder_pred)
# early in the buffer sent every weight GEMM of the ViT-2B MAE step to sm80 kernels on an H200 (27% MFU where
# plain PyTorch ran at 46%). So tensors of a multiple of ALIGN elements come first, and groups holding only
# such tensors come before the others.
ALIGN = 8  # elements: 16 bytes of bf16/fp16, 32 of fp32


class ApexMissingError(RuntimeError):
    pass


def nvidia_apex_available() -> bool:
    """True only for NVIDIA apex (PyPI's `apex` is an unrelated web toolkit with no `apex.normalization`)."""
    try:
        from apex.normalization import FusedLayerNorm  # noqa: F401
        from apex.optimizers import FusedAdam  # noqa: F401
    except Exception:
        return False
    return True


def _ndim(p: torch.Tensor) -> int:
    return len(
        getattr(p, "ds_shape", p.shape)
    )  # ZeRO-3 sharded params have numel 0; ds_shape is the real one


def _layer_id(name: str, depth: int) -> int:
    """0 for embeddings, i + 1 for encoder block i, depth + 1 for the final norm and head."""
    name = name.removeprefix("encoder.")
    if name.startswith(("patch_embed", "cls_token", "pos_embed")):
        return 0
    m = re.match(r"blocks\.(\d+)\.", name)
    return int(m.group(1)) + 1 if m else depth + 1


def _numel(p: torch.Tensor) -> int:
    return getattr(p, "ds_numel", p.numel())  # ZeRO-3 sharded params report numel 0


def _aligned(p: torch.Tensor) -> bool:
    return _numel(p) % ALIGN == 0


def param_groups(
    model: nn.Module, weight_decay: float, layer_decay: float = 1.0, depth: int = 0
) -> list[dict]:
    """Groups keyed by (decay?, lr scale); frozen parameters are left out. Ordered for ZeRO-3's flat buffer
    (see ALIGN): in each group, tensors of a multiple of ALIGN elements first; groups made only of such
    tensors first. The order is a pure function of the model, so a resume sees the same groups."""
    groups: dict[tuple[bool, float], dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = _ndim(p) <= 1 or any(n in name for n in NO_DECAY_NAMES)
        scale = layer_decay ** (depth + 1 - _layer_id(name, depth)) if layer_decay < 1.0 else 1.0
        key = (no_decay, scale)
        if key not in groups:
            groups[key] = {
                "params": [],
                "weight_decay": 0.0 if no_decay else weight_decay,
                "lr_scale": scale,
                "names": [],
            }
        groups[key]["params"].append(p)
        groups[key]["names"].append(name)
    ordered = []
    for g in groups.values():
        order = sorted(range(len(g["params"])), key=lambda i: not _aligned(g["params"][i]))  # stable
        ordered.append({**g, "params": [g["params"][i] for i in order], "names": [g["names"][i] for i in order]})
    return sorted(ordered, key=lambda g: not all(_aligned(p) for p in g["params"]))


def flat_buffer_offsets(groups: list[dict]) -> dict[str, int]:
    """Where each parameter starts, in elements, if the groups are packed back to back (ZeRO-3, one rank)."""
    offsets, at = {}, 0
    for g in groups:
        for name, p in zip(g["names"], g["params"]):
            offsets[name] = at
            at += _numel(p)
    return offsets


def build_optimizer(
    groups: list[dict], impl: str, lr: float, betas: tuple[float, float], eps: float, device_type: str,
    offload: bool = False,
) -> torch.optim.Optimizer:
    """`offload`: the policy keeps the optimizer state in host memory or on NVMe, where DeepSpeed steps it with
    its own CPU Adam (a client torch optimizer is refused: "ZeRO-Offload with a client provided optimizer")."""
    clean = [{k: v for k, v in g.items() if k != "names"} for g in groups]
    for g in clean:
        g["lr"] = lr * g["lr_scale"]
    if offload:
        from deepspeed.ops.adam import DeepSpeedCPUAdam

        return DeepSpeedCPUAdam(clean, lr=lr, betas=betas, eps=eps, adamw_mode=True)
    if impl == "apex":
        if not nvidia_apex_available():
            raise ApexMissingError(
                "optim.impl=apex needs NVIDIA apex (apex.optimizers.FusedAdam), which does not import here. "
                "Install it from source: `git clone https://github.com/NVIDIA/apex && cd apex && "
                "pip install -v "
                "--no-build-isolation --config-settings '--build-option=--cpp_ext' --config-settings "
                "'--build-option=--cuda_ext' .` — note that `pip install apex` installs an unrelated PyPI "
                "project of the same name. Or use optim.impl=auto."
            )
        from apex.optimizers import FusedAdam

        return FusedAdam(clean, lr=lr, betas=betas, eps=eps, adam_w_mode=True)
    if impl == "deepspeed" or (impl == "auto" and device_type == "cuda"):
        from deepspeed.ops.adam import FusedAdam

        return FusedAdam(clean, lr=lr, betas=betas, eps=eps, adam_w_mode=True)
    # torch's fused AdamW on GPU: as fast as DeepSpeed's FusedAdam without its one-off JIT build.
    return torch.optim.AdamW(clean, lr=lr, betas=betas, eps=eps, fused=device_type == "cuda")
