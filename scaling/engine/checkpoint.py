"""Checkpoint files: DeepSpeed's sharded states plus our per-rank client state, and a completion marker.

Layout: run_dir/checkpoints/step_000000123/{DeepSpeed files, rank_00000.pt ..., COMPLETE.json}
`COMPLETE.json` is written (atomically, by rank 0) only after every rank has finished writing, so a run
killed mid-save leaves a tag without it, and `resume: auto` takes the newest tag that has it. It also records
the layout (world size, grad_accum) and the run's config, so a resuming rank can compute which rank file holds
each of its data streams (stream v = rank x grad_accum + slot) and read only those: O(1) files per rank.
`step_N_universal/` is DeepSpeed's universal conversion of `step_N` for a resized job: never a checkpoint of its
own (it has CONVERTED.json, not COMPLETE.json, and its name is not a tag).
`checkpointing.CheckpointManager` decides when to call what; this module only reads and writes.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scaling.config import ConfigError
from scaling.engine.distributed import barrier
from scaling.engine.run_dir import Trash

CHECKPOINTS = "checkpoints"
MARKER = "COMPLETE.json"
CONVERTED = "CONVERTED.json"  # in step_N_universal/: the conversion finished
UNIVERSAL_SUFFIX = "_universal"
TAG_RE = re.compile(r"step_(\d+)")


class CheckpointError(ConfigError):
    """A checkpoint that cannot be resumed as asked (a bad resume= path, a missing rank file)."""


def tag_for(step: int) -> str:
    return f"step_{step:09d}"


def is_tag(path: Path) -> bool:
    """`step_N` only: `step_N_universal` (a conversion) and `step_N.tmp`-like names are not checkpoints."""
    return TAG_RE.fullmatch(path.name) is not None


def complete_checkpoints(run_dir: str | Path) -> list[Path]:
    """Tag directories with a completion marker, oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    tags = [p for p in root.iterdir() if is_tag(p) and p.is_dir() and (p / MARKER).is_file()]
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
    if path.name.endswith(UNIVERSAL_SUFFIX):
        raise CheckpointError(
            f"resume={resume!r} is a universal conversion, not a checkpoint: give the checkpoint it was made "
            f"from (resume={str(path)[: -len(UNIVERSAL_SUFFIX)]}); a resized job converts it again if needed."
        )
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


def rank_file(tag_dir: Path, rank: int) -> Path:
    return tag_dir / f"rank_{rank:05d}.pt"


def save(
    engine,
    run_dir: Path,
    step: int,
    client_state: dict[str, Any],
    data_state: Any,
    rank: int,
    marker: dict[str, Any],
    keep: int,
) -> Path:
    """Every rank must call this (ZeRO-3 shards are written by their owners). `marker` goes into COMPLETE.json
    beside the step; it must hold `world_size` and `grad_accum` (the stream layout). Old checkpoints beyond
    `keep` are moved aside before the last barrier (a rename) and deleted after it, in the background."""
    root = run_dir / CHECKPOINTS
    tag = tag_for(step)
    tag_dir = root / tag
    if rank == 0 and (tag_dir / MARKER).exists():  # a re-save of the same step: invalidate before writing
        (tag_dir / MARKER).unlink()
    barrier()
    engine.save_checkpoint(str(root), tag=tag, client_state=client_state, save_latest=False)
    torch.save({"data": data_state, "rng": rng_state()}, rank_file(tag_dir, rank))
    barrier()
    trash = Trash(root)
    if rank == 0:
        tmp = tag_dir / (MARKER + ".tmp")
        tmp.write_text(json.dumps({"step": step, "time": time.time(), **marker}, indent=1, default=str))
        os.replace(tmp, tag_dir / MARKER)
        for old in complete_checkpoints(run_dir)[:-keep]:
            trash.put(old)
            trash.put(old.with_name(old.name + UNIVERSAL_SUFFIX))
    barrier()
    if rank == 0:
        trash.empty_in_background()
    return tag_dir


def saved_grad_accum(marker: dict[str, Any], streams: int) -> int:
    """grad_accum of the run that wrote the checkpoint. Checkpoints from before it was recorded: the stream
    count is unchanged across a resume (checked by the caller's stream lookup), so streams / world size."""
    if "grad_accum" in marker:
        return int(marker["grad_accum"])
    return max(streams // int(marker["world_size"]), 1)


def stream_files(tag_dir: Path, marker: dict[str, Any], stream_ids: list[int], streams: int) -> list[Path]:
    """The rank files that hold these data streams: saved rank v // saved grad_accum held stream v."""
    accum = saved_grad_accum(marker, streams)
    return [rank_file(tag_dir, r) for r in sorted({v // accum for v in stream_ids})]


def _load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(
            f"{path.parent} has no {path.name}: was it written by a run with a different number of ranks or "
            "data streams (world_size x grad_accum)?"
        )
    # Our own file: data-stream positions and RNG states (numpy arrays, python tuples), not weights.
    return torch.load(path, map_location="cpu", weights_only=False)


def load_rank_state(tag_dir: Path, rank: int) -> dict[str, Any]:
    return _load(rank_file(tag_dir, rank))


def load_stream_states(
    tag_dir: Path, marker: dict[str, Any], stream_ids: list[int], streams: int
) -> tuple[dict[int, Any], dict[int, Any]]:
    """(positions of `stream_ids`, rank -> whole rank state) reading only the files that hold them; the
    rank states are returned so that the caller can take the RNG from one it already read."""
    merged: dict[int, Any] = {}
    states: dict[int, Any] = {}
    for path in stream_files(tag_dir, marker, stream_ids, streams):
        state = _load(path)
        states[int(path.stem.split("_")[1])] = state
        merged.update({v: s for v, s in state["data"].items() if v in stream_ids})
    return merged, states


def universal_dir(tag_dir: Path) -> Path:
    return tag_dir.with_name(tag_dir.name + UNIVERSAL_SUFFIX)


def conversion_workers() -> int:
    """Extract/merge processes for the universal conversion: the cores this process may use, at most 16
    (each worker holds one optimizer shard or one parameter's slices in memory)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(16, cores))


def to_universal(tag_dir: Path, rank: int, workers: int | None = None) -> Path:
    """Convert a checkpoint to DeepSpeed's universal format (for a different world size); rank 0 converts
    with `workers` parallel extract and merge processes while the others wait at the barrier (which is why
    `dist.timeout_minutes` must cover a conversion). Our rank files stay in `tag_dir`: they are read there."""
    out = universal_dir(tag_dir)
    done = (out / CONVERTED).is_file() or (out / MARKER).is_file()  # MARKER: converted by an older version
    if rank == 0 and not done:
        from deepspeed.checkpoint.ds_to_universal import main as ds_to_universal

        n = workers or conversion_workers()
        trash = Trash(tag_dir.parent)
        if out.exists():  # a conversion that was interrupted: start it again
            trash.put(out)

        class _Args:
            input_folder = str(tag_dir)
            output_folder = str(out)
            num_extract_workers = n
            num_merge_workers = n
            keep_temp_folder = False
            strict = True
            inject_missing_state = False

        t0 = time.perf_counter()
        ds_to_universal(_Args())
        seconds = time.perf_counter() - t0
        (out / CONVERTED).write_text(json.dumps({"source": tag_dir.name, "workers": n, "seconds": seconds}))
        trash.empty_in_background()
    barrier()
    return out
