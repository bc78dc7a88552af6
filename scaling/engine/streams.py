"""Data streams per rank: one per gradient-accumulation slot, so the sample order depends only on the
global batch layout, not on how it is split into ranks and accumulation steps.

The global batch is `streams = world_size x grad_accum` micro-batches. Stream v = rank x grad_accum + m
feeds accumulation slot m of `rank`; it is the data loader of "virtual rank" v out of `streams`. So a run on
2 GPUs with grad_accum 1 and a run on 1 GPU with grad_accum 2 see identical micro-batches (and MAE masks,
which derive from (seed, stream, batch index)), and a job resized from 16 GPUs x 1 to 8 GPUs x 2 continues
every stream exactly: the saved positions are per stream, not per rank.
Each stream runs `data.workers` DataLoader workers: a rank runs grad_accum x data.workers of them.
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
        self.loaders = [
            build_train_loader(
                cfg,
                stage=stage,
                image_size=image_size,
                micro_batch=micro_batch,
                rank=v,
                world_size=self.streams,
                seed=seed,
            )
            for v in self.ids
        ]
        self.batches = [0] * grad_accum  # batches drawn per stream (MAE mask seeds derive from it)
        self.num_classes = self.loaders[0].num_classes

    def next(self, slot: int) -> tuple[dict[str, Any], int, int]:
        """(batch, stream id, index of this batch within its stream) for accumulation slot `slot`."""
        batch = next(self.loaders[slot])
        index = self.batches[slot]
        self.batches[slot] += 1
        return batch, self.ids[slot], index

    def state_dict(self) -> dict[int, dict[str, Any]]:
        return {
            v: {"loader": ld.state_dict(), "batches": n}
            for v, ld, n in zip(self.ids, self.loaders, self.batches)
        }

    def load_state_dict(self, states: dict[int, dict[str, Any]]) -> None:
        missing = [v for v in self.ids if v not in states]
        if missing:
            raise KeyError(
                f"no saved position for data streams {missing}: the checkpoint was written with a "
                f"different global batch layout (streams = world_size x grad_accum)."
            )
        for slot, v in enumerate(self.ids):
            self.loaders[slot].load_state_dict(states[v]["loader"])
            self.batches[slot] = states[v]["batches"]

    def stats(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for ld in self.loaders:
            for k, n in ld.stats().items():
                total[k] = total.get(k, 0) + n
        return total

    def close(self) -> None:
        for ld in self.loaders:
            ld.close()
