"""Scale simulation (no GPUs, no process group): the files one rank opens at resume and at init_from, for world
sizes 2, 64 and 1,024 with fake rank files. What a rank reads must not grow with the job.

Every open is seen: Python's open (which torch.load uses) and safetensors' safe_open (which opens in Rust).
The checkpoint manager runs as it does on that rank; only the collective is replaced, by rank 0's answer.
"""

from __future__ import annotations

import builtins
import io
import json
from pathlib import Path

import pytest
import torch

from scaling.engine import checkpoint as ckpt
from scaling.engine import distributed, load_weights
from scaling.engine.checkpointing import CheckpointManager
from scaling.engine.config import TrainConfig
from scaling.engine.distributed import DistInfo

WORLD_SIZES = (2, 64, 1024)


class Opens:
    """Paths opened under `root` while active."""

    def __init__(self, monkeypatch, root: Path) -> None:
        self.root, self.paths = str(root), []
        real_open = builtins.open
        import safetensors

        real_safe_open = safetensors.safe_open

        def recording_open(file, *a, **k):
            self._add(file)
            return real_open(file, *a, **k)

        def recording_safe_open(file, *a, **k):
            self._add(file)
            return real_safe_open(file, *a, **k)

        monkeypatch.setattr(builtins, "open", recording_open)
        monkeypatch.setattr(io, "open", recording_open)
        monkeypatch.setattr(safetensors, "safe_open", recording_safe_open)

    def _add(self, file) -> None:
        if isinstance(file, (str, Path)) and str(file).startswith(self.root):
            self.paths.append(Path(file))

    def take(self) -> list[Path]:
        out, self.paths = self.paths, []
        return out


class Streams:
    """What the manager needs of MicroBatchStreams: the ids this rank feeds, out of how many."""

    def __init__(self, rank: int, world: int, accum: int) -> None:
        self.ids = [rank * accum + m for m in range(accum)]
        self.streams = world * accum
        self.loaded: dict = {}

    def load_state_dict(self, states: dict) -> None:
        assert sorted(states) == self.ids
        self.loaded = states


def _fake_checkpoint(run: Path, world: int, accum: int, cfg: TrainConfig) -> Path:
    from scaling.config import to_dict

    tag = run / "checkpoints" / ckpt.tag_for(3)
    tag.mkdir(parents=True)
    rng = ckpt.rng_state()
    for r in range(world):
        streams = {v: {"loader": {}, "batches": 3} for v in range(r * accum, (r + 1) * accum)}
        torch.save({"data": streams, "rng": rng}, ckpt.rank_file(tag, r))
        # DeepSpeed's own per-rank files: present, as in a real checkpoint, and never ours to read
        (tag / f"zero_pp_rank_{r}_mp_rank_00_optim_states.pt").write_bytes(b"")
    marker = {"step": 3, "world_size": world, "grad_accum": accum, "global_batch": world * accum * 8,
              "config": to_dict(cfg)}
    (tag / ckpt.MARKER).write_text(json.dumps(marker))
    return tag


def _cfg(run: Path, accum: int, **kw) -> TrainConfig:
    return TrainConfig(run_dir=str(run), resume="auto", batch={"micro_batch": 8, "grad_accum": accum}, **kw)


@pytest.mark.parametrize("world", WORLD_SIZES)
def test_resume_opens_a_constant_number_of_files_per_rank(tmp_path, monkeypatch, world):
    run = tmp_path / "run"
    tag = _fake_checkpoint(run, world, 1, _cfg(run, 1))
    opens = Opens(monkeypatch, tmp_path)
    counts = {}
    # same world size; and a job resized to half the ranks (each then feeds 2 streams)
    for new_world, accum in ((world, 1), (world // 2, 2)):
        for rank in sorted({0, new_world // 2, new_world - 1}):
            cfg = _cfg(run, accum)
            manager = CheckpointManager(cfg, DistInfo(rank, new_world, 0, torch.device("cpu")),
                                        new_world * accum * 8, accum)
            resume = manager.plan()
            assert resume.tag == tag and resume.resized == (new_world != world)
            streams = Streams(rank, new_world, accum)
            manager.restore_streams(streams)
            assert sorted(streams.loaded) == streams.ids
            paths = opens.take()
            assert all(p.name == ckpt.MARKER or p.name.startswith("rank_") for p in paths), paths
            counts[(new_world == world, rank)] = len(paths)
    # the marker + this rank's file; resized: the marker + the 2 files that held its 2 streams
    assert {n for (same, _), n in counts.items() if same} == {2}
    assert {n for (same, _), n in counts.items() if not same} == {3}


@pytest.fixture(scope="module")
def stage1_file(tmp_path_factory) -> Path:
    from scaling.models import create_model
    from scaling.models.weights import save_safetensors

    path = tmp_path_factory.mktemp("stage1") / "mae.safetensors"
    save_safetensors(create_model("vit_micro_patch4", num_classes=0).state_dict(), path,
                     metadata={"total_flops": "1e15"})
    return path


@pytest.mark.parametrize("world", WORLD_SIZES)
def test_init_from_is_read_by_rank_0_only(tmp_path, monkeypatch, stage1_file, world):
    """Rank 0 opens the stage-1 file once (memory-mapped); every other rank opens nothing and still reaches the
    same fit verdict from the key -> shape map rank 0 broadcasts."""
    from scaling.models import create_model

    sent: list = []  # what rank 0 broadcast, in order: the other ranks receive it in the same order
    received: list = []

    def broadcast_object(obj, rank):
        if rank == 0:
            sent.append(obj)
            return obj
        received.append(sent[len(received)])
        return received[-1]

    monkeypatch.setattr(distributed, "broadcast_object", broadcast_object)
    monkeypatch.setattr(load_weights, "broadcast_object", broadcast_object)
    opens = Opens(monkeypatch, stage1_file.parent)
    counts = {}
    for rank in sorted({0, 1, world // 2, world - 1}):
        received.clear()
        torch.manual_seed(rank + 1)
        model = create_model("vit_micro_patch4", num_classes=7)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        load_weights.load_stage1_encoder(model, str(stage1_file), rank)
        changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
        assert bool(changed) == (rank == 0)  # others receive through the gathered-parameter load
        counts[rank] = len(opens.take())
    assert counts.pop(0) == 1 and set(counts.values()) == {0}
    assert load_weights.stage1_flops(str(stage1_file)) == 1e15
