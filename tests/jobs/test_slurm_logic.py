"""jobs/slurm_train.sh's shell logic, fast: the real script under stub srun/scontrol, with a stand-in for
the DeepSpeed launcher that, like the real one, dies of SIGUSR1 and starts its ranks as children. What runs
for real is the batch script, the per-node task, signals and waits; the real 2-rank training run is in
test_launch_real.py (slow)."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time

from jobs_helpers import FAKE_LAUNCHER, JOBS, REPO, requeue_calls, slurm_env

BRACE = "data.train=/data/ig3b/{000000..099999}.tar"


def _start(tmp_path, **extra):
    fake = tmp_path / "fake_python"
    fake.write_text(FAKE_LAUNCHER)
    fake.chmod(0o755)
    env = slurm_env(tmp_path, PYTHON=str(fake), **extra)
    cmd = ["bash", str(JOBS / "slurm_train.sh"), "configs/tiny/mae.yaml", BRACE, "run_dir=/ckpt/x y"]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _wait_for(path, proc, timeout=30.0):
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _launcher_args(tmp_path) -> list[str]:
    return (tmp_path / "launcher.args").read_text().split("\0")[:-1]


def test_arguments_arrive_exactly_as_given(tmp_path):
    proc = _start(tmp_path, RANK_SECONDS="0")
    assert proc.wait(timeout=60) == 0, proc.stdout.read()
    args = _launcher_args(tmp_path)
    # the brace pattern and the argument with a space are single, unexpanded arguments, after resume=auto
    assert args[-3:] == ["resume=auto", BRACE, "run_dir=/ckpt/x y"]
    assert args[:2] == ["-u", "-m"] and args[2] == "deepspeed.launcher.launch"
    assert "--node_rank=0" in args and "--master_addr=localhost" in args
    assert args[args.index("--module") + 1: args.index("--module") + 4] == ["scaling.train", "--config",
                                                                           "configs/tiny/mae.yaml"]
    (info,) = [a for a in args if a.startswith("--world_info=")]
    assert json.loads(base64.urlsafe_b64decode(info.split("=", 1)[1])) == {"localhost": [0, 1]}
    srun = (tmp_path / "srun.args").read_text().split("\0")
    assert "--ntasks-per-node=1" in srun  # one launcher per node
    assert requeue_calls(tmp_path) == []  # finished without a preemption: nothing requeued


def test_usr1_reaches_only_the_ranks_and_the_shell_waits_then_requeues(tmp_path):
    proc = _start(tmp_path)
    _wait_for(tmp_path / "rank.started", proc)
    os.kill(proc.pid, signal.SIGUSR1)  # what SLURM's --signal=B:USR1 does
    assert proc.wait(timeout=60) == 0, proc.stdout.read()  # the launcher would exit 138 had it been signalled
    # the batch shell returned only after the rank had finished its checkpoint and exited
    assert (tmp_path / "rank.usr1").exists() and (tmp_path / "rank.exited").exists()
    assert requeue_calls(tmp_path) == ["4242"]


def test_a_failed_step_is_not_requeued_and_its_status_is_kept(tmp_path):
    proc = _start(tmp_path, RANK_SECONDS="0", RANK_STATUS="3")
    assert proc.wait(timeout=60) == 3
    assert requeue_calls(tmp_path) == []
