"""`scaling sweep run DIR` trains a local sweep for real through each run's job script (2 CPU ranks under the
DeepSpeed launcher), stage 1 before the MAE -> WSP run that starts from it, and skips runs already done."""

from __future__ import annotations

import json
import os
import sys

import pytest
from sweep_helpers import REPO, write_spec

from scaling.engine.distributed import free_port
from scaling.sweep.cli import main
from scaling.sweep.status import sweep_status

pytestmark = pytest.mark.slow


def test_local_sweep_runs_then_skips_done_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PYTHON", sys.executable)
    monkeypatch.chdir(REPO)
    spec = write_spec(tmp_path / "spec.yaml", models=["vit_nano_patch4"], samples=[64], stage1_samples=64, gpus=2,
                      overrides=["data.train=synthetic", "batch.micro_batch=16", "batch.grad_accum=1",
                                 "deepspeed.precision=fp32"])
    out = tmp_path / "sweep"
    assert main([str(spec), "--out", str(out)]) == 0
    assert main(["run", str(out)]) == 0, capsys.readouterr().out
    states = {name: state for name, state, _ in sweep_status(out)}
    assert list(states.values()) == ["done"] * 3
    stage1, mae_wsp, wsp = states
    s2 = json.loads((out / "runs" / mae_wsp / "summary.json").read_text())
    assert s2["recipe"] == "mae_wsp" and s2["world_size"] == 2 and s2["samples_seen"] == 64
    assert json.loads((out / "runs" / wsp / "summary.json").read_text())["recipe"] == "wsp"
    before = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*")}
    capsys.readouterr()
    assert main(["run", str(out)]) == 0
    assert capsys.readouterr().out.count("done, skipped") == 3
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*")} == before
    assert os.access(out / "submit.sh", os.X_OK)
