"""What Slurm says about a sweep's jobs, in O(1) scheduler calls per sweep whatever its size and its jobs' ranks:
one `squeue` for every job of this user that slurmctld still knows (pending, running, requeued, and the ended ones
for MinJobAge after their end), and one `sacct` for recorded jobs that squeue no longer knows, where accounting is
on. Plus the two calls that change things, one per submitted or cancelled run: `sbatch` and `scancel`.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Job states in which a job will still run (or runs): a run with such a job is not submitted again.
ALIVE = frozenset({"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "COMPLETING",
                   "SUSPENDED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD", "SPECIAL_EXIT"})
FAILED = frozenset({"FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE"})
NEVER_STARTS = "DependencyNeverSatisfied"  # squeue's reason for a dependant whose parent failed or was cancelled


class SchedulerError(RuntimeError):
    """A Slurm command that failed: the message is its first error line."""


@dataclass(frozen=True)
class Job:
    id: str
    name: str
    state: str  # PENDING, RUNNING, COMPLETED, CANCELLED, FAILED, TIMEOUT, ...
    reason: str = ""  # squeue's: Priority, Resources, Dependency, DependencyNeverSatisfied, BeginTime, None ...
    exit_code: str = ""  # sacct's "0:0" (status:signal); "" from squeue
    restarts: int = 0  # requeues so far (squeue's RestartCnt)

    @property
    def alive(self) -> bool:
        return self.state in ALIVE

    @property
    def requeued(self) -> bool:
        """Stopped and requeued: Slurm holds it (Reason=BeginTime, ~2-3 minutes; RestartCnt > 0 before the reason
        is set) until it starts again."""
        return self.state.startswith("REQUEUE") or (self.state == "PENDING" and (self.reason == "BeginTime" or
                                                                                 self.restarts > 0))


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "(no message)")


SQUEUE_FORMAT = "JobID:|,Name:|,State:|,Reason:|,RestartCnt:"  # squeue -O: whole values, "|" after each


def parse_squeue(text: str) -> dict[str, Job]:
    """`squeue --noheader -O JobID:|,Name:|,State:|,Reason:|,RestartCnt:` lines -> job id -> Job."""
    jobs = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.strip().split("|")]
        if len(parts) >= 5 and parts[0]:
            job_id, name, state, reason, restarts = parts[:5]
            jobs[job_id] = Job(job_id, name, state, reason, restarts=int(restarts) if restarts.isdigit() else 0)
    return jobs


def parse_sacct(text: str) -> dict[str, Job]:
    """`sacct -X -n -P --format=JobID,JobName,State,ExitCode` lines -> job id -> Job. State "CANCELLED by 0" is
    CANCELLED; a requeued job's older records share its id and come first, so the last line wins."""
    jobs = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 4 and parts[0]:
            job_id, name, state, code = parts
            jobs[job_id] = Job(job_id, name, state.split()[0] if state else "", "", code)
    return jobs


class Slurm:
    """The scheduler commands, each run once per call; `calls` counts them (the scale tests read it)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def _run(self, argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
        self.calls.append(argv[0])
        try:
            return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise SchedulerError(f"{argv[0]}: {e}") from e

    @staticmethod
    def available() -> bool:
        return shutil.which("squeue") is not None

    def queue(self) -> dict[str, Job]:
        """Every job of this user slurmctld knows, in any state (one squeue)."""
        proc = self._run(["squeue", "--me", "--states=all", "--noheader", f"--Format={SQUEUE_FORMAT}"])
        if proc.returncode != 0:
            raise SchedulerError(f"squeue: {_first_line(proc.stderr)}")
        return parse_squeue(proc.stdout)

    def accounting(self, job_ids: list[str]) -> dict[str, Job]:
        """Final states of jobs squeue has forgotten (one sacct); {} where sacct is missing or accounting is off."""
        if not job_ids or shutil.which("sacct") is None:
            return {}
        proc = self._run(["sacct", "-X", "-n", "-P", "--format=JobID,JobName,State,ExitCode",
                          f"--jobs={','.join(job_ids)}"])
        return parse_sacct(proc.stdout) if proc.returncode == 0 else {}

    def submit(self, script: Path, cwd: Path, after: str = "") -> str:
        """sbatch SCRIPT (after job `after` succeeds, when given); returns the new job id."""
        argv = ["sbatch", "--parsable", *([f"--dependency=afterok:{after}"] if after else []), str(script)]
        proc = self._run(argv, cwd=cwd)
        job_id = proc.stdout.strip().split(";")[0]  # --parsable prints ID or ID;CLUSTER
        if proc.returncode != 0 or not job_id.isdigit():
            raise SchedulerError(f"sbatch {script.name}: {_first_line(proc.stderr or proc.stdout)}")
        return job_id

    def cancel(self, job_id: str) -> None:
        proc = self._run(["scancel", job_id])
        if proc.returncode != 0:
            raise SchedulerError(f"scancel {job_id}: {_first_line(proc.stderr)}")
