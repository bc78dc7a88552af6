"""MicroBatchStreams: one loader per rank serves every accumulation slot, with each slot's stream equal to
the stream of a loader serving it alone; what a rank opens, stats and starts does not grow with grad_accum,
world size or shard count."""

from __future__ import annotations

import json
import os
import sys

import psutil
import pytest
from train_helpers import REPO

from scaling.data import DataConfig, build_train_loader
from scaling.engine.streams import MicroBatchStreams

PHOTOS = str(REPO / "scaling" / "assets" / "photos7")
_COUNTS = {"stats": 0, "opens": 0, "active": 0}


def _count_opens(event: str, args: tuple) -> None:  # an audit hook sees every open(), however it is called
    if event == "open" and _COUNTS["active"]:
        _COUNTS["opens"] += 1


sys.addaudithook(_count_opens)


def _streams(cfg: DataConfig, rank: int, world: int, accum: int, micro: int = 4) -> MicroBatchStreams:
    return MicroBatchStreams(cfg, stage="wsp", image_size=16, micro_batch=micro, rank=rank, world_size=world,
                             grad_accum=accum, seed=3)


def _draw(s: MicroBatchStreams, steps: int) -> list[tuple[int, int, list[str]]]:
    out = []
    for _ in range(steps):
        for slot in range(len(s.ids)):
            batch, stream, index = s.next(slot)
            out.append((stream, index, batch["key"]))
    return out


@pytest.mark.parametrize(("mode", "workers"), [("epoch", 0), ("epoch", 2), ("resampled", 2)])
def test_each_slot_sees_the_stream_of_a_loader_of_its_own(mode: str, workers: int) -> None:
    cfg = DataConfig(train=PHOTOS, mode=mode, workers=workers, shuffle_buffer=8)
    world, accum, rank, steps = 2, 3, 1, 20  # 20 steps x 4 samples x 6 streams: past the 448-sample epoch
    alone = []
    for v in range(rank * accum, (rank + 1) * accum):
        ld = build_train_loader(cfg, stage="wsp", image_size=16, micro_batch=4, rank=v, world_size=world * accum,
                                seed=3)
        alone.append([next(ld)["key"] for _ in range(steps)])
        ld.close()
    s = _streams(cfg, rank, world, accum)
    got = _draw(s, steps)
    s.close()
    assert [(v, i) for v, i, _ in got] == [(v, i) for i in range(steps) for v in range(3, 6)]
    assert [k for _, _, k in got] == [alone[v - 3][i] for i in range(steps) for v in range(3, 6)]


def test_resume_of_all_streams_continues_exactly() -> None:
    cfg = DataConfig(train=PHOTOS, mode="epoch", workers=2, shuffle_buffer=8)
    full = _streams(cfg, 0, 1, 3)
    want = _draw(full, 9)
    full.close()
    first = _streams(cfg, 0, 1, 3)
    _draw(first, 4)
    state = first.state_dict()
    first.close()
    second = _streams(cfg, 0, 1, 3)
    second.load_state_dict(json.loads(json.dumps(state), object_hook=_int_keys))  # as a checkpoint stores it
    assert _draw(second, 5) == want[12:]
    second.close()


def _int_keys(d: dict) -> dict:
    return {int(k) if k.isdigit() else k: v for k, v in d.items()}


def test_worker_processes_and_shard_stats_do_not_grow_with_grad_accum(monkeypatch: pytest.MonkeyPatch) -> None:
    counted = {"stats": 0}
    real_isfile = os.path.isfile

    def isfile(path) -> bool:
        if str(path).endswith(".tar"):
            counted["stats"] += 1
        return real_isfile(path)

    monkeypatch.setattr(os.path, "isfile", isfile)
    cfg = DataConfig(train=PHOTOS, mode="epoch", workers=2, shuffle_buffer=8)
    seen = {}
    for accum in (1, 4):
        counted["stats"] = 0
        s = _streams(cfg, 0, 1, accum)
        _draw(s, 1)
        seen[accum] = (len(psutil.Process().children()), counted["stats"])
        s.close()
    assert seen[1] == seen[4] and seen[1][0] == 2, seen  # 2 workers (8 with a loader per slot)


@pytest.mark.parametrize("accum", [1, 8])
def test_start_cost_per_rank_is_constant_at_scale(tmp_path, monkeypatch: pytest.MonkeyPatch, accum: int) -> None:
    """Scale simulation: 100k shards listed in a manifest (fake: none exists on disk; a stat says they
    do), world sizes 2, 64 and 1,024: the shards a rank stats and the files it opens at start."""
    shards = 100_000
    names = [f"{i:06d}.tar" for i in range(shards)]
    (tmp_path / "shards.json").write_text(json.dumps({
        "format": "scaling.shards/1", "label_field": "cls", "classes": ["a", "b"],
        "shards": [{"name": n, "samples": 10_000} for n in names]}))
    real_isfile = os.path.isfile

    def isfile(path) -> bool:
        if str(path).endswith(".tar"):
            _COUNTS["stats"] += 1
            return True
        return real_isfile(path)

    monkeypatch.setattr(os.path, "isfile", isfile)
    cfg = DataConfig(train=str(tmp_path), mode="epoch", workers=2)
    per_world = {}
    for world in (2, 64, 1024):
        _COUNTS.update(stats=0, opens=0, active=1)
        s = _streams(cfg, world - 1, world, accum, micro=64)
        _COUNTS["active"] = 0
        per_world[world] = {k: _COUNTS[k] for k in ("stats", "opens")}
        s.close()
    print(per_world)
    assert per_world[2] == per_world[64] == per_world[1024], per_world
    assert per_world[2]["stats"] <= 16 and per_world[2]["opens"] <= 2, per_world  # was 100,000 stats
