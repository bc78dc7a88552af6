"""A real one-node Slurm for the slow tests (tools/slurm_one_node.sh), and helpers to submit and watch jobs.

`one_node_slurm()` starts it when it is not running (root only; apt installs slurm-wlm and munge when
missing) and says whether this call started it, so the fixture that called it stops it again. Tests skip, with
the reason, only where Slurm cannot be installed or started by this user.
Requeued jobs: Slurm holds them ~2-3 minutes (Reason=BeginTime, until the old job credential expires); a test
checks that state and then releases the job with `scontrol update JobId=N StartTime=now`, 3 s after it saw the
requeue (a start in the same second as the requeue is refused: "Job credential revoked", the job ends FAILED).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from scaling.engine.distributed import free_port

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "slurm_one_node.sh"
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
         "PREEMPTED"}


def one_node_slurm() -> bool:
    """Make sure the one-node Slurm runs; True when this call started it. pytest.skip where it cannot run."""
    if subprocess.run(["bash", str(SCRIPT), "status"], capture_output=True).returncode == 0:
        return False
    if os.geteuid() != 0:
        pytest.skip("a real one-node Slurm needs root to start munged, slurmctld and slurmd (tools/slurm_one_node.sh)")
    if not shutil.which("slurmctld") and not shutil.which("apt-get"):
        pytest.skip("Slurm is not installed and cannot be (no apt-get): install slurm-wlm and munge")
    # The daemons close inherited files, so running this under `flock LOCK pytest ...` does not keep LOCK held.
    proc = subprocess.run(["bash", str(SCRIPT), "up"], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0 and not shutil.which("slurmctld"):
        pytest.skip(f"Slurm could not be installed here: {(proc.stderr or proc.stdout).strip()[-300:]}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return True


def stop_slurm() -> None:
    subprocess.run(["bash", str(SCRIPT), "down"], capture_output=True, timeout=120)


@pytest.fixture(scope="module", name="slurm")
def slurm_fixture():
    """`slurm`: the one-node Slurm for a test module (import slurm_fixture there); stopped after the module when
    it started it."""
    started = one_node_slurm()
    yield
    if started:
        stop_slurm()


def job_env(**extra: str) -> dict[str, str]:
    """The environment sbatch passes to the job (--export=ALL): this venv first on PATH, its interpreter as
    PYTHON, one thread per rank, a free port."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
           "PYTHON": sys.executable, "PYTHONUNBUFFERED": "1", "MASTER_PORT": str(free_port())}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "GPUS_PER_NODE", "OMP_NUM_THREADS", "SLURM_JOB_ID"):
        env.pop(key, None)
    env.update(extra)
    return env


def sbatch(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> str:
    proc = subprocess.run(["sbatch", "--parsable", *args], cwd=cwd, env=env or job_env(), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().split(";")[0]


def job(job_id: str) -> dict[str, str]:
    """`scontrol show job -o ID` as a dict (JobState, Reason, Restarts, ExitCode, ...); {} once it is gone."""
    proc = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        return {}
    fields = {}
    for item in proc.stdout.split():
        key, _, value = item.partition("=")
        fields.setdefault(key, value)
    return fields


def wait_for(what: Callable[[], object], timeout: float, message: str, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        got = what()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s: {message}"
        time.sleep(every)


def wait_state(job_id: str, states: set[str], timeout: float = 600) -> dict[str, str]:
    def state():
        info = job(job_id)
        return info if info.get("JobState") in states else None
    return wait_for(state, timeout, f"job {job_id} never reached {sorted(states)} (now {job(job_id)})")


def wait_ended(job_id: str, timeout: float = 600) -> dict[str, str]:
    return wait_state(job_id, ENDED, timeout)


def release_requeued(job_id: str, timeout: float = 120, *updates: str) -> dict[str, str]:
    """Wait until the job is requeued (PENDING, Restarts >= 1, Reason=BeginTime: Slurm's hold until the old credential
    expires), then start it now (with `updates`, e.g. TimeLimit=20, in the same call). Returns the state it saw."""
    def requeued():  # right after the requeue the reason is None for a moment, then BeginTime (the hold)
        info = job(job_id)
        return info if info.get("JobState") == "PENDING" and int(info.get("Restarts", "0")) >= 1 and \
            info.get("Reason") == "BeginTime" else None
    seen = wait_for(requeued, timeout, f"job {job_id} was not requeued (now {job(job_id)})")
    # slurmd refuses a start whose credential is from the second of the requeue ("Job credential revoked": the job
    # ends FAILED); a few seconds later StartTime=now is safe.
    time.sleep(3)
    subprocess.run(["scontrol", "update", f"JobId={job_id}", *updates, "StartTime=now"], check=True, timeout=30)
    return seen


def metrics(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def wait_steps(run: Path, steps: int, job_id: str, timeout: float = 600) -> None:
    def logged():
        state = job(job_id).get("JobState")
        assert state not in ENDED, f"job {job_id} ended ({state}) before step {steps}"
        return len(metrics(run)) >= steps
    wait_for(logged, timeout, f"{run} never logged {steps} steps", every=0.3)


def tree_state(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under root: its bytes and mtime (ns)."""
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))
            if p.is_file()}
