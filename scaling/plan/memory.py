"""Memory per GPU of a training run, per DeepSpeed policy: model states, activations, and the total that
`torch.cuda.max_memory_allocated` would show.

- model states: DeepSpeed's own estimators (`estimate_zero3_model_states_mem_needs`, the zero2 one) for the
  policy's offload settings. They assume 16-bit weights with fp32 master weights and Adam (our bf16 runs).
- activations: what autograd saves per block for backward, counted for our block (layers.Block, fused
  FlashAttention, no dropout), bf16: LN1 input 2h, qkv input 2h, q/k/v 6h, attention output 2h, proj input 2h,
  LN2 input 2h, fc1 input 2h, GELU input 2m, fc2 input 2m bytes per token (h width, m MLP width); with
  activation checkpointing only each block's input (2h per token) plus one block recomputed in backward.
  Outside the blocks: images, patch tokens, MAE's pixel targets or WSP's logits.
- total: model states + activations + the buffers ZeRO-3 holds beside them: the prefetch and reduce buckets
  (sized from the width as ds_config.build_ds_config writes them) and, on more than one GPU, the gathered
  16-bit parameters it keeps between their forward and backward use: with our policies'
  stage3_max_reuse_distance of 1e9 nothing is released before its backward, up to stage3_max_live_parameters.
  (On one GPU the partition is the parameter: nothing extra is gathered.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaling.config import ConfigError
from scaling.engine.ds_config import load_policy
from scaling.flops import decoder_params, encoder_params
from scaling.models.registry import ViTSpec

BF16 = 2
# What torch reports as total memory (bytes / 1e9): the H200's 139.8 GiB is in the bench's OOM messages.
GPU_MEMORY_GB: dict[str, float] = {"h100": 85.0, "h200": 150.1, "a100": 85.1}
# Kept free for the CUDA context, NCCL buffers and the caching allocator's fragmentation (an assumption).
RESERVE_FRACTION = 0.05
GPUS_PER_NODE = 8


def model_params(spec: ViTSpec, stage: str, num_classes: int) -> int:
    """Every parameter the engine shards: MAE's encoder + decoder, or the encoder with its head."""
    if stage == "mae":
        return encoder_params(spec) + decoder_params(spec)
    return encoder_params(spec, num_classes)


def largest_layer_params(spec: ViTSpec, stage: str, num_classes: int) -> int:
    """The most parameters one module owns (what ZeRO-3 gathers at once; DeepSpeed's `largest_layer_params`)."""
    d, m, p, c, L = spec.width, spec.mlp_dim, spec.patch_size, spec.in_chans, spec.num_patches
    sizes = [3 * d * d + 3 * d, d * m + m, m * d + d, c * p * p * d + d, (L + 2) * d]
    if stage == "mae":
        w = spec.decoder_width
        sizes += [d * w + w, 4 * w * w + 4 * w, (L + 2) * w, w * p * p * c + p * p * c, 3 * w * w + 3 * w]
    elif num_classes:
        sizes.append(d * num_classes + num_classes)
    return max(sizes)


@dataclass(frozen=True)
class Policy:
    name: str
    stage: int
    offload_optimizer: bool
    offload_params: bool
    max_live_parameters: int = 10**9  # DeepSpeed's default

    @classmethod
    def load(cls, name: str) -> Policy:
        zero = load_policy(name).get("zero_optimization", {})
        offload = lambda key: zero.get(key, {}).get("device", "none") not in ("none", None)  # noqa: E731
        return cls(Path(name).name, int(zero.get("stage", 0)), offload("offload_optimizer"), offload("offload_param"),
                   int(zero.get("stage3_max_live_parameters", 10**9)))


def repo_policies() -> list[str]:
    from scaling.resources import ds_config_names

    return ds_config_names()


def model_states_bytes(policy: Policy, params: int, largest: int, gpus: int) -> int:
    """DeepSpeed's estimate of the GPU bytes for parameters, gradients and optimizer states."""
    nodes = max(1, -(-gpus // GPUS_PER_NODE))
    per_node = gpus // nodes if gpus % nodes == 0 else min(gpus, GPUS_PER_NODE)
    if policy.stage == 3:
        from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs

        _, gpu, _ = estimate_zero3_model_states_mem_needs(
            params, largest, num_gpus_per_node=per_node, num_nodes=nodes,
            cpu_offload=policy.offload_optimizer or policy.offload_params, cpu_offload_params=policy.offload_params,
            zero_init=True)
        return int(gpu)
    if policy.stage in (1, 2):
        from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

        _, gpu = estimate_zero2_model_states_mem_needs(params, num_gpus_per_node=per_node, num_nodes=nodes,
                                                       cpu_offload=policy.offload_optimizer)
        return int(gpu)
    return 20 * params  # no ZeRO: 16-bit weights and grads, fp32 master weights, Adam moments, fp32 grads


def _blocks_bytes(tokens: int, width: int, mlp: int, depth: int, micro: int, checkpointing: bool) -> int:
    per_token = BF16 * (9 * width + 2 * mlp)  # the saved tensors of the module docstring: 18h + 4m bytes
    if checkpointing:  # block inputs kept, one block's activations alive while it is recomputed
        return micro * tokens * (BF16 * width * depth + per_token)
    return micro * tokens * per_token * depth


def activation_bytes(spec: ViTSpec, stage: str, micro: int, checkpointing: bool, num_classes: int,
                     mask_ratio: float = 0.75) -> int:
    L, d = spec.num_patches, spec.width
    images = micro * spec.in_chans * spec.img_size**2 * BF16
    patches = micro * L * d * BF16
    if stage == "mae":
        keep = int(L * (1 - mask_ratio)) + 1
        w = spec.decoder_width
        blocks = _blocks_bytes(keep, d, spec.mlp_dim, spec.depth, micro, checkpointing)
        blocks += _blocks_bytes(L + 1, w, 4 * w, spec.decoder_depth, micro, checkpointing)
        targets = micro * L * spec.patch_size**2 * spec.in_chans * 4 * 2  # fp32 norm-pix target and prediction
        return images + patches + blocks + targets
    blocks = _blocks_bytes(L + 1, d, spec.mlp_dim, spec.depth, micro, checkpointing)
    logits = micro * num_classes * (BF16 + 4 + 4)  # logits, fp32 log-softmax and soft targets
    return images + patches + blocks + logits


def zero_buffer_bytes(policy: Policy, width: int, params: int, gpus: int) -> int:
    """Buffers beside the model states: buckets sized as build_ds_config writes them (reduce d^2, prefetch
    0.9 d^2) and ZeRO-3's gathered parameters (module docstring)."""
    if policy.stage == 3:
        gathered = BF16 * min(params, policy.max_live_parameters) if gpus > 1 else 0
        return BF16 * (width * width + int(0.9 * width * width)) + gathered
    if policy.stage in (1, 2):
        return BF16 * 2 * max(width * width, 5 * 10**7)
    return 0


@dataclass(frozen=True)
class Memory:
    model_states: float  # GB (1e9 bytes), as torch reports memory
    activations: float
    total: float

    def as_dict(self) -> dict[str, float]:
        return {"model_states": round(self.model_states, 3), "activations": round(self.activations, 3),
                "total": round(self.total, 3)}


def memory(policy: Policy, spec: ViTSpec, stage: str, micro: int, gpus: int, checkpointing: bool,
           num_classes: int, activation_scale: float = 1.0) -> Memory:
    """`activation_scale`: 2 for fp32 activations (the counts above are bf16)."""
    params = model_params(spec, stage, num_classes)
    states = model_states_bytes(policy, params, largest_layer_params(spec, stage, num_classes), gpus)
    acts = activation_bytes(spec, stage, micro, checkpointing, num_classes) * activation_scale
    total = states + acts + zero_buffer_bytes(policy, spec.width, params, gpus)
    return Memory(states / 1e9, acts / 1e9, total / 1e9)


def usable_gb(gpu: str) -> float:
    if gpu not in GPU_MEMORY_GB:
        raise ConfigError(f"unknown GPU {gpu!r}: its memory is not known; choose one of {', '.join(GPU_MEMORY_GB)}.")
    return GPU_MEMORY_GB[gpu] * (1 - RESERVE_FRACTION)


def max_micro_batch(policy: Policy, spec: ViTSpec, stage: str, gpus: int, checkpointing: bool, num_classes: int,
                    gpu_gb: float, activation_scale: float = 1.0) -> int:
    """The largest micro batch whose total fits in gpu_gb (0 when not even one sample fits)."""
    def fits(b: int) -> bool:
        return memory(policy, spec, stage, b, gpus, checkpointing, num_classes, activation_scale).total <= gpu_gb

    if not fits(1):
        return 0
    lo, hi = 1, 2
    while fits(hi):
        lo, hi = hi, hi * 2
        if hi > 1 << 20:
            return lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def measured_peaks(results_dir: Path) -> list[dict[str, Any]]:
    """Peak memory our engine reached on a GPU (benchmarks/results/train_bench_*.json, impl "ours")."""
    out = []
    for path in sorted(results_dir.glob("train_bench_*.json")):
        data = json.loads(path.read_text())
        for r in data.get("results", []):
            if r.get("impl") == "ours" and r.get("peak_mem_gb"):
                out.append({**r, "file": path.name, "device": data.get("device", "")})
    return out
