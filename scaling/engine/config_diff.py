"""What may change between a run and its resume.

Every config key changes the run's math (schedule, batch layout, model, data order, seed, `total_samples`:
the cosine horizon) unless it is listed in FREE_KEYS: paths, logging, checkpoint cadence, implementation
choices that compute the same thing. A key that is not listed is compared, so a new key is safe by default.
The batch layout is compared as resolved numbers (micro batch, global batch): `grad_accum` itself changes
legitimately when a job is resized.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from scaling.config import ConfigError, to_dict

FREE_KEYS = (
    "run_dir",
    "resume",
    "overwrite",
    "allow_changes",
    "checkpoint_every",
    "keep_checkpoints",
    "log_every",
    "max_bad_steps",
    "force_memory",
    "debug",  # older versions had fault-injection keys here
    "dist",
    "logging",
    "init_from",  # read only by a fresh start; a resume loads its own weights
    "init_from_flops",
    "model.kernels",
    "model.activation_checkpointing",
    "optim.impl",
    "deepspeed.config",
    "deepspeed.nvme_path",
    "data.train",  # a path: the same shards may move
    "data.val",
    "data.caption_vocab",  # a path: the vocabulary may move; data.caption_vocab_hash is compared
    "data.prefetch",
    "data.pin_memory",
    "data.decode",
    "data.shard_retries",
    "data.retry_delay_s",
    "data.log_every_s",
    "batch.grad_accum",  # compared as the resolved layout below
    "batch.global_batch",
)

# Older spellings of today's values, so that a run written by an older version resumes: optim.lr 0 was auto.
LEGACY_VALUES = {"optim.lr": {0: "auto"}}


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


def _covered(key: str, names: tuple[str, ...] | list[str]) -> bool:
    return any(key == n or key.startswith(n + ".") for n in names)


def math_config(config: dict[str, Any], global_batch: int) -> dict[str, Any]:
    """The keys that change the run's math, flattened, with the resolved global batch."""
    flat = {k: v for k, v in flatten(config).items() if not _covered(k, FREE_KEYS)}
    for key, spellings in LEGACY_VALUES.items():
        if isinstance(flat.get(key), (int, float)) and flat[key] in spellings:
            flat[key] = spellings[flat[key]]
    flat["batch.global_batch"] = global_batch
    return flat


def changed_keys(saved: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, saved value, new value) for every math key that differs. A key only one side has (written by an
    older or newer version of the code) is not compared: its value on the other side is unknown."""
    return [(k, saved[k], new[k]) for k in sorted(set(saved) & set(new)) if saved[k] != new[k]]


def check_resume_config(
    saved: dict[str, Any], saved_global_batch: int, cfg, global_batch: int, where: str
) -> list[tuple[str, Any, Any]]:
    """Refuse a resume whose config changes the run's math, unless each changed key is in
    `cfg.allow_changes`; returns the allowed changes (to log). One-line ConfigError naming every key."""
    changes = changed_keys(math_config(saved, saved_global_batch), math_config(to_dict(cfg), global_batch))
    refused = [c for c in changes if not _covered(c[0], cfg.allow_changes)]
    if refused:
        listed = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in refused)
        keys = ",".join(dict.fromkeys([*cfg.allow_changes, *(k for k, _, _ in refused)]))
        raise ConfigError(
            f"resume from {where} would change the run's math: {listed}. Restore the checkpoint's values, "
            f"or accept the change with allow_changes={keys} (or start a new run_dir)."
        )
    return changes


def config_hash(cfg) -> str:
    """A fingerprint of the math keys (for humans comparing runs; the resume check compares the keys)."""
    data = {k: v for k, v in flatten(to_dict(cfg)).items() if not _covered(k, FREE_KEYS)}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]
