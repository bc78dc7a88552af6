"""The run directory: refuse to clobber an existing run, delete without blocking, and small file helpers.

Checking (`check_run_dir`) and writing (`prepare_run_dir`) are separate so that every bad input is found
before anything is written: a start that fails leaves the directory as it was, and its retry is accepted.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

from scaling.config import ConfigError

RUN_FILES = ("config.yaml", "ds_config.json", "metrics.jsonl", "summary.json", "tb", "checkpoints")
TRASH = ".trash"


def holds_a_run(run_dir: Path) -> bool:
    """A run that trained: it saved a checkpoint, logged a step or finished. A start that died before its first
    step (only config.yaml, ds_config.json, an empty metrics.jsonl) holds nothing to lose."""
    ckpts = run_dir / "checkpoints"
    metrics = run_dir / "metrics.jsonl"
    return (
        (run_dir / "summary.json").exists()
        or (metrics.is_file() and metrics.stat().st_size > 0)
        or (ckpts.is_dir() and any(p.name != TRASH for p in ckpts.iterdir()))
    )


def check_run_dir(run_dir: Path, cfg, resuming: bool) -> None:
    """The ConfigError `prepare_run_dir` would raise, raised before anything is built or written."""
    if resuming or cfg.overwrite or cfg.resume == "auto" or not holds_a_run(run_dir):
        return  # resume=auto on a run that never checkpointed: start it again in place
    raise ConfigError(
        f"run_dir {str(run_dir)!r} already holds a run. Use resume=auto to continue it, "
        f"overwrite=true to delete it and start over, or run_dir=NEW_DIR."
    )


def prepare_run_dir(run_dir: Path, cfg, resuming: bool) -> None:
    """Create `run_dir`; an existing run is only continued (resume) or replaced (overwrite=true, or a start
    that never trained). Old files are moved aside at once and deleted in the background."""
    check_run_dir(run_dir, cfg, resuming)
    if not resuming and any((run_dir / name).exists() for name in RUN_FILES):
        trash = Trash(run_dir)
        for name in RUN_FILES:
            trash.put(run_dir / name)
        trash.empty_in_background()
    run_dir.mkdir(parents=True, exist_ok=True)


class Trash:
    """Deleting a big directory (a 6.5B checkpoint is ~78 GB) can take minutes on a parallel filesystem: longer
    than the other ranks wait in a collective. A rename is instant, so deletions go in two parts: `put` renames
    into `parent/.trash/` (same filesystem), `empty_in_background` deletes there from a thread, outside any
    collective. Whatever a killed process left in `.trash` is deleted by the next one."""

    def __init__(self, parent: Path) -> None:
        self.dir = Path(parent) / TRASH

    def put(self, path: Path) -> None:
        if not path.exists() and not path.is_symlink():
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        os.replace(path, self.dir / f"{path.name}-{uuid.uuid4().hex[:8]}")

    def empty_in_background(self) -> threading.Thread | None:
        """Delete what is in the trash now (each entry; the folder stays, so a concurrent `put` cannot lose its
        target). Not a daemon thread: the interpreter finishes the deletion before it exits."""
        if not self.dir.is_dir():
            return None
        entries = list(self.dir.iterdir())
        thread = threading.Thread(target=_delete, args=(entries,), name="trash", daemon=False)
        thread.start()
        return thread


def _delete(entries: list[Path]) -> None:
    for path in entries:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def write_json(path: Path, obj: Any) -> None:
    """Write atomically (temp file + rename): a crash never leaves a half-written file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)
