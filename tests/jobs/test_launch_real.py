"""The job scripts run for real: 2 CPU ranks of the tiny config through the DeepSpeed launcher (gloo).
SLURM is the only thing stubbed (jobs_helpers: srun runs its command as node 0 of a 1-node allocation)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import yaml
from jobs_helpers import JOBS, REPO, free_port, requeue_calls, slurm_env

from scaling.engine.checkpoint import complete_checkpoints

TINY = ["deepspeed.precision=fp32", "batch.micro_batch=16", "batch.grad_accum=1", "log_every=1"]
PHOTOS = "data.train=scaling/assets/photos7/{000000..000001}.tar"  # the bundled shards, as a brace pattern


def _env(**extra):
    import sys

    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "MASTER_PORT": str(free_port()),
           "PYTHON": sys.executable, **extra}
    env.pop("RANK", None)
    return env


def _ranks_alive(run_dir) -> list[str]:
    out = subprocess.run(["pgrep", "-f", f"run_dir={run_dir}"], capture_output=True, text=True).stdout
    return out.split()


@pytest.mark.slow
def test_slurm_script_brace_pattern_preemption_and_requeue(tmp_path):
    run = tmp_path / "run"
    env = slurm_env(tmp_path / "stub")
    cmd = ["bash", str(JOBS / "slurm_train.sh"), "configs/tiny/mae.yaml", PHOTOS, f"run_dir={run}",
           "total_samples=1000000", *TINY]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        deadline = time.time() + 600
        metrics = run / "metrics.jsonl"
        while not metrics.exists() or len(metrics.read_text().splitlines()) < 3:
            assert proc.poll() is None, proc.stdout.read()[-4000:]
            assert time.time() < deadline
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGUSR1)  # SLURM's --signal=B:USR1: the batch shell only
        assert proc.wait(timeout=300) == 0, proc.stdout.read()[-4000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert _ranks_alive(run) == []  # every rank had exited when the batch shell returned
    summary = json.loads((run / "summary.json").read_text())
    assert summary["preempted"] is True and summary["world_size"] == 2
    tags = complete_checkpoints(run)
    assert tags and int(tags[-1].name.split("_")[1]) == summary["steps"]
    assert requeue_calls(tmp_path / "stub") == ["4242"]
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["data"]["train"] == PHOTOS.split("=", 1)[1]  # one argument, unexpanded
    assert config["resume"] == "auto"


@pytest.mark.slow
def test_single_node_script_two_ranks(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.run(["bash", str(JOBS / "single_node.sh"), "2", "configs/tiny/mae.yaml", PHOTOS,
                           f"run_dir={run}", "total_samples=96", *TINY], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["samples_seen"] == 96
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["train"] == PHOTOS.split("=", 1)[1]


@pytest.mark.slow
def test_hostfile_script_two_ranks(tmp_path):
    run = tmp_path / "run"
    hostfile = tmp_path / "hosts"
    hostfile.write_text("# one node, two CPU ranks\nlocalhost slots=2\n")
    proc = subprocess.run(["bash", str(JOBS / "multi_node.sh"), str(hostfile), "configs/tiny/wsp.yaml",
                           "data.train=synthetic", f"run_dir={run}", "total_samples=96", *TINY], cwd=REPO,
                          env=_env(MASTER_ADDR="127.0.0.1"), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["samples_seen"] == 96 and summary["stage"] == "wsp"


def test_hostfile_script_refuses_a_missing_hostfile(tmp_path):
    proc = subprocess.run(["bash", str(JOBS / "multi_node.sh"), str(tmp_path / "nope"), "configs/tiny/mae.yaml"],
                          cwd=REPO, env=_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "slots=" in proc.stderr
