"""Checkpoint files without a training run: which folders count, how old ones are deleted, which rank files a
resuming rank needs. The engine stand-in only writes a file where DeepSpeed's save_checkpoint would."""

from __future__ import annotations

import json
import shutil
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from scaling.config import ConfigError
from scaling.engine import checkpoint as ckpt
from scaling.engine.run_dir import prepare_run_dir


class _Writes:
    """Where DeepSpeed's engine.save_checkpoint writes, a file (the code under test is what happens around it)."""

    def save_checkpoint(self, root, tag, client_state, save_latest):  # noqa: ARG002
        (Path(root) / tag).mkdir(parents=True, exist_ok=True)
        (Path(root) / tag / "zero_pp_rank_0_mp_rank_00_optim_states.pt").write_bytes(b"x" * 1000)


def _tag(run: Path, step: int, name: str | None = None, world_size: int = 1) -> Path:
    d = run / "checkpoints" / (name or ckpt.tag_for(step))
    d.mkdir(parents=True)
    (d / ckpt.MARKER).write_text(json.dumps({"step": step, "world_size": world_size}))
    return d


def test_universal_folders_are_never_checkpoints(tmp_path):
    """Today's conversion copies COMPLETE.json into step_N_universal/: it must still not count (keep-pruning,
    export, init_from and resume=auto all read complete_checkpoints)."""
    run = tmp_path / "run"
    _tag(run, 2)
    _tag(run, 4)
    _tag(run, 4, "step_000000004_universal")
    _tag(run, 9, "step_000000009_universal")  # newer than any real checkpoint
    assert [p.name for p in ckpt.complete_checkpoints(run)] == ["step_000000002", "step_000000004"]
    assert ckpt.find_resume(run, "auto").name == "step_000000004"
    with pytest.raises(ckpt.CheckpointError, match="universal conversion"):
        ckpt.find_resume(run, str(run / "checkpoints" / "step_000000004_universal"))


def _blocking_rmtree(monkeypatch) -> tuple[threading.Event, list]:
    release, calls = threading.Event(), []

    def rmtree(path, *a, **k):
        calls.append(Path(path))
        release.wait(30)

    monkeypatch.setattr(shutil, "rmtree", rmtree)
    return release, calls


def _finishes(fn, seconds: float = 10.0) -> bool:
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    t.join(seconds)
    return not t.is_alive()


def test_pruning_returns_before_old_checkpoints_are_deleted(tmp_path, monkeypatch):
    """A 6.5B checkpoint takes minutes to delete on a parallel filesystem: save() must not hold the other ranks
    in its last barrier while rank 0 deletes. Deletion is blocked here; save() still returns."""
    run = tmp_path / "run"
    for step in (2, 4):
        _tag(run, step)
    _tag(run, 2, "step_000000002_universal")
    release, calls = _blocking_rmtree(monkeypatch)
    try:
        assert _finishes(lambda: ckpt.save(_Writes(), run, 6, {}, {0: {}}, 0,
                                           {"world_size": 1, "grad_accum": 1}, keep=1))
        names = sorted(p.name for p in (run / "checkpoints").iterdir())
        assert names == [".trash", "step_000000006"]  # moved aside at once (with its conversion)
        for _ in range(100):  # the deleting thread gets there
            if calls:
                break
            time.sleep(0.05)
        assert calls and all(p.parent.name == ".trash" for p in calls), "deleted in the background, from .trash"
    finally:
        release.set()


def test_overwrite_returns_before_the_old_run_is_deleted(tmp_path, monkeypatch):
    run = tmp_path / "run"
    _tag(run, 2)
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    from scaling.engine.config import TrainConfig

    release, _ = _blocking_rmtree(monkeypatch)
    try:
        assert _finishes(lambda: prepare_run_dir(run, TrainConfig(run_dir=str(run), overwrite=True), False))
        assert sorted(p.name for p in run.iterdir()) == [".trash"]
    finally:
        release.set()


def test_a_start_that_never_trained_may_be_retried(tmp_path):
    """A start that died before its first step (config.yaml, ds_config.json, an empty metrics.jsonl) holds
    nothing to lose: a retry is not refused as 'already holds a run'. One that logged a step is."""
    from scaling.engine.config import TrainConfig

    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.yaml", "ds_config.json", "metrics.jsonl"):
        (run / name).write_text("")
    prepare_run_dir(run, TrainConfig(run_dir=str(run)), resuming=False)
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    with pytest.raises(ConfigError, match="already holds a run"):
        prepare_run_dir(run, TrainConfig(run_dir=str(run)), resuming=False)


@pytest.mark.parametrize(("saved", "new", "files"), [
    ((4, 1), (4, 1), {3: [3]}),  # same layout: rank r reads rank_r only
    ((4, 1), (2, 2), {0: [0, 1], 1: [2, 3]}),  # half the ranks: each reads the two that held its streams
    ((2, 2), (4, 1), {0: [0], 1: [0], 2: [1], 3: [1]}),
])
def test_a_rank_reads_only_the_files_holding_its_streams(tmp_path, saved, new, files):
    import torch

    (w0, a0), (w1, a1) = saved, new
    tag = tmp_path / "step_000000001"
    tag.mkdir()
    for r in range(w0):
        torch.save({"data": {v: {"batches": v} for v in range(r * a0, (r + 1) * a0)}, "rng": None},
                   ckpt.rank_file(tag, r))
    marker = {"world_size": w0, "grad_accum": a0}
    for rank, want in files.items():
        ids = [rank * a1 + m for m in range(a1)]
        assert [int(p.stem.split("_")[1]) for p in ckpt.stream_files(tag, marker, ids, w1 * a1)] == want
        positions, _ = ckpt.load_stream_states(tag, marker, ids, w1 * a1)
        assert positions == {v: {"batches": v} for v in ids}
    # a checkpoint from before grad_accum was recorded: derived from the unchanged stream count
    assert ckpt.saved_grad_accum({"world_size": w0}, w1 * a1) == a0


@pytest.mark.slow  # DeepSpeed's init_distributed JIT-builds a comm op (minutes on a busy 2-core box)
def test_dist_timeout_reaches_the_process_group(monkeypatch):
    """dist.timeout_minutes is every collective's timeout (DeepSpeed's default, 10 min, is shorter than a
    large universal conversion that the other ranks wait for)."""
    import torch
    import torch.distributed as dist
    from train_helpers import _free_port

    from scaling.engine.distributed import setup, teardown

    for key, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(_free_port())}.items():
        monkeypatch.setenv(key, value)
    assert not dist.is_initialized()
    setup(timeout_minutes=37)
    try:
        group = dist.distributed_c10d._get_default_group()
        assert group._get_backend(torch.device("cpu")).options._timeout == timedelta(minutes=37)
    finally:
        teardown()
