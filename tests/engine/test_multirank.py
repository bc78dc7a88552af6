"""Real multi-rank ZeRO-3 runs on CPU through the `deepspeed` launcher (gloo): slow, run with -m slow."""

import json
import os
import signal
import subprocess
import time

import pytest
from train_helpers import REPO, losses, run_train, train_cmd

from scaling.engine.checkpoint import MARKER, complete_checkpoints

pytestmark = pytest.mark.slow

FP32 = ["deepspeed.precision=fp32", "data.train=synthetic", "log_every=1"]


@pytest.mark.parametrize("stage", ["mae", "wsp"])
def test_two_ranks_equal_one_process(tmp_path, stage):
    config = str(REPO / "configs" / "tiny" / f"{stage}.yaml")
    common = [*FP32, "total_samples=192", "batch.micro_batch=16"]
    one = tmp_path / "one"
    run_train(config, [f"run_dir={one}", *common, "batch.grad_accum=2"])
    two = tmp_path / "two"
    run_train(config, [f"run_dir={two}", *common, "batch.grad_accum=1"], ranks=2)
    a, b = losses(one), losses(two)
    assert len(a) == len(b) == 6
    for x, y in zip(a, b):
        assert abs(x - y) <= 1e-4 * abs(x), (a, b)
    ds = json.loads((two / "ds_config.json").read_text())
    assert ds["train_batch_size"] == 32 and ds["gradient_accumulation_steps"] == 1


def _start(config, overrides, ranks):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(train_cmd(config, overrides, ranks), cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def test_kill_9_then_resume_equals_uninterrupted(tmp_path, tiny_mae):
    common = [*FP32, "total_samples=768", "batch.micro_batch=16", "batch.grad_accum=1", "checkpoint_every=128"]
    full = tmp_path / "full"
    run_train(tiny_mae, [f"run_dir={full}", *common], ranks=2)
    killed = tmp_path / "killed"
    proc = _start(tiny_mae, [f"run_dir={killed}", *common], ranks=2)
    deadline = time.time() + 600
    while not (killed / "checkpoints" / "step_000000004" / MARKER).exists():
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.time() < deadline
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # every rank and the launcher, no chance to clean up
    proc.wait()
    k = int(complete_checkpoints(killed)[-1].name.split("_")[1])
    assert 4 <= k < 24
    run_train(tiny_mae, [f"run_dir={killed}", *common, "resume=auto"], ranks=2)
    a, b = losses(full), losses(killed)
    assert len(a) == len(b) == 24
    for step, (x, y) in enumerate(zip(a, b), start=1):
        assert abs(x - y) <= 1e-6 * abs(x), (step, x, y)


def test_sigusr1_checkpoints_and_exits_then_resumes(tmp_path, tiny_wsp):
    """SIGUSR1 to one rank: every rank checkpoints and exits 0 before the end; resume=auto then finishes the
    run with the losses of an uninterrupted one (same 2 ranks, fp32: observed equal)."""
    common = [*FP32, "total_samples=1280", "batch.micro_batch=16", "batch.grad_accum=1"]  # 40 steps
    full = tmp_path / "full"
    run_train(tiny_wsp, [f"run_dir={full}", *common], ranks=2)
    run = tmp_path / "pre"
    proc = _start(tiny_wsp, [f"run_dir={run}", *common], ranks=2)
    deadline = time.time() + 600
    while not (run / "metrics.jsonl").exists() or len((run / "metrics.jsonl").read_text().splitlines()) < 3:
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.time() < deadline
        time.sleep(0.1)
    # one rank is signalled (as a node-local scheduler would); the flag is all-reduced to every rank
    ranks = subprocess.run(["pgrep", "-f", f"run_dir={run}"], capture_output=True, text=True).stdout.split()
    workers = [int(p) for p in ranks if int(p) != proc.pid]
    os.kill(max(workers), signal.SIGUSR1)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["preempted"] is True and 3 <= summary["steps"] < 40, summary
    tags = complete_checkpoints(run)
    assert tags and int(tags[-1].name.split("_")[1]) == summary["steps"]
    run_train(tiny_wsp, [f"run_dir={run}", *common, "resume=auto"], ranks=2)
    resumed = json.loads((run / "summary.json").read_text())
    assert resumed["preempted"] is False and resumed["steps"] == 40
    a, b = losses(full), losses(run)
    assert len(a) == len(b) == 40
    for step, (x, y) in enumerate(zip(a, b), start=1):
        assert abs(x - y) <= 1e-6 * abs(x), (step, summary["steps"], x, y)


def test_resume_on_a_different_world_size(tmp_path, tiny_mae):
    """2 ranks x grad_accum 1 -> 1 rank x grad_accum 2 through DeepSpeed's universal checkpoint: the same
    data streams, the same weights and the same optimizer state (Adam moments, step) at the resume point."""
    common = [*FP32, "batch.micro_batch=16", "total_samples=256"]
    full = tmp_path / "full"
    run_train(tiny_mae, [f"run_dir={full}", *common, "batch.grad_accum=1"], ranks=2)
    part = tmp_path / "part"
    run_train(tiny_mae, [f"run_dir={part}", *common, "batch.grad_accum=1", "total_samples=128"], ranks=2)
    run_train(tiny_mae, [f"run_dir={part}", *common, "batch.grad_accum=2", "resume=auto",
                         "allow_changes=total_samples"], ranks=1)
    a, b = losses(full), losses(part)
    assert len(a) == len(b) == 8
    assert b[:5] == a[:5]  # step 5 runs on the restored weights and the restored data streams
    print("relative differences after the resume:", [abs(x - y) / x for x, y in zip(a[5:], b[5:])])
    for x, y in zip(a[5:], b[5:]):  # the optimizer state too (observed bit-identical)
        assert abs(x - y) <= 1e-6 * x, (a, b)
    assert (part / "checkpoints" / "step_000000004_universal").is_dir()
