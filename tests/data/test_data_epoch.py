"""Epoch mode on real shards: exactly once per epoch, equal batches per rank, resume in a new process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import torch
from data_helpers import manifest_for, uneven_shards

from scaling.data import DataConfig, build_train_loader
from scaling.data.assignment import Layout, lane_batches, simulate_epoch


def _loader(
    folder: Path,
    rank: int,
    world_size: int,
    workers: int,
    micro_batch: int = 4,
    seed: int = 1,
    stage: str = "wsp",
):
    cfg = DataConfig(train=str(folder), mode="epoch", workers=workers, shuffle_buffer=5, retry_delay_s=0.0)
    return build_train_loader(
        cfg, stage=stage, image_size=16, micro_batch=micro_batch, rank=rank, world_size=world_size, seed=seed
    )


def test_exactly_once_two_ranks_three_workers_uneven_shards(tmp_path: Path) -> None:
    sizes = [1, 7, 0, 13, 4, 9, 2, 12]  # 48 samples = 2 ranks x 4 x 6 batches; one empty shard
    keys = uneven_shards(tmp_path / "shards", sizes)
    manifest_for(tmp_path / "shards")
    loaders = [_loader(tmp_path / "shards", rank, 2, workers=3) for rank in range(2)]
    try:
        assert [ld.batches_per_epoch for ld in loaders] == [6, 6]
        for epoch in range(2):
            seen = []
            for ld in loaders:
                batches = [next(ld) for _ in range(ld.batches_per_epoch)]
                assert all(len(b["key"]) == 4 and b["image"].shape == (4, 3, 16, 16) for b in batches)
                seen += [k for b in batches for k in b["key"]]
            assert sorted(seen) == sorted(keys), f"epoch {epoch}"
            assert all(ld.epoch == epoch + 1 for ld in loaders)
        assert loaders[0].stats()["empty_shard"] == 1
    finally:
        for ld in loaders:
            ld.close()


def test_remainder_is_dropped_and_ranks_stay_equal(tmp_path: Path) -> None:
    keys = uneven_shards(tmp_path / "shards", [5, 11, 3, 31])  # 50 = 6 global batches of 8, remainder 2
    manifest_for(tmp_path / "shards")
    loaders = [_loader(tmp_path / "shards", rank, 2, workers=0) for rank in range(2)]
    per_epoch = []
    for _ in range(3):
        seen = [k for ld in loaders for _ in range(6) for k in next(ld)["key"]]
        assert len(seen) == len(set(seen)) == 48 and set(seen) <= set(keys)
        per_epoch.append(set(keys) - set(seen))
    assert all(len(d) == 2 for d in per_epoch)
    assert len(set().union(*per_epoch)) > 2  # the dropped pair changes with the epoch's shard order


def test_lanes_with_no_batch_in_an_epoch(tmp_path: Path) -> None:
    """Fewer batches per epoch than workers: the round-robin rotates across epochs, coverage stays exact."""
    keys = uneven_shards(tmp_path / "shards", [3, 5])  # 8 samples, micro_batch 4 -> 2 batches, 3 lanes
    manifest_for(tmp_path / "shards")
    ld = _loader(tmp_path / "shards", 0, 1, workers=3, stage="mae")
    try:
        for _ in range(3):
            seen = [k for _ in range(2) for k in next(ld)["key"]]
            assert sorted(seen) == sorted(keys)
    finally:
        ld.close()


RESUME_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from scaling.data import DataConfig, build_train_loader
    folder, state_in, out, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    cfg = DataConfig(train=folder, mode="epoch", workers=2, shuffle_buffer=5)
    ld = build_train_loader(cfg, stage="wsp", image_size=16, micro_batch=4, rank=1, world_size=2, seed=5)
    if state_in != "-":
        ld.load_state_dict(torch.load(state_in, weights_only=False))
    batches = [next(ld) for _ in range(n)]
    torch.save({"state": ld.state_dict(), "keys": [b["key"] for b in batches],
                "images": [b["image"] for b in batches], "targets": [b["target"] for b in batches]}, out)
    ld.close()
    """
)


def test_resume_in_a_new_process_continues_the_stream(tmp_path: Path) -> None:
    uneven_shards(tmp_path / "shards", [9, 14, 6, 11, 8])  # 48 samples: 6 batches per rank per epoch
    manifest_for(tmp_path / "shards")
    stop = int(np.random.default_rng().integers(1, 10))  # a random batch, possibly in the second epoch
    total = 12
    cfg = DataConfig(train=str(tmp_path / "shards"), mode="epoch", workers=2, shuffle_buffer=5)
    ref = build_train_loader(cfg, stage="wsp", image_size=16, micro_batch=4, rank=1, world_size=2, seed=5)
    expected = [next(ref) for _ in range(total)]
    ref.close()
    script = tmp_path / "resume.py"
    script.write_text(RESUME_SCRIPT)
    run = lambda *a: subprocess.run([sys.executable, str(script), *map(str, a)], check=True, timeout=120)
    run(tmp_path / "shards", "-", tmp_path / "first.pt", stop)
    first = torch.load(tmp_path / "first.pt", weights_only=False)
    torch.save(first["state"], tmp_path / "state.pt")
    run(tmp_path / "shards", tmp_path / "state.pt", tmp_path / "rest.pt", total - stop)
    rest = torch.load(tmp_path / "rest.pt", weights_only=False)
    keys = first["keys"] + rest["keys"]
    images = first["images"] + rest["images"]
    assert keys == [b["key"] for b in expected], f"stopped after {stop}"
    assert all(torch.equal(a, b["image"]) for a, b in zip(images, expected))
    assert all(torch.equal(a, b["target"]) for a, b in zip(first["targets"] + rest["targets"], expected))
    assert json.dumps(first["state"]["lanes"])  # plain data: the state is small and portable


def test_full_scale_assignment_simulation() -> None:
    """1e9 samples in 100k uneven shards, 1024 ranks x 8 workers: each sample once, every rank equal."""
    rng = np.random.default_rng(0)
    counts = rng.integers(5_000, 15_000, size=100_000)
    counts[-1] += 1_000_000_000 - counts.sum()  # exactly 1e9
    counts[rng.choice(100_000, 10, replace=False)] = 0  # a few empty shards
    counts[-1] += 1_000_000_000 - counts.sum()
    layout = Layout(counts.astype(np.int64), world_size=1024, lanes=8, micro_batch=32, seed=3)
    for epoch in (0, 1):
        report = simulate_epoch(layout, epoch)
        assert report["samples"] == 1_000_000_000
        assert report["each_sample_at_most_once"] and report["covered_equals_kept"]
        assert report["ranks_equal"] and report["lane_batches_sum"]
        assert report["dropped"] < 1024 * 32 and report["partial_shards"] <= 1


def test_lane_batch_counts_follow_the_round_robin() -> None:
    nb, lanes = 7, 3
    for epoch in range(4):
        served = [(epoch * nb + j) % lanes for j in range(nb)]
        assert list(lane_batches(epoch, nb, lanes, np.arange(lanes))) == [
            served.count(w) for w in range(lanes)
        ]
