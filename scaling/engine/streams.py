"""Data streams per rank: one per gradient-accumulation slot, so the sample order depends only on the
global batch layout, not on how it is split into ranks and accumulation steps.

The global batch is `streams = world_size x grad_accum` micro-batches. Stream v = rank x grad_accum + m
feeds accumulation slot m of `rank`; it is the data stream of "virtual rank" v out of `streams`. So a run on
2 GPUs with grad_accum 1 and a run on 1 GPU with grad_accum 2 see identical micro-batches (and MAE masks,
which derive from (seed, stream, batch index)), and a job resized from 16 GPUs x 1 to 8 GPUs x 2 continues
every stream exactly: the saved positions are per stream, not per rank.
One loader serves all of a rank's streams (scaling.data.loader: batch i is stream i % grad_accum's): the
source is opened once and the rank runs `data.workers` worker processes whatever grad_accum is.
"""

from __future__ import annotations

from typing import Any

from scaling.data import DataConfig, build_train_loader


class MicroBatchStreams:
    def __init__(
        self,
        cfg: DataConfig,
        *,
        stage: str,
        image_size: int,
        micro_batch: int,
        rank: int,
        world_size: int,
        grad_accum: int,
        seed: int,
    ) -> None:
        self.streams = world_size * grad_accum
        self.ids = [rank * grad_accum + m for m in range(grad_accum)]
        self.loader = build_train_loader(
            cfg,
            stage=stage,
            image_size=image_size,
            micro_batch=micro_batch,
            rank=self.ids[0],
            world_size=self.streams,
            seed=seed,
            streams=grad_accum,
        )
        self.batches = [0] * grad_accum  # batches drawn per stream (MAE mask seeds derive from it)
        self.num_classes = self.loader.num_classes
        self._next_slot = 0

    def next(self, slot: int) -> tuple[dict[str, Any], int, int]:
        """(batch, stream id, index of this batch within its stream) for accumulation slot `slot`; the
        slots are drawn in order 0, 1, ..., grad_accum - 1, 0, ... (the loader serves them round-robin)."""
        if slot != self._next_slot:
            raise RuntimeError(f"data streams: slot {slot} asked for, slot {self._next_slot} is next.")
        batch = next(self.loader)
        index = self.batches[slot]
        self.batches[slot] += 1
        self._next_slot = (slot + 1) % len(self.ids)
        return batch, self.ids[slot], index

    def state_dict(self) -> dict[int, dict[str, Any]]:
        states = self.loader.stream_states()
        return {v: {"loader": st, "batches": n} for v, st, n in zip(self.ids, states, self.batches)}

    def load_state_dict(self, states: dict[int, dict[str, Any]]) -> None:
        missing = [v for v in self.ids if v not in states]
        if missing:
            raise KeyError(
                f"no saved position for data streams {missing}: the checkpoint was written with a "
                f"different global batch layout (streams = world_size x grad_accum)."
            )
        self.loader.load_stream_states([states[v]["loader"] for v in self.ids])
        self.batches = [states[v]["batches"] for v in self.ids]
        self._next_slot = 0

    def stats(self) -> dict[str, int]:
        """This rank's skipped-sample counts per kind (sum them over ranks)."""
        return self.loader.stats(dataset=False)

    def dataset_stats(self) -> dict[str, int]:
        """Counts that describe the dataset, the same on every rank (empty shards in its manifest)."""
        return dict(self.loader.source.start_skips)

    def close(self) -> None:
        self.loader.close()
