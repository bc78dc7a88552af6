"""The checkpoint manager: the one owner of resume (torchtitan's `checkpoint.py`).

`plan` (before anything is built or written): find the checkpoint to resume, check that the new config does
not change the run's math (config_diff), check the run dir may be used, and decide whether the job was resized
(DeepSpeed's universal format). `start` writes the run dir's files. `restore`: convert if resized, load
DeepSpeed's states, repair the universal load's faults, restore the data streams and RNG reading O(1) files per
rank (MetricsLogger cuts metrics.jsonl and TensorBoard back to the resumed step). `save`: every rank's part
of a checkpoint.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from scaling.config import ConfigError, dump_yaml, load_yaml, to_dict
from scaling.engine import checkpoint as ckpt
from scaling.engine.config_diff import check_resume_config, config_hash
from scaling.engine.distributed import DistInfo, barrier, broadcast_object
from scaling.engine.run_dir import check_run_dir, prepare_run_dir, write_json

log = logging.getLogger(__name__)


@dataclass
class Resume:
    tag: Path
    marker: dict[str, Any]
    resized: bool  # a different world size: DeepSpeed loads the universal conversion


class CheckpointManager:
    def __init__(self, cfg, dist: DistInfo, global_batch: int, grad_accum: int) -> None:
        self.cfg, self.dist = cfg, dist
        self.run_dir = Path(cfg.run_dir)
        self.global_batch, self.grad_accum = global_batch, grad_accum
        self.resume: Resume | None = None

    # -- before anything is built or written --------------------------------------------------------------
    def plan(self) -> Resume | None:
        """Find and check the checkpoint to resume (None: a fresh start). Every rank reads one marker file."""
        tag = ckpt.find_resume(self.run_dir, self.cfg.resume)
        check_run_dir(self.run_dir, self.cfg, resuming=tag is not None)
        if tag is None:
            return None
        marker = ckpt.read_marker(tag)
        saved, saved_batch = self._saved_config(tag, marker)
        if saved is not None:
            for key, old, new in check_resume_config(saved, saved_batch, self.cfg, self.global_batch, tag.name):
                if self.dist.is_main:
                    log.warning("resume: %s changes %r -> %r (allow_changes)", key, old, new)
        self.resume = Resume(tag, marker, int(marker["world_size"]) != self.dist.world_size)
        return self.resume

    def _saved_config(self, tag: Path, marker: dict[str, Any]) -> tuple[dict | None, int]:
        """The config the checkpoint was trained with: in its marker; for checkpoints written before it was,
        the run's config.yaml (its last start's). Also the global batch it ran with."""
        saved = marker.get("config")
        if saved is None:
            yaml_path = tag.parent.parent / "config.yaml"
            saved = load_yaml(yaml_path) if yaml_path.is_file() else None
        if saved is None:
            log.warning("resume: %s records no config; the new config is not compared with it", tag)
            return None, self.global_batch
        batch = saved.get("batch", {})
        accum = marker.get("grad_accum", batch.get("grad_accum", 1))
        global_batch = marker.get("global_batch") or batch.get("micro_batch", 0) * accum * marker["world_size"]
        return saved, int(global_batch)

    # -- writing -----------------------------------------------------------------------------------------------
    def start(self, ds_cfg: dict[str, Any]) -> None:
        """Rank 0 prepares the run dir and writes config.yaml and ds_config.json; everyone waits."""
        if self.dist.is_main:
            prepare_run_dir(self.run_dir, self.cfg, resuming=self.resume is not None)
            dump_yaml(self.cfg, self.run_dir / "config.yaml")
            write_json(self.run_dir / "ds_config.json", ds_cfg)
        barrier()

    def save(self, engine, train_state: dict[str, Any], streams, flops: float, init_from_flops: float | None) -> Path:
        cfg = self.cfg
        client = {"config_hash": config_hash(cfg), "stage": cfg.stage, "model": cfg.model.name,
                  "train_state": train_state, "samples_seen": train_state["samples_seen"]}
        marker = {**client, "world_size": self.dist.world_size, "grad_accum": self.grad_accum,
                  "global_batch": self.global_batch, "flops": flops, "init_from": cfg.init_from,
                  "init_from_flops": init_from_flops, "total_flops": _total(flops, cfg.init_from, init_from_flops),
                  "config": to_dict(cfg)}
        return ckpt.save(engine, self.run_dir, train_state["step"], client, streams.state_dict(), self.dist.rank,
                         marker, cfg.keep_checkpoints)

    # -- resume ------------------------------------------------------------------------------------------------
    def restore(self, engine, groups: list[dict], scheduler, peak_lr: float, streams) -> dict[str, Any]:
        """Load the planned checkpoint into `engine` and `streams`; returns the saved train state."""
        r = self.resume
        assert r is not None
        load_from = ckpt.to_universal(r.tag, self.dist.rank) if r.resized else r.tag
        _, client = engine.load_checkpoint(str(load_from.parent), tag=load_from.name)
        if r.resized:
            repair_universal_load(engine.optimizer, groups, scheduler, peak_lr)
        self.restore_streams(streams)
        # metrics.jsonl past this step (logged after the checkpoint, replayed now) is cut by MetricsLogger, which
        # also purges TensorBoard from the same step.
        return client["train_state"]

    def restore_streams(self, streams) -> None:
        """Data-stream positions, and the RNG when the layout is unchanged, from only the rank files that hold
        this rank's streams (`streams.ids` out of `streams.streams`): O(1) files per rank at any world size."""
        r = self.resume
        assert r is not None
        positions, rank_states = ckpt.load_stream_states(r.tag, r.marker, streams.ids, streams.streams)
        streams.load_state_dict(positions)
        if not r.resized:  # same layout: this rank's file is the one that held its streams
            state = rank_states.get(self.dist.rank) or ckpt.load_rank_state(r.tag, self.dist.rank)
            ckpt.set_rng_state(state["rng"])

    def init_from_flops(self) -> float | None:
        """FLOPs that produced init_from (config init_from_flops, else the source's record); on resume the value
        the checkpoint recorded. Rank 0 reads; every rank gets the number."""
        cfg = self.cfg
        if not cfg.init_from:
            return None
        if cfg.init_from_flops > 0:
            return cfg.init_from_flops
        if self.resume is not None and self.resume.marker.get("init_from_flops") is not None:
            return float(self.resume.marker["init_from_flops"])
        from scaling.engine.load_weights import stage1_flops

        return broadcast_object(stage1_flops(cfg.init_from) if self.dist.is_main else None, self.dist.rank)


def _total(flops: float, init_from: str, init_from_flops: float | None) -> float | None:
    if not init_from:
        return flops
    return None if init_from_flops is None else flops + init_from_flops


def summary_flops(flops: float, init_from: str, init_from_flops: float | None) -> dict[str, Any]:
    """summary.json's FLOPs keys (CONTRACTS.md)."""
    return {"flops": flops, "init_from": init_from, "init_from_flops": init_from_flops,
            "total_flops": _total(flops, init_from, init_from_flops)}


def check_on_rank0(fn, rank: int) -> None:
    """Run a check on rank 0 only (it reads files the others need not) and raise its ConfigError on every rank,
    so that no rank goes on to a collective the failed one never reaches."""
    error = None
    if rank == 0:
        try:
            fn()
        except (ConfigError, ValueError) as e:
            error = str(e)
    error = broadcast_object(error, rank)
    if error:
        raise ConfigError(error)


def repair_universal_load(optimizer, groups: list[dict], scheduler, peak: float) -> None:
    """Undo two faults of DeepSpeed 0.19's universal-checkpoint load (zero/stage3.py,
    load_hp_checkpoint_state_from_checkpoint_dir_stage3):
    - it copies param group 0's hyperparameters into every group, which erases the decay/no-decay split and
      layer-wise lr scales: put ours back (the scheduler's own state was loaded intact);
    - it gives every sub-group's Adam state the *same* `step` tensor, which torch's AdamW increments in
      place, so with G groups the step advanced G times per optimizer step and the bias corrections drifted
      (losses 0.5% off the uninterrupted run after a few steps): give each state its own copy."""
    inner = getattr(optimizer, "optimizer", optimizer)
    for state in inner.state.values():
        if isinstance(state.get("step"), torch.Tensor):
            state["step"] = state["step"].clone()
    if len(inner.param_groups) != len(groups):
        raise RuntimeError(f"optimizer has {len(inner.param_groups)} param groups after the universal load, "
                           f"expected {len(groups)}")
    for ours, theirs, last_lr in zip(groups, inner.param_groups, scheduler.get_last_lr()):
        theirs["weight_decay"] = ours["weight_decay"]
        theirs["lr_scale"] = ours["lr_scale"]
        theirs["initial_lr"] = peak * ours["lr_scale"]
        theirs["lr"] = last_lr
