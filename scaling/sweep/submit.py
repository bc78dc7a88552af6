"""`scaling sweep submit DIR` (what a slurm sweep's submit.sh runs): sbatch every run that needs a job, idempotently.

One `squeue` first; then, in sweep.csv order (each stage 1 before its dependants), per run:
- done (summary.json of a finished run): nothing; its dependants need no dependency on it;
- its last recorded job is pending, running or requeued: kept, unless it depends on a stage 1 that has just been
  submitted again, or waits on one that failed (DependencyNeverSatisfied): then that job is cancelled and the run
  submitted again after the new stage 1, so no job is left orphaned in the queue;
- else: sbatch (with --dependency=afterok on its stage 1's current job, if that is not done), and the new job id
  is appended to logs/RUN.jobs at once, before the next sbatch.
A refusal part-way (a QOS limit, a typo in a partition) stops with the error; the jobs already submitted are
recorded, so running submit.sh again submits only the rest. A job whose id never reached the record (a crash just
after sbatch) is found by its name in the same squeue answer and adopted, not duplicated. One submit at a time per
sweep (a lock file). Scheduler calls: 1 squeue + 1 sbatch per submitted run + 1 scancel per replaced job.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass, field
from pathlib import Path

from scaling.config import ConfigError
from scaling.engine.finished import finished, read_summary
from scaling.sweep.jobs import job_name
from scaling.sweep.slurm import NEVER_STARTS, Job, SchedulerError, Slurm
from scaling.sweep.status import jobs_file, recorded_jobs
from scaling.sweep.write import read_runs, read_spec


@dataclass
class Plan:
    """What one submit did (or, for a dry run, would do), per run name."""

    kept: dict[str, str] = field(default_factory=dict)  # run -> its live job
    submitted: dict[str, str] = field(default_factory=dict)  # run -> new job
    cancelled: dict[str, str] = field(default_factory=dict)  # run -> job cancelled (orphaned by its stage 1)
    done: list[str] = field(default_factory=list)


def _record(out: Path, name: str, job_id: str) -> None:
    """Append the job id to logs/RUN.jobs and make it durable before anything else is submitted."""
    path = jobs_file(out, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(job_id + "\n")
        f.flush()
        os.fsync(f.fileno())


def _current_job(out: Path, name: str, job_name: str, queue: dict[str, Job]) -> Job | None:
    """The run's live job: its last recorded one, or one of its name that no record holds (adopted)."""
    ids = recorded_jobs(out, name)
    if ids and ids[-1] in queue and queue[ids[-1]].alive:
        return queue[ids[-1]]
    strays = [j for j in queue.values() if j.name == job_name and j.alive and j.id not in ids]
    if strays:
        job = max(strays, key=lambda j: int(j.id))
        _record(out, name, job.id)
        return job
    return None


def submit_sweep(out: Path, slurm: Slurm, say=print) -> Plan:
    """Bring the sweep in `out` to: every run done or with one live job, dependants after their stage 1's job."""
    out = out.resolve()
    rows = read_runs(out)
    sweep = str(read_spec(out).get("name", "sweep"))
    plan = Plan()
    with _lock(out):
        queue = slurm.queue()
        current: dict[str, str] = {}  # run -> the job its dependants wait for
        for row in rows:
            name, parent = row["run"], row.get("depends_on", "")
            if finished(read_summary(out / row["run_dir"])):
                plan.done.append(name)
                continue
            job = _current_job(out, name, job_name(sweep, name), queue)
            replaced_parent = parent in plan.submitted
            if job is not None and not replaced_parent and job.reason != NEVER_STARTS:
                plan.kept[name] = current[name] = job.id
                say(f"{name}: job {job.id} {_said(job)}; kept")
                continue
            if job is not None:
                why = "its stage 1 was submitted again" if replaced_parent else "its stage 1 did not finish"
                slurm.cancel(job.id)
                plan.cancelled[name] = job.id
                say(f"{name}: cancelled job {job.id} ({why})")
            after = current.get(parent, "") if parent else ""
            try:
                job_id = slurm.submit(out / "jobs" / f"{name}.sh", cwd=out, after=after)
            except SchedulerError as e:
                left = len(rows) - len(plan.done) - len(plan.kept) - len(plan.submitted)
                raise SchedulerError(f"{e}. {len(plan.submitted)} runs submitted and recorded before it, {left} "
                                     "left: fix the cause and run submit.sh again (it submits only those)") from e
            _record(out, name, job_id)
            plan.submitted[name] = current[name] = job_id
            say(f"{name}: job {job_id}" + (f" (after stage 1 job {after})" if after else ""))
    return plan


def _said(job: Job) -> str:
    return "requeued" if job.state == "PENDING" and job.requeued else job.state.lower()  # REQUEUE_HOLD: as is


class _lock:
    """An exclusive lock on DIR/.submit.lock: two submits at once would both see a run without a job."""

    def __init__(self, out: Path) -> None:
        self.path = out / ".submit.lock"

    def __enter__(self) -> None:
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            os.close(self.fd)
            raise ConfigError(f"another submit.sh is running on {self.path.parent}; wait for it to end") from e

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
