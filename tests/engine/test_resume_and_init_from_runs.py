"""`scaling train` end to end: a refused resume and a bad init_from leave the run dir as they found it (and the
retry works); init_from's FLOPs reach summary.json through a run dir and through an exported .safetensors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from train_helpers import run_train

pytestmark = pytest.mark.slow

FAST = ["data.train=synthetic", "batch.micro_batch=16", "batch.grad_accum=2", "total_samples=128"]


def _snapshot(run: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(run)): (p.stat().st_size, p.stat().st_mtime_ns) for p in run.rglob("*")}


def _one_line_config_error(proc) -> str:
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return [line for line in proc.stderr.splitlines() if line.startswith("scaling train: config error:")][-1]


def test_refused_resume_writes_nothing_then_allow_changes_continues(tmp_path, tiny_mae):
    run = tmp_path / "mae"
    run_train(tiny_mae, [f"run_dir={run}", *FAST, "checkpoint_every=64"])
    before = _snapshot(run)
    proc = run_train(tiny_mae, [f"run_dir={run}", *FAST, "total_samples=256", "resume=auto"], check=False)
    line = _one_line_config_error(proc)
    assert "total_samples: 128 -> 256" in line and "allow_changes=total_samples" in line
    assert _snapshot(run) == before  # not a byte written, not a file touched
    run_train(tiny_mae, [f"run_dir={run}", *FAST, "total_samples=256", "resume=auto", "allow_changes=total_samples"])
    assert json.loads((run / "summary.json").read_text())["steps"] == 8


def test_bad_init_from_writes_nothing_and_the_retry_runs(tmp_path, tiny_mae, tiny_wsp):
    """Issue 15's case: a WSP start with a missing init_from wrote config.yaml and ds_config.json, died, and its
    retry was refused ("already holds a run"). Now nothing is written and the retry (same command, the right
    init_from) trains; both init_from forms carry stage 1's FLOPs into summary.json (CONTRACTS.md)."""
    from safetensors import safe_open

    from scaling.export import main as export_main

    mae = tmp_path / "mae"
    run_train(tiny_mae, [f"run_dir={mae}", *FAST])
    mae_flops = _summary(mae)["total_flops"]
    assert mae_flops == _summary(mae)["flops"] > 0
    exported = tmp_path / "mae.safetensors"
    assert export_main([str(mae), str(exported)]) == 0
    with safe_open(str(exported), "pt") as f:
        meta = f.metadata()
    assert float(meta["total_flops"]) == float(meta["flops"]) == mae_flops
    assert meta["stage"] == "mae" and meta["samples_seen"] == "128"

    wsp = tmp_path / "wsp"
    wsp_args = ["data.train=synthetic", "batch.micro_batch=16", "total_samples=64"]
    proc = run_train(tiny_wsp, [f"run_dir={wsp}", *wsp_args, f"init_from={tmp_path / 'nope.safetensors'}"],
                     check=False)
    assert "does not exist" in _one_line_config_error(proc)
    assert not wsp.exists()
    run_train(tiny_wsp, [f"run_dir={wsp}", *wsp_args, f"init_from={exported}"])
    s = _summary(wsp)
    assert s["init_from"] == str(exported) and s["init_from_flops"] == mae_flops
    assert s["total_flops"] == s["flops"] + mae_flops and s["recipe"] == "mae_wsp"

    from_dir = tmp_path / "wsp_from_dir"
    run_train(tiny_wsp, [f"run_dir={from_dir}", *wsp_args, f"init_from={mae}"])
    assert _summary(from_dir)["init_from_flops"] == mae_flops
    # an explicit init_from_flops wins over what the source records
    explicit = tmp_path / "wsp_explicit"
    run_train(tiny_wsp, [f"run_dir={explicit}", *wsp_args, f"init_from={mae}", "init_from_flops=1e18"])
    assert _summary(explicit)["init_from_flops"] == 1e18


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


@pytest.mark.parametrize("policy", ["zero3_bf16.json", "zero2_bf16.json"])
def test_two_ranks_receive_stage1_weights_read_by_rank_0_only(tmp_path, tiny_mae, tiny_wsp, policy):
    """Rank 1 never reads init_from: its shards (ZeRO-3) or its replica (ZeRO-2) come from rank 0. One step at
    lr ~ 0 leaves every encoder weight where stage 1 left it."""
    import torch

    from scaling.engine.consolidate import consolidate_run

    mae = tmp_path / "mae"
    run_train(tiny_mae, [f"run_dir={mae}", *FAST, "total_samples=64"])
    wsp = tmp_path / "wsp"
    run_train(tiny_wsp, [f"run_dir={wsp}", f"init_from={mae}", "data.train=synthetic", "total_samples=32",
                         "batch.micro_batch=16", "batch.grad_accum=1", "optim.lr=1e-30", "optim.min_lr=0",
                         "optim.weight_decay=0", f"deepspeed.config={policy}", "deepspeed.precision=fp32"], ranks=2)
    stage1, _ = consolidate_run(mae)
    stage2, _ = consolidate_run(wsp)
    encoder = {k[len("encoder."):]: v for k, v in stage1.items() if k.startswith("encoder.")}
    assert set(stage2) - set(encoder) == {"head.weight", "head.bias"}
    for k, v in encoder.items():
        assert torch.equal(stage2[k], v), k
