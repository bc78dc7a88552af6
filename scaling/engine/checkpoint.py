"""Checkpoints: DeepSpeed's sharded states plus our per-rank client state, and a completion marker.

Layout: run_dir/checkpoints/step_000000123/{DeepSpeed files, rank_00000.pt ..., COMPLETE.json}
`COMPLETE.json` is written (atomically, by rank 0) only after every rank has finished writing, so a run
killed mid-save leaves a tag without it, and `resume: auto` takes the newest tag that has it.
Each rank's file holds its data-stream position and RNG states: the stream resumes exactly.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scaling.engine.distributed import barrier

CHECKPOINTS = "checkpoints"
MARKER = "COMPLETE.json"


class CheckpointError(RuntimeError):
    pass


def tag_for(step: int) -> str:
    return f"step_{step:09d}"


def complete_checkpoints(run_dir: str | Path) -> list[Path]:
    """Tag directories with a completion marker, oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    tags = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_") and (p / MARKER).is_file()]
    return sorted(tags, key=lambda p: int(p.name.split("_")[1]))


def read_marker(tag_dir: Path) -> dict[str, Any]:
    return json.loads((tag_dir / MARKER).read_text())


def find_resume(run_dir: str | Path, resume: str) -> Path | None:
    """`none` -> None; `auto` -> newest complete checkpoint (or None for a fresh run); else a tag path."""
    if resume == "none":
        return None
    if resume == "auto":
        tags = complete_checkpoints(run_dir)
        return tags[-1] if tags else None
    path = Path(resume)
    if not (path / MARKER).is_file():
        raise CheckpointError(
            f"resume={resume!r} is not a complete checkpoint directory (no {MARKER}); "
            f"complete ones under {run_dir}: "
            f"{[p.name for p in complete_checkpoints(run_dir)] or 'none'}."
        )
    return path


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def save(
    engine,
    run_dir: Path,
    step: int,
    client_state: dict[str, Any],
    data_state: Any,
    rank: int,
    world_size: int,
    keep: int,
) -> Path:
    """Every rank must call this (ZeRO-3 shards are written by their owners)."""
    root = run_dir / CHECKPOINTS
    tag = tag_for(step)
    tag_dir = root / tag
    if rank == 0 and (tag_dir / MARKER).exists():  # a re-save of the same step: invalidate before writing
        (tag_dir / MARKER).unlink()
    barrier()
    engine.save_checkpoint(str(root), tag=tag, client_state=client_state, save_latest=False)
    torch.save({"data": data_state, "rng": rng_state()}, tag_dir / f"rank_{rank:05d}.pt")
    barrier()
    if rank == 0:
        marker = {"step": step, "world_size": world_size, "time": time.time(), **client_state}
        tmp = tag_dir / (MARKER + ".tmp")
        tmp.write_text(json.dumps(marker, indent=1, default=str))
        os.replace(tmp, tag_dir / MARKER)
        for old in complete_checkpoints(run_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    barrier()
    return tag_dir


def load_rank_state(tag_dir: Path, rank: int) -> dict[str, Any]:
    path = tag_dir / f"rank_{rank:05d}.pt"
    if not path.is_file():
        raise CheckpointError(
            f"{tag_dir} has no state for rank {rank}: was it written by a run with fewer ranks?"
        )
    # Our own file: data-stream positions and RNG states (numpy arrays, python tuples), not weights.
    return torch.load(path, map_location="cpu", weights_only=False)


def load_stream_states(tag_dir: Path) -> dict[int, Any]:
    """Data-stream positions of every rank of a checkpoint, merged by stream id (so any world size that
    keeps the same global batch layout can pick up its streams)."""
    merged: dict[int, Any] = {}
    for path in sorted(tag_dir.glob("rank_*.pt")):
        merged.update(torch.load(path, map_location="cpu", weights_only=False)["data"])
    return merged


def to_universal(tag_dir: Path, rank: int) -> Path:
    """Convert a checkpoint to DeepSpeed's universal format (for a different world size); rank 0 converts."""
    out = tag_dir.parent / (tag_dir.name + "_universal")
    if rank == 0 and not (out / MARKER).is_file():
        from deepspeed.checkpoint.ds_to_universal import main as ds_to_universal

        class _Args:
            input_folder = str(tag_dir)
            output_folder = str(out)
            num_extract_workers = 1
            num_merge_workers = 1
            keep_temp_folder = False
            strict = True
            inject_missing_state = False

        ds_to_universal(_Args())
        # ds_to_universal writes a `latest_universal` pointer next to its output; keep our marker semantics.
        for path in tag_dir.glob("rank_*.pt"):  # data-stream positions travel with the weights
            shutil.copy(path, out / path.name)
        shutil.copy(tag_dir / MARKER, out / MARKER)
    barrier()
    return out
