"""The run directory: refuse to clobber an existing run, and small file helpers."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from scaling.config import ConfigError, to_dict

RUN_FILES = ("config.yaml", "ds_config.json", "metrics.jsonl", "summary.json", "tb", "checkpoints")
# Keys that may change between a run and its resume without changing what is trained.
VOLATILE_KEYS = (
    "run_dir",
    "resume",
    "overwrite",
    "checkpoint_every",
    "keep_checkpoints",
    "log_every",
    "total_samples",
    "debug",
)


def holds_a_run(run_dir: Path) -> bool:
    return any((run_dir / name).exists() for name in RUN_FILES)


def prepare_run_dir(run_dir: Path, cfg, resuming: bool) -> None:
    """Create `run_dir`; an existing run is only continued (resume) or replaced (overwrite=true)."""
    if holds_a_run(run_dir) and not resuming:
        if not cfg.overwrite:
            if cfg.resume == "auto":
                return  # resume=auto on a run that never checkpointed: start it again in place
            raise ConfigError(
                f"run_dir {str(run_dir)!r} already holds a run. Use resume=auto to continue it, "
                f"overwrite=true to delete it and start over, or run_dir=NEW_DIR."
            )
        for name in RUN_FILES:
            target = run_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)


def write_json(path: Path, obj: Any) -> None:
    """Write atomically (temp file + rename): a crash never leaves a half-written file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def config_hash(cfg) -> str:
    data = {k: v for k, v in to_dict(cfg).items() if k not in VOLATILE_KEYS}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
