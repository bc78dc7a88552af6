"""`build_train_loader`: the one input pipeline every stage uses, with exact resume and equal batch counts.

A loader serves `streams` consecutive ranks of the (virtual) world, round-robin: batch i is stream i % G's
(G = streams; the trainer's gradient-accumulation slots, engine/streams.py). Each stream runs `lanes =
max(workers, 1)` lanes (lane.py), and its batch j comes from its lane j % lanes, so "virtual lane"
k = i % (G x lanes) is (stream k % G, lane k // G). DataLoader hands out worker batches round-robin, so
worker d serves the G virtual lanes k = first + d (mod lanes): one set of `workers` processes and one opened
source per rank, whatever G is. A stream's batches are the same as those of a loader serving it alone.
Every worker batch carries its lane's position after it, and the loader keeps the position of the last
batch it *handed to the trainer* per lane (batches prefetched but not consumed are simply produced again
after a restart). A stream's state is those positions plus its batch counter: a few integers per lane.
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
from scaling.data.vocab import record_vocab

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
    """Runs the virtual lanes of one DataLoader worker (or all of them in-process) from the given starts.

    Request i (counted from `first`, the loader's batch counter at the start) goes to worker
    (i - first) % lanes and is the next batch of virtual lane i % (G x lanes)."""

    def __init__(
        self,
        plans: list[Plan],
        source: Source,
        producer: Any,
        starts: list[list[dict[str, Any]]],
        first: int,
        need_labels: bool,
        log_every_s: float,
    ) -> None:
        self.plans, self.source, self.producer, self.starts = plans, source, producer, starts
        self.first, self.need_labels, self.log_every_s = first, need_labels, log_every_s

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        g_count, lanes = len(self.plans), self.plans[0].lanes
        running: dict[int, tuple[Lane, SkipCounter, Iterator[list[Any]]]] = {}
        i = self.first + (info.id if info is not None else 0)
        while True:
            k = i % (g_count * lanes)
            if k not in running:
                g, lane_id = k % g_count, k // g_count
                start = self.starts[g][lane_id]
                skips = SkipCounter(self.log_every_s, start["skipped"])
                lane = Lane(self.plans[g], self.source.read, lane_id, start["segment"], start["offset"], skips)
                augment = not isinstance(self.producer, SyntheticBatch)
                running[k] = (lane, skips, lane.batches(self.producer.put, augment=augment))
            lane, skips, batches = running[k]
            items = next(batches)
            out = self.producer.finish()
            out["key"] = [str(it.key) for it in items]
            if self.need_labels:
                out["labels"] = pad_labels(items)
            out["lane"] = k
            out["position"] = {"segment": lane.segment, "offset": lane.offset, **lane.where()}
            out["skipped"] = skips.snapshot()
            yield out
            i += lanes


class TrainLoader:
    """Infinite iterator of batches: {"image": uint8 [B, 3, S, S], "target": float32 [B, C], "key": [B]}.

    With several streams (plans), batch i belongs to stream i % len(plans)."""

    def __init__(
        self,
        cfg: DataConfig,
        source: Source,
        plans: list[Plan],
        producer: Any,
        *,
        stage: str,
        image_size: int,
        num_classes: int,
    ) -> None:
        self.cfg, self.source, self.plans, self.producer = cfg, source, plans, producer
        self.plan = plans[0]
        self.stage, self.image_size, self.num_classes = stage, image_size, num_classes
        self.need_labels = stage != "mae"
        self._batches = 0  # batches handed out, all streams together
        self._lanes = [[self._fresh_lane(0) for _ in range(self.plan.lanes)] for _ in plans]
        # Problems found by the loader itself (GPU decode) or at open (empty shards: a dataset count, kept
        # once per loader, not per stream nor per checkpoint).
        self._loader_skips: dict[str, int] = {}
        self._dl: DataLoader | None = None
        self._it: Iterator[dict[str, Any]] | None = None

    @staticmethod
    def _fresh_lane(segment: int) -> dict[str, Any]:
        return {"segment": segment, "offset": 0, "skipped": {}, "shard": -1, "shard_offset": 0}

    @property
    def streams(self) -> int:
        return len(self.plans)

    def _stream_batches(self, g: int) -> int:
        """Batches stream g has handed out."""
        return self._batches // self.streams + (g < self._batches % self.streams)

    # -- iteration --------------------------------------------------------------------------------------
    @property
    def batches_per_epoch(self) -> int | None:
        """Batches each stream yields per epoch (epoch mode), the same on every rank."""
        return self.plan.layout.batches_per_epoch if self.plan.mode == "epoch" else None

    @property
    def epoch(self) -> int | None:
        """The epoch of stream 0 (all streams advance together)."""
        nb = self.batches_per_epoch
        return None if nb is None else self._stream_batches(0) // nb

    def __iter__(self) -> TrainLoader:
        return self

    def __next__(self) -> dict[str, Any]:
        if self._it is None:
            self._start()
        assert self._it is not None
        raw = next(self._it)
        k = raw.pop("lane")
        expected = self._batches % (self.streams * self.plan.lanes)
        if k != expected:  # the round-robin contract with DataLoader broke
            raise RuntimeError(f"data: expected a batch of virtual lane {expected}, got {k}.")
        self._lanes[k % self.streams][k // self.streams] = {**raw.pop("position"), "skipped": raw.pop("skipped")}
        self._batches += 1
        return self._finish(raw)

    def _start(self) -> None:
        dataset = _Lanes(
            self.plans,
            self.source,
            self.producer,
            [[dict(s) for s in lanes] for lanes in self._lanes],
            self._batches,
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
    def fingerprint(self, stream: int = 0) -> dict[str, Any]:
        p = self.plans[stream]
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

    def state_dict(self, stream: int = 0) -> dict[str, Any]:
        """Where every lane of stream `stream` is: {"batches", "epoch", "lanes": [{segment, offset, shard,
        shard_offset, skipped}], ...}. The random state is counter-based: (seed, segment, offset) is it.
        The loader's own counts travel with stream 0 only (so a rank's streams do not count them twice)."""
        nb, batches = self.batches_per_epoch, self._stream_batches(stream)
        return {
            "format": STATE_FORMAT,
            "fingerprint": self.fingerprint(stream),
            "rank": self.plans[stream].rank,
            "batches": batches,
            "epoch": None if nb is None else batches // nb,
            "lanes": [dict(s, skipped=dict(s["skipped"])) for s in self._lanes[stream]],
            "loader_skipped": dict(self._loader_skips) if stream == 0 else {},
        }

    def stream_states(self) -> list[dict[str, Any]]:
        return [self.state_dict(g) for g in range(self.streams)]

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Continue exactly after the last batch consumed when `state` was taken (a one-stream loader).

        strict=False accepts a state from a different world size / worker count / batch size: the stream then
        restarts at the next epoch boundary (epoch mode) or with fresh shard draws (resampled mode).
        """
        self.load_stream_states([state], strict)

    def load_stream_states(self, states: list[dict[str, Any]], strict: bool = True) -> None:
        """load_state_dict for every stream at once (states[g] for stream g); the streams must be at
        consecutive batch counts (as `stream_states` leaves them)."""
        if len(states) != self.streams:
            raise ConfigError(f"data state: {len(states)} stream states for a loader of {self.streams} streams.")
        self.close()
        counts = [self._load_one(g, state, strict) for g, state in enumerate(states)]
        total = sum(counts)
        if counts != [total // self.streams + (g < total % self.streams) for g in range(self.streams)]:
            raise ConfigError(
                f"data state: the streams were saved at batch counts {counts}; one loader serves them "
                "round-robin and needs equal counts (the state of one optimizer step boundary)."
            )
        self._batches = total
        self._loader_skips = _sum_skips(s.get("loader_skipped", {}) for s in states)
        self._loader_skips.pop("empty_shard", None)  # a dataset count, taken from the source at open

    def _load_one(self, g: int, state: dict[str, Any], strict: bool) -> int:
        """Restore stream g's lanes; returns its batch count."""
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ConfigError(
                "data state: not a loader state_dict (format missing); pass what "
                "loader.state_dict() returned."
            )
        saved, mine = state["fingerprint"], self.fingerprint(g)
        changed = [k for k in EXACT_KEYS if saved.get(k) != mine[k]]
        if not changed:
            if saved.get("source") != mine["source"]:
                log.warning(
                    "data: resuming %s from a state saved for %s (same shard and sample counts)",
                    mine["source"],
                    saved.get("source"),
                )
            self._lanes[g] = [dict(s, skipped=dict(s["skipped"])) for s in state["lanes"]]
            return int(state["batches"])
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
            batches = next_epoch * self.plan.layout.batches_per_epoch
            self._lanes[g] = [self._fresh_lane(next_epoch) for _ in range(self.plan.lanes)]
            where = f"epoch {next_epoch}"
        else:
            next_segment = 1 + max(int(s["segment"]) for s in state["lanes"])
            batches = 0
            self._lanes[g] = [self._fresh_lane(next_segment) for _ in range(self.plan.lanes)]
            where = "fresh shard draws"
        self._lanes[g][0]["skipped"] = skipped
        log.warning("data: state from another layout (%s); restarting the stream at %s", detail, where)
        return batches

    def stats(self, dataset: bool = True) -> dict[str, int]:
        """Skipped-sample counts per kind so far on this rank (for metrics.jsonl). dataset=True adds the
        dataset's own counts (empty shards in its manifest), which every rank sees: leave them out when
        summing over ranks."""
        lanes = (s["skipped"] for stream in self._lanes for s in stream)
        return _sum_skips([self._loader_skips, self.source.start_skips if dataset else {}, *lanes])

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
    cfg: DataConfig,
    *,
    stage: str,
    image_size: int,
    micro_batch: int,
    rank: int,
    world_size: int,
    seed: int,
    streams: int = 1,
) -> TrainLoader:
    """The training input stream of one rank. See the package doc for the batch format and the state rules.

    streams > 1: one loader (one source, one set of workers) serves ranks rank .. rank + streams - 1 of
    world_size, round-robin (batch i is stream i % streams's)."""
    if streams < 1 or world_size < 1 or not 0 <= rank <= world_size - streams:
        raise ConfigError(
            f"ranks {rank}..{rank + streams - 1} of world_size {world_size}: need 0 <= rank and "
            "rank + streams <= world_size."
        )
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
            "vocabulary: label its captions (`scaling data vocab SHARDS --out VOCAB.json`, then "
            "data.caption_vocab=VOCAB.json), set data.num_classes, or write shards with labels (`scaling data "
            "write`)."
        )
    if source.caption_vocab is not None:
        record_vocab(cfg, source.caption_vocab, num_classes)
    lanes = max(cfg.workers, 1)
    plans = [
        Plan(
            cfg.mode,
            seed,
            r,
            world_size,
            lanes,
            micro_batch,
            cfg.shuffle_buffer,
            source.counts,
            source.num_shards,
        )
        for r in range(rank, rank + streams)
    ]
    plan = plans[0]
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
        cfg, source, plans, producer, stage=stage, image_size=image_size, num_classes=num_classes
    )
