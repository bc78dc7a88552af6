"""Non-finite steps: a NaN loss or NaN gradients in one micro-batch of one rank skip the whole optimizer step
on every rank, counted, the optimizer state untouched, the lr schedule moving on; max_bad_steps skipped steps
in a row stop the run with its checkpoints intact. Faults come from tests/engine/faults.py, not the trainer."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from train_helpers import REPO, run_train

from scaling.engine.checkpoint import complete_checkpoints
from scaling.engine.metrics import read_metrics
from scaling.engine.schedule import lr_at

FAST = ["total_samples=256", "data.train=synthetic", "batch.micro_batch=16", "batch.grad_accum=2"]


def _optimizer_state(run: Path, step: int, rank: int = 0) -> dict[str, torch.Tensor]:
    """fp32 master weights, Adam exp_avg / exp_avg_sq and step of one rank's ZeRO partition (ZeRO-3 or the
    bf16 ZeRO-1/2 file)."""
    (path,) = (run / "checkpoints" / f"step_{step:09d}").glob(f"*zero_pp_rank_{rank}_mp_rank_00_optim_states.pt")
    saved = torch.load(path, map_location="cpu", weights_only=False)["optimizer_state_dict"]
    masters = saved.get("fp32_flat_groups", saved.get("single_partition_of_fp32_groups"))
    out = {f"fp32.{i}": t for i, t in enumerate(masters)}
    inner = saved.get("optimizer_state_dict", saved.get("base_optimizer_state"))
    for group, state in inner["state"].items():
        out.update({f"{group}.{k}": torch.as_tensor(v) for k, v in state.items()})
    return out


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def test_non_finite_steps_are_skipped_untouched_counted_then_stop(tmp_path: Path, tiny_mae: str) -> None:
    run = tmp_path / "nan"
    proc = run_train(
        tiny_mae,
        [f"run_dir={run}", *FAST, "checkpoint_every=32", "keep_checkpoints=10", "max_bad_steps=2"],
        check=False,
        faults="nan_loss@3:0,nan_grad@5:0,nan_loss@7:0,nan_grad@8:0",
    )
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "NaN/Inf on 2 optimizer steps in a row" in proc.stderr and "last good checkpoint is intact" in proc.stderr
    assert [int(p.name.split("_")[1]) for p in complete_checkpoints(run)] == list(range(1, 8))
    rows = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, 8))
    assert [r["skipped_steps"] for r in rows] == [0, 0, 1, 1, 2, 2, 3]
    assert rows[2]["loss"] is None and _finite(rows[4]["loss"])  # nan_grad: a finite loss, NaN gradients
    assert all(_finite(r["loss"]) for i, r in enumerate(rows) if i not in (2, 6))
    schedule = dict(peak_lr=2e-3, min_lr=1e-4, warmup_samples=128, total_samples=256)
    for r in rows:  # the lr is a function of samples seen, skipped steps included
        assert abs(r["lr"] - lr_at(r["samples_seen"], **schedule)) < 1e-12, r
    states = {k: _optimizer_state(run, k) for k in range(2, 8)}
    for skipped in (3, 5, 7):  # exp_avg, exp_avg_sq, step and the fp32 weights: exactly as before the step
        assert _same(states[skipped - 1], states[skipped]), skipped
    assert not _same(states[3], states[4]) and not _same(states[5], states[6])
    assert all(torch.isfinite(t).all() for t in states[7].values())


@pytest.mark.slow
def test_a_fault_on_rank_1_skips_the_step_on_both_ranks(tmp_path: Path) -> None:
    from scaling.engine.consolidate import consolidate_run

    run = tmp_path / "two"
    run_train(
        str(REPO / "configs" / "tiny" / "wsp.yaml"),
        [f"run_dir={run}", "data.train=synthetic", "deepspeed.precision=fp32", "total_samples=256",
         "batch.micro_batch=16", "batch.grad_accum=1", "checkpoint_every=32", "keep_checkpoints=10"],
        ranks=2,
        faults="nan_loss@3:1,nan_grad@5:1",
    )
    rows = read_metrics(run / "metrics.jsonl")
    assert [r["skipped_steps"] for r in rows] == [0, 0, 1, 1, 2, 2, 2, 2]
    assert all(_finite(r["loss"]) for i, r in enumerate(rows) if i != 2)
    for rank in (0, 1):  # each rank's partition of the optimizer state is untouched by the skipped steps
        states = {k: _optimizer_state(run, k, rank) for k in (2, 3, 4, 5)}
        assert _same(states[2], states[3]) and _same(states[4], states[5]), rank
        assert not _same(states[3], states[4]), rank
    weights, _ = consolidate_run(run)
    assert all(torch.isfinite(t).all() for t in weights.values())


@pytest.mark.slow
def test_bf16_zero2_skips_non_finite_gradients_too(tmp_path: Path, tiny_mae: str) -> None:
    """ZeRO-1/2 in bf16 checks the gradient norm only with bf16.check_grad_overflow (ds_config.py sets it)."""
    run = tmp_path / "z2"
    run_train(
        tiny_mae,
        [f"run_dir={run}", *FAST, "total_samples=160", "checkpoint_every=32", "keep_checkpoints=10",
         "deepspeed.config=zero2_bf16.json", "deepspeed.precision=bf16"],
        faults="nan_grad@3:0",
    )
    assert [r["skipped_steps"] for r in read_metrics(run / "metrics.jsonl")] == [0, 0, 1, 1, 1]
    states = {k: _optimizer_state(run, k) for k in (2, 3, 4)}
    assert _same(states[2], states[3]) and not _same(states[3], states[4])
    assert all(torch.isfinite(t.float()).all() for t in states[4].values())
