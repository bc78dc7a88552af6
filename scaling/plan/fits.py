"""Does this run fit in memory here? `scaling plan`'s numbers (scaling/plan/memory.py), checked at the start of
a run before the model is built: a model too big for the host (CPU ranks) or for the GPU is refused in seconds,
with the numbers and what would fit, instead of running out of memory minutes later. `force_memory=true`
starts it anyway (the estimate is a model, not a measurement).

CPU ranks keep everything in host memory: per rank the model states without offload (offloading to the CPU
moves nothing off the host), the activations and ZeRO's buffers, times the ranks on this machine, against the
memory available now. A GPU rank: the same total against the free memory of its device. fp32 runs count
their activations at 4 bytes (the plan's are bf16); model states are DeepSpeed's estimate in either case (18
bytes per parameter, where fp32 ZeRO-3 keeps 16). Selective activation checkpointing is counted as none (an
upper bound).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from scaling.config import ConfigError
from scaling.models.registry import ViTSpec
from scaling.plan.memory import RESERVE_FRACTION, Memory, Policy, max_micro_batch, memory, repo_policies


@dataclass(frozen=True)
class Budget:
    where: str  # "host memory" | "GPU memory"
    available_gb: float  # for all the ranks sharing it
    ranks: int  # ranks sharing it (CPU: the local ranks; GPU: 1)


def budget_here(device_type: str, local_ranks: int) -> Budget:
    """What this machine has now: available host memory shared by the local CPU ranks, or the free memory of
    this rank's GPU less the plan's reserve."""
    if device_type == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info()
        return Budget("GPU memory", free / 1e9 * (1 - RESERVE_FRACTION), 1)
    import psutil

    return Budget("host memory", psutil.virtual_memory().available / 1e9, max(local_ranks, 1))


def local_ranks() -> int:
    return int(os.environ.get("LOCAL_SIZE") or os.environ.get("LOCAL_WORLD_SIZE") or 1)


def _policy(name: str, device_type: str) -> Policy:
    policy = Policy.load(name)
    if device_type != "cuda":  # offloading to the CPU keeps the states on this host
        policy = dataclasses.replace(policy, offload_optimizer=False, offload_params=False)
    return policy


def check_memory(cfg: Any, spec: ViTSpec, num_classes: int, world_size: int, device_type: str,
                 budget: Budget) -> None:
    """Raise a ConfigError naming the plan's numbers and a micro batch, activation checkpointing or policy
    that fits, when the run at cfg's micro batch does not fit in `budget`."""
    if cfg.force_memory:
        return
    stage, micro = cfg.stage, cfg.batch.micro_batch
    scale = 2.0 if cfg.deepspeed.precision == "fp32" else 1.0
    checkpointing = cfg.model.activation_checkpointing == "full"
    per_rank_gb = budget.available_gb / budget.ranks

    def need(name: str, b: int, ckpt: bool) -> Memory:
        return memory(_policy(name, device_type), spec, stage, b, world_size, ckpt, num_classes, scale)

    def largest(name: str, ckpt: bool) -> int:
        return max_micro_batch(_policy(name, device_type), spec, stage, world_size, ckpt, num_classes, per_rank_gb,
                               scale)

    m = need(cfg.deepspeed.config, micro, checkpointing)
    if m.total <= per_rank_gb:
        return
    ranks = f" x {budget.ranks} ranks = {m.total * budget.ranks:.1f} GB" if budget.ranks > 1 else ""
    numbers = (f"{cfg.model.name} {stage} at micro batch {micro} needs {m.total:.1f} GB per rank by scaling plan's "
               f"estimate (model states {m.model_states:.1f}, activations {m.activations:.1f}, ZeRO buffers "
               f"{m.total - m.model_states - m.activations:.1f}){ranks}; this machine has {budget.available_gb:.1f} "
               f"GB of {budget.where} available")
    raise ConfigError(f"{numbers}. {_what_fits(cfg, checkpointing, device_type, need, largest)} Or force_memory=true "
                      "to start anyway.")


def _what_fits(cfg: Any, checkpointing: bool, device_type: str, need, largest) -> str:
    name = cfg.deepspeed.config
    b = largest(name, checkpointing)
    if b:
        return (f"batch.micro_batch={b} fits (batch.grad_accum=0 batch.global_batch=N keeps the global batch).")
    if not checkpointing and (b := largest(name, True)):
        return f"model.activation_checkpointing=full batch.micro_batch={b} fits."
    if device_type == "cuda":
        for other in repo_policies():
            for ckpt in (checkpointing, True):
                if other != name and (b := largest(other, ckpt)):
                    extra = " model.activation_checkpointing=full" if ckpt and not checkpointing else ""
                    return f"deepspeed.config={other}{extra} batch.micro_batch={b} fits."
    states = need(name, 1, True).model_states
    return (f"Not even micro batch 1 fits: the model states alone need {states:.1f} GB per rank; use a smaller "
            "model.name or more " + ("GPUs." if device_type == "cuda" else "machines (ranks on other hosts)."))
