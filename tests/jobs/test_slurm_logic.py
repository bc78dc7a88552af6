"""jobs/slurm_train.sh on many nodes, which a one-node Slurm cannot show: the real script under stub srun/scontrol
(jobs_helpers), with a stand-in for the DeepSpeed launcher that, like the real one, has no USR1 handler and starts
its ranks as children. At 1,024 GPUs on 128 nodes: one launcher per node with the allocation's ranks and CPUs, and
O(1) scheduler calls per job (hostnames once, srun once, requeue once), preempted or not. Everything a single node
shows runs under the real Slurm in test_slurm_real.py."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time

from jobs_helpers import FAKE_LAUNCHER, JOBS, REPO, requeue_calls, scheduler_calls, slurm_env

BRACE = "data.train=/data/ig3b/{000000..099999}.tar"
NODES = [f"gpu{i:03d}" for i in range(128)]


def _start(tmp_path, hosts, **extra):
    fake = tmp_path / "fake_python"
    fake.write_text(FAKE_LAUNCHER)
    fake.chmod(0o755)
    env = slurm_env(tmp_path, hosts, PYTHON=str(fake), **extra)
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


def _world(args: list[str]) -> dict[str, list[int]]:
    (info,) = [a for a in args if a.startswith("--world_info=")]
    return json.loads(base64.urlsafe_b64decode(info.split("=", 1)[1]))


def test_1024_gpus_on_128_nodes_from_the_allocation(tmp_path):
    proc = _start(tmp_path, NODES, RANK_SECONDS="0", SLURM_GPUS_ON_NODE="8", SLURM_CPUS_PER_TASK="96", MASTER_PORT="")
    assert proc.wait(timeout=60) == 0, proc.stdout.read()
    args = _launcher_args(tmp_path)
    # the brace pattern and the argument with a space are single, unexpanded arguments, after resume=auto
    assert args[-3:] == ["resume=auto", BRACE, "run_dir=/ckpt/x y"]
    assert args[:3] == ["-u", "-m", "deepspeed.launcher.launch"] and "--node_rank=0" in args
    assert f"--master_addr={NODES[0]}" in args and "--master_port=33742" in args  # 29500 + job id 4242
    assert _world(args) == {host: list(range(8)) for host in NODES}  # 8 ranks per node from SLURM_GPUS_ON_NODE
    assert (tmp_path / "launcher.omp").read_text().strip() == "12"  # 96 CPUs / 8 ranks
    srun = (tmp_path / "srun.args").read_text().split("\0")
    assert "--ntasks-per-node=1" in srun and "--cpus-per-task=96" in srun  # srun 22.05 does not inherit it
    assert scheduler_calls(tmp_path) == ["scontrol show", "srun"]  # whatever the node count
    assert requeue_calls(tmp_path) == []


def test_usr1_at_128_nodes_reaches_the_ranks_then_one_requeue(tmp_path):
    proc = _start(tmp_path, NODES, SLURM_GPUS_ON_NODE="8")
    _wait_for(tmp_path / "rank.started", proc)
    os.kill(proc.pid, signal.SIGUSR1)  # what Slurm's --signal=B:USR1 does
    assert proc.wait(timeout=60) == 0, proc.stdout.read()  # the launcher would exit 138 had it died of USR1
    # the batch shell returned only after the rank had finished its checkpoint and exited
    assert (tmp_path / "rank.usr1").exists() and (tmp_path / "rank.exited").exists()
    assert requeue_calls(tmp_path) == ["4242"]
    assert scheduler_calls(tmp_path) == ["scontrol show", "srun", "scontrol requeue"]


def test_cpu_only_nodes_run_cpu_ranks(tmp_path):
    """No GPUs in the allocation: one CPU rank per node, or GPUS_PER_NODE of them."""
    proc = _start(tmp_path, NODES[:2], RANK_SECONDS="0", SLURM_CPUS_PER_TASK="16")
    assert proc.wait(timeout=60) == 0, proc.stdout.read()
    assert _world(_launcher_args(tmp_path)) == {NODES[0]: [0], NODES[1]: [0]}
    assert (tmp_path / "launcher.omp").read_text().strip() == "16"
    proc = _start(tmp_path, NODES[:2], RANK_SECONDS="0", SLURM_CPUS_PER_TASK="16", GPUS_PER_NODE="4")
    assert proc.wait(timeout=60) == 0, proc.stdout.read()
    assert _world(_launcher_args(tmp_path)) == {NODES[0]: [0, 1, 2, 3], NODES[1]: [0, 1, 2, 3]}
    assert (tmp_path / "launcher.omp").read_text().strip() == "4"


def test_bad_ranks_and_failed_steps(tmp_path):
    proc = _start(tmp_path, NODES[:2], GPUS_PER_NODE="0", SCALING_EXIT_FILE=str(tmp_path / "exit"))
    assert proc.wait(timeout=60) == 2
    assert "GPUS_PER_NODE=0: give the ranks per node as a whole number >= 1" in proc.stdout.read()
    assert (tmp_path / "exit").read_text().split() == ["2", "4242"]
    proc = _start(tmp_path, NODES[:2], RANK_SECONDS="0", RANK_STATUS="3", SCALING_EXIT_FILE=str(tmp_path / "exit"))
    assert proc.wait(timeout=60) == 3  # a failed step keeps its status and is not requeued
    assert requeue_calls(tmp_path) == [] and (tmp_path / "exit").read_text().split() == ["3", "4242"]
