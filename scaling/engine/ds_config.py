"""Build the DeepSpeed config a run uses: policy from a ds_configs/ file, numbers from the run config.

DeepSpeed 0.19 ignores unknown top-level keys silently and takes `"auto"` as "default" (only HF
Accelerate resolves it), so we validate the JSON ourselves and write real numbers.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
from pathlib import Path
from typing import Any

from scaling.config import ConfigError

# Top-level keys DeepSpeed 0.19 reads (deepspeed/runtime/constants.py and the config classes).
KNOWN_TOP_LEVEL = {
    "train_batch_size",
    "train_micro_batch_size_per_gpu",
    "gradient_accumulation_steps",
    "gradient_clipping",
    "bf16",
    "fp16",
    "amp",
    "torch_autocast",
    "zero_optimization",
    "optimizer",
    "scheduler",
    "steps_per_print",
    "wall_clock_breakdown",
    "memory_breakdown",
    "activation_checkpointing",
    "checkpoint",
    "aio",
    "communication_data_type",
    "seq_parallel_communication_data_type",
    "prescale_gradients",
    "gradient_predivide_factor",
    "sparse_gradients",
    "zero_allow_untested_optimizer",
    "zero_force_ds_cpu_optimizer",
    "flops_profiler",
    "tensorboard",
    "wandb",
    "csv_monitor",
    "comet",
    "comms_logger",
    "data_types",
    "dump_state",
    "dataloader_drop_last",
    "disable_allgather",
    "graph_harvesting",
    "compile",
    "elasticity",
    "timers",
    "use_data_before_expert_parallelism",
    "gradient_allreduce_op",
    "data_efficiency",
    "compression_training",
    "autotuning",
    "nebula",
    "pipeline",
    "eigenvalue",
    "progressive_layer_drop",
    "curriculum_learning",
    "quantize_training",
    "weight_quantization",
    "hybrid_engine",
    "load_universal_checkpoint",
}
# Owned by the run config; a policy file that sets them would be a second source of truth.
RUN_OWNED = {
    "train_batch_size",
    "train_micro_batch_size_per_gpu",
    "gradient_accumulation_steps",
    "gradient_clipping",
    "bf16",
    "fp16",
    "optimizer",
    "scheduler",
}


def _find_auto(node: Any, where: str = "") -> list[str]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _find_auto(v, f"{where}.{k}" if where else k)]
    return [where] if node == "auto" else []


def validate_policy(policy: dict[str, Any], source: str) -> None:
    unknown = sorted(set(policy) - KNOWN_TOP_LEVEL)
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, sorted(KNOWN_TOP_LEVEL), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"{source}: unknown DeepSpeed key {key!r} (DeepSpeed would ignore it silently).{hint}"
        )
    owned = sorted(set(policy) & RUN_OWNED)
    if owned:
        raise ConfigError(
            f"{source}: {owned} are set from the run config (batch.*, optim.*, deepspeed.precision); "
            "remove them from the DeepSpeed policy file."
        )
    autos = _find_auto(policy)
    if autos:
        raise ConfigError(
            f"{source}: {autos} are 'auto', which DeepSpeed does not resolve; write numbers "
            "(or delete the keys: the run config fills bucket sizes from the model width)."
        )
    stage = policy.get("zero_optimization", {}).get("stage", 0)
    if stage not in (0, 1, 2, 3):
        raise ConfigError(f"{source}: zero_optimization.stage must be 0-3, got {stage!r}.")


def load_policy(name: str) -> dict[str, Any]:
    """A policy file: a path, or a packaged one by name (ds_configs/zero3_bf16.json: `zero3_bf16.json`)."""
    from scaling.resources import find_ds_config

    path = find_ds_config(name)
    try:
        policy = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON ({e}).") from e
    if not isinstance(policy, dict):
        raise ConfigError(f"{path}: a DeepSpeed config must be a JSON object.")
    validate_policy(policy, str(path))
    return policy


def build_ds_config(
    policy: dict[str, Any],
    *,
    micro_batch: int,
    grad_accum: int,
    world_size: int,
    precision: str,
    clip_grad: float,
    width: int,
    nvme_path: str = "",
) -> dict[str, Any]:
    """The merged config: policy + the run's batch sizes, precision, clipping and width-derived buckets;
    `nvme_path` (deepspeed.nvme_path) replaces the policy's NVMe offload folders."""
    cfg = copy.deepcopy(policy)
    for section in ("offload_optimizer", "offload_param"):
        offload = cfg.get("zero_optimization", {}).get(section)
        if nvme_path and isinstance(offload, dict) and offload.get("device") == "nvme":
            offload["nvme_path"] = nvme_path
    cfg["train_micro_batch_size_per_gpu"] = micro_batch
    cfg["gradient_accumulation_steps"] = grad_accum
    cfg["train_batch_size"] = micro_batch * grad_accum * world_size
    cfg["gradient_clipping"] = float(clip_grad)  # 0.19.3+ defaults to 1.0: always explicit
    cfg["bf16"] = {"enabled": precision == "bf16"}
    if precision == "bf16":
        # Non-finite gradients must skip the step (trainer.py): ZeRO-3 always skips on a non-finite global
        # norm, ZeRO-1/2 in bf16 only with this check (one host sync per optimizer step, not per micro-batch).
        cfg["bf16"]["check_grad_overflow"] = True
    cfg["fp16"] = {"enabled": precision == "fp16"}
    if precision == "fp16":
        cfg["fp16"].update({"loss_scale": 0, "initial_scale_power": 16, "hysteresis": 2, "min_loss_scale": 1})
    zero = cfg.setdefault("zero_optimization", {})
    if zero.get("stage", 0) == 3:
        zero.setdefault("reduce_bucket_size", width * width)
        zero.setdefault("stage3_prefetch_bucket_size", int(0.9 * width * width))
        zero.setdefault("stage3_param_persistence_threshold", 10 * width)
        # DeepSpeed's default swaps torch.nn.functional.linear, process-wide and for good, for an autograd
        # Function that exists to drop autocast's weight copies. We run bf16 weights without autocast, so it
        # saves nothing here; it adds the bias as a separate kernel (5% of the ViT-2B MAE step's GPU time on
        # an H200, benchmarks/results/train_profile_ours_h200_20261127a_memeff_linear.txt) and would change
        # F.linear for every other model in the process.
        zero.setdefault("memory_efficient_linear", False)
    elif zero.get("stage", 0) in (1, 2):
        zero.setdefault("reduce_bucket_size", max(width * width, 5 * 10**7))
        zero.setdefault("allgather_bucket_size", max(width * width, 5 * 10**7))
    cfg.setdefault("zero_allow_untested_optimizer", True)
    return cfg


def check_with_deepspeed(cfg: dict[str, Any]) -> None:
    """Parse `cfg` with DeepSpeed's own config class (raises on invalid sections and batch arithmetic).

    Without a process group DeepSpeedConfig assumes one rank, so the batch total is checked for one rank.
    """
    import torch.distributed as dist
    from deepspeed.runtime.config import DeepSpeedConfig

    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    cfg = copy.deepcopy(cfg)
    cfg["train_batch_size"] = (
        cfg["train_micro_batch_size_per_gpu"] * cfg["gradient_accumulation_steps"] * world
    )
    DeepSpeedConfig(cfg)


def offload_devices(cfg: dict[str, Any]) -> dict[str, str]:
    """{"offload_optimizer": device, "offload_param": device} ("none" when not offloaded)."""
    zero = cfg.get("zero_optimization", {})
    return {k: str((zero.get(k) or {}).get("device", "none")) for k in ("offload_optimizer", "offload_param")}


def check_offload(cfg: dict[str, Any], optim_impl: str, source: str) -> bool:
    """Whether the optimizer is offloaded (then DeepSpeedCPUAdam must step it), after checking that what the
    policy offloads can run here: DeepSpeed's cpu_adam op for an offloaded optimizer, its async I/O op
    (libaio) and a writable folder for NVMe. Each failure is a ConfigError before anything is built."""
    from deepspeed.ops.op_builder import AsyncIOBuilder, CPUAdamBuilder

    devices = offload_devices(cfg)
    offloaded = devices["offload_optimizer"] in ("cpu", "nvme")
    if offloaded and optim_impl != "auto":
        raise ConfigError(
            f"{source} offloads the optimizer, which only DeepSpeedCPUAdam can step; optim.impl={optim_impl} "
            "cannot. Use optim.impl=auto."
        )
    if offloaded and not CPUAdamBuilder().is_compatible():
        raise ConfigError(
            f"{source} offloads the optimizer, which needs DeepSpeed's cpu_adam op, and it cannot be built here "
            "(it needs a C++ compiler and ninja: apt-get install build-essential ninja-build). Or use a policy "
            "without offload_optimizer."
        )
    nvme = [k for k, d in devices.items() if d == "nvme"]
    if nvme and not AsyncIOBuilder().is_compatible(verbose=False):
        raise ConfigError(
            f"{source} puts {' and '.join(nvme)} on NVMe, which needs DeepSpeed's async I/O op; it cannot build "
            "here because libaio (its library and headers) is missing. Install it: apt-get install libaio-dev "
            "(yum install libaio-devel; or conda install -c conda-forge libaio with CFLAGS=-I$CONDA_PREFIX/include "
            "LDFLAGS=-L$CONDA_PREFIX/lib), then check with `python -c \"from deepspeed.ops.op_builder import "
            "AsyncIOBuilder; print(AsyncIOBuilder().is_compatible())\"`. Or use zero3_offload_optimizer.json."
        )
    for key in nvme:
        folder = Path(str(cfg["zero_optimization"][key].get("nvme_path", "")))
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise ConfigError(
                f"{source}: {key}.nvme_path {str(folder)!r} is not a writable folder; set "
                "deepspeed.nvme_path=/a/local/nvme/folder."
            )
    return offloaded
