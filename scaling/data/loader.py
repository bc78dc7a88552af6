"""`build_train_loader`: the one input pipeline every stage uses, with exact resume and equal batch counts.

Each rank runs `lanes = max(workers, 1)` lanes (lane.py). DataLoader hands out worker batches round-robin,
so rank batch i comes from lane i % lanes; on (re)start, DataLoader worker d runs lane (i + d) % lanes. Every
worker batch carries its lane's position after it, and the loader keeps the position of the last batch it
*handed to the trainer* per lane (batches prefetched but not consumed are simply produced again after a
restart). The state is those positions plus the batch counter: a few integers per lane.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from scaling.config import ConfigError
from scaling.data.batch import CpuBatch, GpuBatch, SyntheticBatch
from scaling.data.config import DataConfig
from scaling.data.lane import Lane, Plan, pad_labels
from scaling.data.skips import KINDS, SkipCounter
from scaling.data.source import Source, open_source
from scaling.data.synthetic import SyntheticImages
from scaling.data.transforms import soft_targets, stage_crop

log = logging.getLogger("scaling.data")
STATE_FORMAT = "scaling.data.loader/1"
# Fingerprint entries that change which sample lands where: a mismatch makes an exact resume impossible.
EXACT_KEYS = (
    "mode",
    "seed",
    "world_size",
    "lanes",
    "micro_batch",
    "shuffle_buffer",
    "num_shards",
    "num_samples",
)


class _Lanes(IterableDataset):
    """Runs one lane per DataLoader worker (or lane 0 in-process) from the given start positions."""

    def __init__(
        self,
        plan: Plan,
        source: Source,
        producer: Any,
        starts: list[dict[str, Any]],
        first: int,
        need_labels: bool,
        log_every_s: float,
    ) -> None:
        self.plan, self.source, self.producer, self.starts = plan, source, producer, starts
        self.first, self.need_labels, self.log_every_s = first, need_labels, log_every_s

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        lane_id = (self.first + (info.id if info is not None else 0)) % self.plan.lanes
        start = self.starts[lane_id]
        skips = SkipCounter(self.log_every_s, start["skipped"])
        lane = Lane(self.plan, self.source.read, lane_id, start["segment"], start["offset"], skips)
        for items in lane.batches(self.producer.put, augment=not isinstance(self.producer, SyntheticBatch)):
            out = self.producer.finish()
            out["key"] = [str(it.key) for it in items]
            if self.need_labels:
                out["labels"] = pad_labels(items)
            out["lane"] = lane_id
            out["position"] = {"segment": lane.segment, "offset": lane.offset, **lane.where()}
            out["skipped"] = skips.snapshot()
            yield out


class TrainLoader:
    """Infinite iterator of batches: {"image": uint8 [B, 3, S, S], "target": float32 [B, C], "key": [B]}."""

    def __init__(
        self,
        cfg: DataConfig,
        source: Source,
        plan: Plan,
        producer: Any,
        *,
        stage: str,
        image_size: int,
        num_classes: int,
    ) -> None:
        self.cfg, self.source, self.plan, self.producer = cfg, source, plan, producer
        self.stage, self.image_size, self.num_classes = stage, image_size, num_classes
        self.need_labels = stage != "mae"
        self._batches = 0
        self._lanes = [self._fresh_lane(0) for _ in range(plan.lanes)]
        self._loader_skips = dict(source.start_skips)
        self._dl: DataLoader | None = None
        self._it: Iterator[dict[str, Any]] | None = None

    @staticmethod
    def _fresh_lane(segment: int) -> dict[str, Any]:
        return {"segment": segment, "offset": 0, "skipped": {}, "shard": -1, "shard_offset": 0}

    # -- iteration --------------------------------------------------------------------------------------
    @property
    def batches_per_epoch(self) -> int | None:
        """Batches each rank yields per epoch (epoch mode), the same on every rank."""
        return self.plan.layout.batches_per_epoch if self.plan.mode == "epoch" else None

    @property
    def epoch(self) -> int | None:
        nb = self.batches_per_epoch
        return None if nb is None else self._batches // nb

    def __iter__(self) -> TrainLoader:
        return self

    def __next__(self) -> dict[str, Any]:
        if self._it is None:
            self._start()
        assert self._it is not None
        raw = next(self._it)
        lane = raw.pop("lane")
        if lane != self._batches % self.plan.lanes:  # the round-robin contract with DataLoader broke
            raise RuntimeError(
                f"data: expected a batch of lane {self._batches % self.plan.lanes}, got {lane}."
            )
        self._lanes[lane] = {**raw.pop("position"), "skipped": raw.pop("skipped")}
        self._batches += 1
        return self._finish(raw)

    def _start(self) -> None:
        dataset = _Lanes(
            self.plan,
            self.source,
            self.producer,
            [dict(s) for s in self._lanes],
            self._batches % self.plan.lanes,
            self.need_labels,
            self.cfg.log_every_s,
        )
        if self.cfg.workers == 0:
            self._it = iter(dataset)
            return
        self._dl = DataLoader(
            dataset,
            batch_size=None,
            num_workers=self.cfg.workers,
            prefetch_factor=self.cfg.prefetch,
            pin_memory=self.cfg.pin_memory,
        )
        self._it = iter(self._dl)

    def _finish(self, raw: dict[str, Any]) -> dict[str, Any]:
        batch: dict[str, Any] = {"key": raw["key"]}
        if "jpeg" in raw:
            from scaling.data.gpu_decode import decode_batch

            images, bad = decode_batch(
                raw["jpeg"],
                raw["box"],
                raw["flip"],
                self.image_size,
                torch.device("cuda", torch.cuda.current_device()),
                raw.get("pre"),
                raw["pre_mask"],
                self.cfg.interpolation,
            )
            self._loader_skips["corrupt_image"] = self._loader_skips.get("corrupt_image", 0) + len(bad)
            batch["image"] = images
        else:
            batch["image"] = raw["image"]
        if self.need_labels:
            batch["target"] = soft_targets(raw["labels"], self.num_classes)
        return batch

    # -- state ------------------------------------------------------------------------------------------
    def fingerprint(self) -> dict[str, Any]:
        p = self.plan
        return {
            "mode": p.mode,
            "seed": p.seed,
            "world_size": p.world_size,
            "lanes": p.lanes,
            "micro_batch": p.micro_batch,
            "shuffle_buffer": p.block,
            "num_shards": p.num_shards,
            "num_samples": None if p.counts is None else int(p.counts.sum()),
            "source": self.source.name,
            "stage": self.stage,
            "image_size": self.image_size,
        }

    def state_dict(self) -> dict[str, Any]:
        """Where every lane of this rank is: {"batches", "epoch", "lanes": [{segment, offset, shard,
        shard_offset, skipped}], ...}. The random state is counter-based: (seed, segment, offset) is it."""
        return {
            "format": STATE_FORMAT,
            "fingerprint": self.fingerprint(),
            "rank": self.plan.rank,
            "batches": self._batches,
            "epoch": self.epoch,
            "lanes": [dict(s, skipped=dict(s["skipped"])) for s in self._lanes],
            "loader_skipped": dict(self._loader_skips),
        }

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Continue exactly after the last batch consumed when `state` was taken.

        strict=False accepts a state from a different world size / worker count / batch size: the stream then
        restarts at the next epoch boundary (epoch mode) or with fresh shard draws (resampled mode).
        """
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ConfigError(
                "data state: not a loader state_dict (format missing); pass what "
                "loader.state_dict() returned."
            )
        saved, mine = state["fingerprint"], self.fingerprint()
        changed = [k for k in EXACT_KEYS if saved.get(k) != mine[k]]
        self.close()
        self._loader_skips = dict(state.get("loader_skipped", {}))
        if not changed:
            if saved.get("source") != mine["source"]:
                log.warning(
                    "data: resuming %s from a state saved for %s (same shard and sample counts)",
                    mine["source"],
                    saved.get("source"),
                )
            self._batches = int(state["batches"])
            self._lanes = [dict(s, skipped=dict(s["skipped"])) for s in state["lanes"]]
            return
        detail = ", ".join(f"{k} {saved.get(k)!r} -> {mine[k]!r}" for k in changed)
        if strict:
            raise ConfigError(
                f"data state does not fit this run ({detail}): an exact resume needs the same values. Use "
                "them, or load with load_state_dict(state, strict=False) to restart at the next epoch."
            )
        skipped = _sum_skips(s["skipped"] for s in state["lanes"])
        if (
            self.plan.mode == "epoch"
            and saved.get("mode") == "epoch"
            and saved.get("num_samples") == mine["num_samples"]
        ):
            next_epoch = int(state["epoch"] or 0) + 1
            self._batches = next_epoch * self.plan.layout.batches_per_epoch
            self._lanes = [self._fresh_lane(next_epoch) for _ in range(self.plan.lanes)]
        else:
            next_segment = 1 + max(int(s["segment"]) for s in state["lanes"])
            self._batches = 0
            self._lanes = [self._fresh_lane(next_segment) for _ in range(self.plan.lanes)]
        self._lanes[0]["skipped"] = skipped
        log.warning(
            "data: state from another layout (%s); restarting the stream at %s",
            detail,
            f"epoch {self.epoch}" if self.epoch is not None else "fresh shard draws",
        )

    def stats(self) -> dict[str, int]:
        """Skipped-sample counts per kind so far on this rank (for metrics.jsonl)."""
        return _sum_skips([self._loader_skips, *(s["skipped"] for s in self._lanes)])

    def close(self) -> None:
        """Stop the worker processes (a later next() starts them again from the current state)."""
        it, self._it, self._dl = self._it, None, None
        shutdown = getattr(it, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter teardown: nothing useful to do
            pass


def _sum_skips(parts: Any) -> dict[str, int]:
    total = {k: 0 for k in KINDS}
    for part in parts:
        for k, v in part.items():
            total[k] = total.get(k, 0) + int(v)
    return total


def build_train_loader(
    cfg: DataConfig, *, stage: str, image_size: int, micro_batch: int, rank: int, world_size: int, seed: int
) -> TrainLoader:
    """The training input stream of one rank. See the package doc for the batch format and the state rules."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(f"rank {rank} of world_size {world_size}: need 0 <= rank < world_size.")
    if micro_batch < 1:
        raise ConfigError(f"micro_batch={micro_batch}: must be >= 1.")
    try:
        spec = stage_crop(stage, image_size, cfg.min_scale)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    if cfg.decode == "gpu" and not torch.cuda.is_available():
        raise ConfigError("data.decode=gpu needs a CUDA device; set data.decode=cpu on this machine.")
    need_labels = stage != "mae"
    source = open_source(cfg, cfg.train, need_labels=need_labels)
    num_classes = cfg.num_classes or source.num_classes
    if need_labels and num_classes < 1:
        raise ConfigError(
            f"stage {stage} needs labels but data.num_classes=0 and {source.name!r} has no label "
            "vocabulary: set data.num_classes, or write shards with labels (`scaling data write`)."
        )
    lanes = max(cfg.workers, 1)
    plan = Plan(
        cfg.mode,
        seed,
        rank,
        world_size,
        lanes,
        micro_batch,
        cfg.shuffle_buffer,
        source.counts,
        source.num_shards,
    )
    if cfg.mode == "epoch":
        if source.counts is None:
            raise ConfigError(
                f"data.mode=epoch needs per-shard sample counts and {source.name!r} has no "
                "manifest: run `scaling data inspect SHARDS --write-manifest`, or use "
                "data.mode=resampled."
            )
        if plan.layout.batches_per_epoch < 1:
            raise ConfigError(
                f"{source.name!r} holds {plan.layout.total} samples, fewer than one global batch "
                f"(world_size {world_size} x micro_batch {micro_batch}): lower the batch or add data."
            )
    if source.synthetic:
        producer: Any = SyntheticBatch(SyntheticImages(num_classes, image_size), micro_batch)
    elif cfg.decode == "gpu":
        producer = GpuBatch(spec, micro_batch, cfg.interpolation)
    else:
        producer = CpuBatch(spec, micro_batch, cfg.interpolation)
    return TrainLoader(
        cfg, source, plan, producer, stage=stage, image_size=image_size, num_classes=num_classes
    )
