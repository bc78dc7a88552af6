"""The training loop's bookkeeping: what config.yaml keeps, the logged lr, time and throughput, defaults
that depend on the stage, data counters of every rank."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from train_helpers import REPO, run_train

from scaling.config import ConfigError
from scaling.engine.config import load_config
from scaling.engine.metrics import read_metrics
from scaling.engine.optim import build_optimizer, param_groups
from scaling.engine.trainer import _schedule_lr
from scaling.models import create_model


def test_pos_embed_default_depends_on_the_stage() -> None:
    assert load_config(None, ["stage=mae"]).model.pos_embed == "sincos"  # MAE's fixed table
    assert load_config(None, ["stage=wsp"]).model.pos_embed == "learned"  # as create_model
    assert load_config(None, ["stage=finetune"]).model.pos_embed == "learned"
    assert load_config(None, ["stage=wsp", "model.pos_embed=sincos"]).model.pos_embed == "sincos"
    with pytest.raises((ConfigError, ValueError), match="pos_embed=learned with stage mae"):
        load_config(None, ["stage=mae", "model.pos_embed=learned"])


def test_logged_lr_is_the_schedule_lr_under_layer_decay() -> None:
    model = create_model("vit_micro_patch4", num_classes=10)
    groups = param_groups(model, 0.05, layer_decay=0.5, depth=4)
    optimizer = build_optimizer(groups, "torch", 1e-3, (0.9, 0.95), 1e-8, "cpu")
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.25)
    assert groups[0]["lr_scale"] != 1.0  # so get_last_lr()[0] (what was logged) is a scaled group's lr
    assert abs(scheduler.get_last_lr()[0] - 0.25e-3) > 1e-5
    assert abs(_schedule_lr(SimpleNamespace(scheduler=scheduler)) - 0.25e-3) < 1e-15


def test_config_yaml_time_and_throughput_window(tmp_path: Path, tiny_mae: str) -> None:
    """config.yaml keeps the user's batch.grad_accum=0 (it reloads at another world size); `time` continues
    from the checkpoint on resume; img_per_s is the logging window's (a slow step shows in its window)."""
    run = tmp_path / "run"
    common = [f"run_dir={run}", "data.train=synthetic", "batch.micro_batch=16", "batch.grad_accum=0",
              "batch.global_batch=32", "log_every=2"]
    run_train(tiny_mae, [*common, "total_samples=128"], faults="sleep@3:0")
    saved = load_config(run / "config.yaml")
    assert saved.batch.grad_accum == 0 and saved.batch.resolve(2) == (32, 1)
    run_train(tiny_mae, [*common, "total_samples=256", "resume=auto", "allow_changes=total_samples"])
    rows = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [2, 4, 6, 8]
    times = [r["time"] for r in rows]
    assert times == sorted(times) and times[1] > 2.0, times  # the resumed run goes on from step 4's time
    for before, row in zip([0.0, *times], rows):
        if row["step"] != 6:  # the first window after the resume starts after the checkpoint was saved
            samples = row["img_per_s"] * (row["time"] - before)
            assert abs(samples - 64) < 0.1 * 64, (row, before)  # 2 steps x 32 samples in the window


@pytest.mark.slow
def test_data_counters_are_every_ranks_and_dataset_counts_are_once(tmp_path: Path) -> None:
    """2 ranks x grad_accum 2, one epoch over photos7 + a dead shard + an empty one: the logged counters are
    the sum over ranks and streams, and the dataset's empty shard is counted once."""
    shards = tmp_path / "shards"
    shutil.copytree(REPO / "scaling" / "assets" / "photos7", shards)
    (shards / "dead.tar").write_bytes(os.urandom(100_000))
    (shards / "empty.tar").write_bytes(b"")
    manifest = json.loads((shards / "shards.json").read_text())
    manifest["shards"] += [{"name": "dead.tar", "samples": 224}, {"name": "empty.tar", "samples": 0}]
    (shards / "shards.json").write_text(json.dumps(manifest))
    run = tmp_path / "run"
    run_train(
        str(REPO / "configs" / "tiny" / "wsp.yaml"),
        [f"run_dir={run}", f"data.train={shards}", "data.mode=epoch", "data.retry_delay_s=0",
         "deepspeed.precision=fp32", "batch.micro_batch=16", "batch.grad_accum=2", "total_samples=640",
         "log_every=10"],
        ranks=2,
    )
    last = read_metrics(run / "metrics.jsonl")[-1]
    assert last["step"] == 10  # 672 samples / (2 ranks x 2 streams x 16) = 10 steps: one epoch
    assert last["data/samples_lost"] == 224 and 1 <= last["data/unreadable_shard"] <= 4, last
    assert last["data/empty_shard"] == 1, last


@pytest.mark.parametrize("name", ["vit_base_patch16", "vit_large_patch16", "vit_huge_patch14", "vit_2b_patch14",
                                  "vit_6.5b_patch14"])
def test_recipes_read_each_sample_once_per_pass_and_mae_follows_its_paper(name: str) -> None:
    mae = load_config(REPO / "configs" / "mae" / f"{name}.yaml")
    assert mae.data.mode == "epoch" and mae.model.pos_embed == "sincos"
    assert mae.data.interpolation == "bicubic" and mae.data.min_scale == 0.2 and mae.optim.clip_grad == 0
    assert "Deviation from MAE" in (REPO / "configs" / "mae" / f"{name}.yaml").read_text()  # the token decay
    wsp = load_config(REPO / "configs" / "wsp" / f"{name}.yaml")
    assert wsp.data.mode == "epoch" and wsp.model.pos_embed == "learned"


def test_a_step_reads_nothing_back_from_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """No host sync per micro-batch (nor per step) in `_step`: the loss sum and the non-finite test stay on the
    device; the loop's one all-reduce per step reads them. The engine here is a plain module with DeepSpeed's
    backward/step calls (the real one is exercised by every run test)."""
    from scaling.data import DataConfig
    from scaling.engine import trainer
    from scaling.engine.streams import MicroBatchStreams

    model = create_model("vit_micro_patch4", num_classes=10)

    class Engine:
        def __call__(self, images: torch.Tensor) -> torch.Tensor:
            return model(images)

        def backward(self, loss: torch.Tensor) -> None:
            loss.backward()

        def step(self) -> None:
            pass

    cfg = load_config(None, ["stage=wsp", "batch.grad_accum=3", "deepspeed.precision=fp32"])
    streams = MicroBatchStreams(DataConfig(train="synthetic", workers=0), stage="wsp", image_size=32,
                                micro_batch=4, rank=0, world_size=1, grad_accum=3, seed=0)
    s = SimpleNamespace(cfg=cfg, dist=SimpleNamespace(device=torch.device("cpu")), engine=Engine(), streams=streams)
    reads: list[str] = []

    def counting(name: str):
        real = getattr(torch.Tensor, name)

        def read(t: torch.Tensor, *args):
            caller = sys._getframe(1).f_code
            if caller.co_filename == trainer.__file__:  # the loop's own reads (data and model code on the
                reads.append(f"{name} in {caller.co_name}")  # host are not device syncs)
            return real(t, *args)

        return read

    for name in ("item", "tolist", "__bool__", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, counting(name))
    loss_sum = trainer._step(s)
    monkeypatch.undo()
    assert reads == [] and loss_sum.dtype == torch.float64 and torch.isfinite(loss_sum)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
