"""A dead shard in epoch mode is counted once for the whole run, summed over ranks and lanes (lane.py
_first_lost): it was counted once per piece a lane read of it, so once per epoch (and per rank sharing it)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from data_helpers import manifest_for, uneven_shards

from scaling.data import DataConfig, build_train_loader


def _with_dead_shard(folder: Path, samples: int) -> None:
    uneven_shards(folder, [6, 10, 8, 12, 9])
    manifest = json.loads(manifest_for(folder).read_text())
    (folder / "dead.tar").write_bytes(os.urandom(20_000))  # not a tar: unreadable after the retries
    manifest["shards"].append({"name": "dead.tar", "samples": samples})
    (folder / "shards.json").write_text(json.dumps(manifest))


def test_one_dead_shard_counts_one_over_epochs_ranks_and_workers(tmp_path: Path) -> None:
    _with_dead_shard(tmp_path / "shards", samples=24)  # 69 samples: 2 ranks x 4 x 8 batches per epoch
    cfg = DataConfig(train=str(tmp_path / "shards"), mode="epoch", workers=2, shuffle_buffer=5, retry_delay_s=0.0,
                     shard_retries=0)
    loaders = [build_train_loader(cfg, stage="mae", image_size=16, micro_batch=4, rank=r, world_size=2, seed=3)
               for r in range(2)]
    try:
        assert [ld.batches_per_epoch for ld in loaders] == [8, 8]
        for epoch in range(3):
            for ld in loaders:
                for _ in range(ld.batches_per_epoch):
                    next(ld)
            stats = [ld.stats(dataset=False) for ld in loaders]
            assert sum(s["unreadable_shard"] for s in stats) == 1, (epoch, stats)
        assert sum(s["samples_lost"] for s in stats) >= 3 * 24 - 3 * 5  # lost every epoch (less the dropped tail)
    finally:
        for ld in loaders:
            ld.close()
