"""The job scripts without a scheduler run for real: 2 CPU ranks of the tiny config through the DeepSpeed launcher
(gloo). jobs/slurm_train.sh runs under a real Slurm in test_slurm_real.py."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml
from jobs_helpers import JOBS, REPO, free_port

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


@pytest.mark.slow
def test_a_config_error_is_printed_once_not_once_per_rank(tmp_path):
    proc = subprocess.run(["bash", str(JOBS / "single_node.sh"), "2", "configs/tiny/mae.yaml", "optim.lrr=1",
                           f"run_dir={tmp_path / 'run'}"], cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and out.count("scaling train: config error: unknown config key 'optim.lrr'") == 1, out
    assert not (tmp_path / "run").exists()
