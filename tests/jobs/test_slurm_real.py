"""jobs/slurm_train.sh under a real one-node Slurm 22.05 (tools/slurm_one_node.sh), 2 CPU ranks of the tiny MAE
config with a DataLoader worker each: a job that trains, the same job again on the finished run (nothing written),
and preemption by `scancel --signal=USR1 --batch` and by `--signal=B:USR1@N` at a short time limit: checkpoint,
requeue, resume, the losses of the uninterrupted run and one metrics line per step.

Slurm holds a requeued job ~2-3 minutes (Reason=BeginTime); the tests check that state, then start the job at once
(`scontrol update JobId=N StartTime=now`; slurm_real.release_requeued)."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml
from slurm_real import (
    REPO,
    job_env,
    metrics,
    release_requeued,
    sbatch,
    slurm_fixture,  # noqa: F401 (the `slurm` fixture)
    tree_state,
    wait_ended,
    wait_steps,
)

from scaling.engine.checkpoint import complete_checkpoints

pytestmark = pytest.mark.slow

PHOTOS = "data.train=scaling/assets/photos7/{000000..000001}.tar"  # a brace pattern: must stay one argument
STEPS = 200  # global batch 32 (16 per rank x 2 ranks); ~5 steps/s on the 2-core box, ~60 s with start-up
TRAIN = ["configs/tiny/mae.yaml", PHOTOS, f"total_samples={STEPS * 32}", "deepspeed.precision=fp32",
         "batch.micro_batch=16", "batch.grad_accum=1", "log_every=1", "data.workers=1"]
ALLOC = ["--gpus-per-node=2", "--cpus-per-task=2"]  # 2 ranks from the allocation's GPUs (fake ones: CPU ranks)


def _submit(tmp, run, *extra_sbatch, **env) -> str:
    return sbatch(*ALLOC, *extra_sbatch, f"--output={tmp}/slurm-%j.out", str(REPO / "jobs" / "slurm_train.sh"),
                  *TRAIN, f"run_dir={run}", env=job_env(**env))


def _log(tmp, job_id) -> str:
    return (tmp / f"slurm-{job_id}.out").read_text(errors="replace")


def _losses(run) -> list[float]:
    return [m["loss"] for m in metrics(run)]


@pytest.fixture(scope="module")
def uninterrupted(slurm, tmp_path_factory):
    """The 2-rank job run to its end: the reference for the preemption tests."""
    tmp = tmp_path_factory.mktemp("uninterrupted")
    run = tmp / "run"
    job_id = _submit(tmp, run)
    info = wait_ended(job_id, timeout=900)
    assert info["JobState"] == "COMPLETED", _log(tmp, job_id)[-4000:]
    return tmp, run, job_id


def test_two_rank_job_then_the_same_job_on_the_finished_run_changes_nothing(uninterrupted):
    tmp, run, job_id = uninterrupted
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == STEPS and summary["preempted"] is False
    assert [m["step"] for m in metrics(run)] == list(range(1, STEPS + 1))
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["train"] == PHOTOS.split("=", 1)[1]
    log = _log(tmp, job_id)
    assert "\r" not in log and "[1]" not in log and "Done" not in log  # no tqdm redraws, no job-control lines
    assert f"step {STEPS}/{STEPS} (100%)" in log  # the progress as plain lines
    before = tree_state(run)
    again = _submit(tmp, run)
    info = wait_ended(again, timeout=600)
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", _log(tmp, again)[-3000:]
    assert f"already complete: {STEPS} steps" in _log(tmp, again)
    assert tree_state(run) == before  # every byte and every mtime: nothing trained, re-saved or rewritten


def _preempted_then_resumed(tmp, run, job_id, uninterrupted_run, timeout=120, *updates):
    """After a USR1: the job requeued itself with a complete checkpoint at the step it stopped; released, it
    resumes there and ends with the uninterrupted run's losses, one metrics line per step."""
    release_requeued(job_id, timeout, *updates)  # seen PENDING, Reason=BeginTime (Slurm's requeue hold), Restarts=1
    log = _log(tmp, job_id)
    assert "preemption signal (USR1)" in log and f"requeueing job {job_id}" in log, log[-4000:]
    assert "DUE TO TIME LIMIT" not in log  # requeued before the limit
    cut = json.loads((run / "summary.json").read_text())
    assert cut["preempted"] is True and 1 <= cut["steps"] < STEPS, cut
    assert int(complete_checkpoints(run)[-1].name.split("_")[1]) == cut["steps"]
    info = wait_ended(job_id, timeout=900)
    log = _log(tmp, job_id)
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1", log[-4000:]
    assert f"resumed from step {cut['steps']}" in log
    assert json.loads((run / "summary.json").read_text())["preempted"] is False
    assert [m["step"] for m in metrics(run)] == list(range(1, STEPS + 1))
    for step, (x, y) in enumerate(zip(_losses(uninterrupted_run), _losses(run), strict=True), start=1):
        assert abs(x - y) <= 1e-6 * abs(x), (step, cut["steps"], x, y)


@pytest.mark.parametrize("which", ["--batch", "--full"])  # the batch shell only; every process of every step
def test_scancel_usr1_checkpoints_requeues_and_resumes(uninterrupted, tmp_path, which):
    run = tmp_path / "run"
    job_id = _submit(tmp_path, run)
    wait_steps(run, 3, job_id)
    subprocess.run(["scancel", "--signal=USR1", which, job_id], check=True, timeout=30)
    _preempted_then_resumed(tmp_path, run, job_id, uninterrupted[1])


def test_time_limit_signal_checkpoints_requeues_and_resumes(uninterrupted, tmp_path):
    """--time=1 --signal=B:USR1@55: slurmctld checks time limits every 30 s, so the signal comes 5-35 s into the job
    (maybe while the ranks still start: the batch shell repeats it) and the limit 60-90 s in, leaving 25 s or more
    to checkpoint and requeue. The requeued job gets a longer limit."""
    run = tmp_path / "run"
    job_id = _submit(tmp_path, run, "--time=1", "--signal=B:USR1@55")
    _preempted_then_resumed(tmp_path, run, job_id, uninterrupted[1], 240, "TimeLimit=20")


def test_an_interpreter_without_deepspeed_fails_with_one_clear_line(slurm, tmp_path):
    """A submit from a shell whose python lacks the project (sweep jobs pin theirs): one line, exit 2, in seconds."""
    job_id = _submit(tmp_path, tmp_path / "run", PYTHON="/usr/bin/python3")
    info = wait_ended(job_id, timeout=120)
    log = _log(tmp_path, job_id)
    assert info["JobState"] == "FAILED" and info["ExitCode"] == "2:0", info
    assert log.count("/usr/bin/python3 cannot import deepspeed and scaling") == 1 and "Traceback" not in log, log
