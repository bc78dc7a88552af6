"""Process-group setup for one code path: a plain `python -m scaling.train` (one process), or N ranks
started by the `deepspeed` launcher (which sets RANK/WORLD_SIZE/LOCAL_RANK and appends --local_rank)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

import torch
import torch.distributed as dist

from scaling.config import Range, check_ranges


@dataclass
class DistConfig:
    # How long a collective waits for the slowest rank. Rank-0-only work happens while the others wait in one:
    # the universal conversion of a resized job and writing a checkpoint. Measured: ViT-L's conversion (a 4 GB
    # ZeRO-3 checkpoint of 2 ranks) took 29 s on a shared 2-core box (benchmarks/results/universal_conversion_*);
    # ViT-6.5B has 21x the parameters, ~10 min at that rate: DeepSpeed's default timeout (10 min). 120 leaves
    # room for slower filesystems and more shards.
    timeout_minutes: float = 120.0

    RANGES: ClassVar[dict[str, Range]] = {"timeout_minutes": Range(0, lo_open=True, note="DeepSpeed's default: 10")}

    def __post_init__(self) -> None:
        check_ranges(self, "dist")


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for MASTER_PORT)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def skip_cpu_shm_op_build() -> None:
    """DeepSpeed's CPU backend JIT-compiles a shared-memory all-reduce op when the process group starts: 30 s on
    2 cores, again for every new venv path, before the first step of a fresh clone. That op serves only
    `inference_all_reduce` (DeepSpeed-Inference tensor parallelism, which falls back to gloo without it);
    ZeRO's collectives go through torch.distributed (gloo) either way. DeepSpeed keeps one dict of compatible
    ops for the process, read when the backend is built, so marking the op incompatible skips the build."""
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


def share_cpu_cores() -> int:
    """CPU ranks on one machine split its cores: torch's default is every core per process, so 2 ranks on 2
    cores ran 4 threads and trained 5x slower (1 step/s instead of 5 for the demo's MAE run). The DeepSpeed
    launcher sets OMP_NUM_THREADS only with --bind_cores_to_rank; a value you set is kept."""
    local = int(os.environ.get("LOCAL_SIZE") or os.environ.get("LOCAL_WORLD_SIZE") or 1)
    if local > 1 and not os.environ.get("OMP_NUM_THREADS"):
        cores = min(torch.get_num_threads(), len(os.sched_getaffinity(0)))
        torch.set_num_threads(max(1, cores // local))
    return torch.get_num_threads()


def setup(timeout_minutes: float = DistConfig.timeout_minutes) -> DistInfo:
    """Initialise the process group through DeepSpeed (NCCL on GPU, gloo on CPU) and pick the device.
    `timeout_minutes`: every collective's timeout (dist.timeout_minutes)."""
    import deepspeed
    from deepspeed.accelerator import get_accelerator

    if "RANK" not in os.environ:  # single process without a launcher: make env:// work on its own
        os.environ.update({"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1"})
        os.environ.setdefault("MASTER_PORT", str(free_port()))
    if not dist.is_initialized():
        if get_accelerator().device_name() == "cpu":
            skip_cpu_shm_op_build()
        deepspeed.init_distributed(
            dist_backend=get_accelerator().communication_backend_name(), auto_mpi_discovery=False,
            timeout=timedelta(minutes=timeout_minutes),
        )
    rank, world = dist.get_rank(), dist.get_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    accel = get_accelerator()
    if accel.device_name() == "cuda":
        accel.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
        share_cpu_cores()
    return DistInfo(rank, world, local_rank, device)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def broadcast_object(obj: Any, rank: int) -> Any:
    """Rank 0's `obj` on every rank (one collective; any picklable object)."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return obj
    box = [obj if rank == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_sum(values: list[float | torch.Tensor], device: torch.device) -> list[float]:
    """Sum a few numbers across ranks in one collective (every rank must call it). Values may be 0-d device
    tensors: they are not read before the collective, so the final .tolist() is the only host sync."""
    dtype = torch.float64 if device.type == "cpu" else torch.float32
    if any(isinstance(v, torch.Tensor) for v in values):
        t = torch.stack([torch.as_tensor(v, device=device).to(dtype).reshape(()) for v in values])
    else:
        t = torch.tensor(values, dtype=dtype, device=device)
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t)
    return t.tolist()


def teardown(engine=None) -> None:
    """engine.destroy(), barrier, destroy_process_group: the order that avoids rare aborts at exit."""
    if engine is not None and hasattr(engine, "destroy"):
        engine.destroy()
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
