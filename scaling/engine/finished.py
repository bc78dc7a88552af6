"""A run that is already complete is left exactly as it is.

A requeued or resubmitted job (resume=auto) on a run dir that finished must not train, re-save its final
checkpoint (a kill mid-save would leave no valid final checkpoint) or rewrite summary.json (which `scaling eval`
extends with its results). `complete_summary` recognises such a run before anything is built or written, from
O(1) files per rank whatever the world size: summary.json, the checkpoints folder's listing and the newest
complete checkpoint's marker. A config that changes the run's math is refused as a resume would refuse it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from scaling.engine.checkpoint import complete_checkpoints, read_marker
from scaling.engine.config_diff import check_resume_config


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    """A run dir's summary.json as a dict; None where it is missing, unreadable or not an object."""
    try:
        summary = json.loads((Path(run_dir) / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def finished(summary: dict[str, Any] | None) -> bool:
    """A run that trained every step: not preempted, not cancelled (a cut run also leaves a summary.json). The
    one test of "done" for the trainer, `sweep status`, `sweep submit` and a sweep's stage1_from."""
    return summary is not None and summary.get("preempted") is False


def complete_summary(cfg, world_size: int) -> dict[str, Any] | None:
    """summary.json of `cfg.run_dir` when the run there finished every step `cfg` asks for and its newest
    complete checkpoint is that final step; None when there is something to train (or resume is not auto)."""
    if cfg.resume != "auto" or cfg.overwrite:
        return None
    run_dir = Path(cfg.run_dir)
    summary = read_summary(run_dir)
    if not finished(summary):
        return None  # no summary, or a cut run (preempted, cancelled): it continues
    tags = complete_checkpoints(run_dir)
    if not tags:
        return None
    marker = read_marker(tags[-1])
    step = int(marker.get("step", marker.get("train_state", {}).get("step", -1)))
    if step != summary.get("steps"):
        return None
    global_batch = cfg.batch.resolve(world_size)[0]
    if math.ceil(cfg.total_samples / global_batch) != step:
        return None  # another length: the ordinary resume path checks (and refuses) the change
    if marker.get("config") is not None:
        saved_batch = int(marker.get("global_batch") or global_batch)
        check_resume_config(marker["config"], saved_batch, cfg, global_batch, tags[-1].name)
    return summary


def last_records(run_dir: Path, tail_bytes: int = 65536) -> list[dict[str, Any]]:
    """The records at the end of metrics.jsonl (its last `tail_bytes`: O(1) bytes whatever the run's length)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    with path.open("rb") as f:
        f.seek(max(0, f.seek(0, 2) - tail_bytes))
        lines = f.read().decode(errors="replace").splitlines()
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # the first line cut by the seek, or a line being written
        if isinstance(record, dict):
            records.append(record)
    return records


def last_logged_loss(run_dir: Path, step: int) -> float:
    """The loss metrics.jsonl logged at `step`, NaN when absent: for a run resumed at its final step, where no
    step ran in this process."""
    for record in reversed(last_records(run_dir)):
        if record.get("step") == step and record.get("loss") is not None:
            return float(record["loss"])
    return float("nan")
