"""A run that finished, started again with resume=auto (a requeued or resubmitted job), trains nothing and writes
nothing; one resumed at its final step (killed after the last checkpoint, before summary.json) saves no checkpoint
again and reports the loss it logged, not NaN. Before: the re-run wrote summary.json with loss NaN and eval {},
and deleted and re-saved the final checkpoint."""

import json

import pytest
from train_helpers import run_train

from scaling.engine.checkpoint import complete_checkpoints
from scaling.engine.config import load_config
from scaling.engine.finished import complete_summary, last_logged_loss

FAST = ["total_samples=128", "data.train=synthetic", "batch.micro_batch=16", "batch.grad_accum=2", "log_every=1"]


def _tree(root):
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.mark.slow
def test_a_finished_run_again_changes_nothing(tmp_path, tiny_mae):
    run = tmp_path / "run"
    run_train(tiny_mae, [f"run_dir={run}", *FAST])
    summary = json.loads((run / "summary.json").read_text())
    summary["eval"] = {"linear_top1": 0.5}  # what `scaling eval` adds
    (run / "summary.json").write_text(json.dumps(summary))
    before = _tree(run)
    proc = run_train(tiny_mae, [f"run_dir={run}", *FAST, "resume=auto"])
    assert "already complete: 4 steps, 128 samples; nothing trained, nothing written" in proc.stdout
    assert _tree(run) == before


@pytest.mark.slow
def test_resumed_at_the_final_step_saves_nothing_again_and_keeps_the_logged_loss(tmp_path, tiny_mae):
    run = tmp_path / "run"
    run_train(tiny_mae, [f"run_dir={run}", *FAST])
    logged = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["loss"]
    (run / "summary.json").unlink()  # killed between the final checkpoint and summary.json
    final = complete_checkpoints(run)[-1]
    before = _tree(final)
    proc = run_train(tiny_mae, [f"run_dir={run}", *FAST, "resume=auto"])
    assert "resumed from step 4" in proc.stderr
    assert _tree(final) == before and complete_checkpoints(run)[-1] == final
    summary = json.loads((run / "summary.json").read_text())
    assert summary["preempted"] is False and summary["steps"] == 4 and summary["loss"] == logged


def _fake_run(run, steps=4, preempted=False, marker_step=4):
    tag = run / "checkpoints" / f"step_{marker_step:09d}"
    tag.mkdir(parents=True)
    (tag / "COMPLETE.json").write_text(json.dumps({"step": marker_step, "global_batch": 32, "world_size": 1}))
    (run / "summary.json").write_text(json.dumps({"steps": steps, "samples_seen": steps * 32, "preempted": preempted}))
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1.0 / s}) + "\n"
                                               for s in range(1, steps + 1)))


@pytest.mark.parametrize(("fake", "overrides", "complete"), [
    ({}, [], True),
    ({"preempted": True}, [], False),  # cut: it continues
    ({"marker_step": 3}, [], False),  # the newest checkpoint is not the summary's step
    ({}, ["total_samples=256"], False),  # asks for more steps: the resume path checks the change
    ({}, ["resume=none", "overwrite=true"], False),
])
def test_what_counts_as_complete(tmp_path, fake, overrides, complete):
    run = tmp_path / "run"
    _fake_run(run, **fake)
    cfg = load_config(None, [f"run_dir={run}", "total_samples=128", "batch.micro_batch=32", "batch.grad_accum=1",
                             "resume=auto", *overrides])
    assert (complete_summary(cfg, world_size=1) is not None) == complete


def test_the_logged_loss_is_read_from_the_end_of_metrics(tmp_path):
    _fake_run(tmp_path, steps=4)
    assert last_logged_loss(tmp_path, 4) == 0.25 and last_logged_loss(tmp_path, 9) != last_logged_loss(tmp_path, 9)
