"""`scaling sweep status DIR`: per run, what it is doing, from its files and (slurm sweeps) from Slurm itself.

States: done (summary.json of a finished run); running; queued (pending, or waiting for its stage 1); requeued
(preempted, held by Slurm until it starts again: Reason=BeginTime, ~2-3 minutes); blocked (waits on a stage 1 that
failed or was cancelled: it would never start; submit.sh resubmits both); cancelled (cancelled, or cut by a
preemption that was not requeued; its checkpoint is kept and submit.sh continues it); failed (with the first
meaningful error line of its log); new (not submitted yet).
Slurm is asked once per sweep (one squeue, and one sacct only for recorded jobs squeue has forgotten), never per
run or per rank. A run's job ids are in logs/RUN.jobs (written by submit.sh, the last one is current); its job
writes "STATUS JOBID" to logs/RUN.exit when its step ends, and an exit file of another job is not believed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaling.engine.finished import finished, last_records, read_summary
from scaling.sweep.slurm import FAILED, NEVER_STARTS, Job, SchedulerError, Slurm
from scaling.sweep.write import read_runs, read_spec

STATES = ("done", "running", "queued", "requeued", "blocked", "cancelled", "failed", "new")
# slurmstepd's line in a job's log when the job is cancelled or hits its time limit
_STEPD_END = re.compile(r"\*\*\* JOB (\d+) ON \S+ CANCELLED AT \S+(?: DUE TO ([A-Z ]+?))? \*\*\*")
# Lines that say only that something else failed: srun's "task 0: Exited with exit code 1", the launcher's
# "exits with return code", slurmstepd's notices.
_GENERIC = re.compile(r"^(srun: |slurmstepd: )|exits with return code|Exited with exit code|^Traceback")
_EXCEPTION = re.compile(r"^(?:[\w.]+\.)?\w*(?:Error|Exception|Interrupt|Diverged)\b: \S")


def jobs_file(out: Path, name: str) -> Path:
    return out / "logs" / f"{name}.jobs"


def recorded_jobs(out: Path, name: str) -> list[str]:
    path = jobs_file(out, name)
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()] if path.is_file() else []


def first_error(log: Path | None) -> str:
    """The first line of the log that says what went wrong: our one-line errors and exception lines first, then
    other lines with "error" that are not srun's, slurmstepd's or the launcher's generic ones; else its last line."""
    if log is None or not log.is_file():
        return "(no log)"
    fallback, last = "", ""
    with log.open(errors="replace") as f:
        for raw in f:
            for line in raw.split("\r"):
                line = line.strip()
                if not line:
                    continue
                last = line
                if line.startswith(("scaling train:", "slurm_train.sh:", "scaling sweep:")) or _EXCEPTION.match(line):
                    return line
                if not fallback and "error" in line.lower() and not _GENERIC.search(line):
                    fallback = line
    return fallback or last or "(empty log)"


@dataclass
class RunFacts:
    """What one run's files say."""

    name: str
    parent: str  # its stage-1 run, or ""
    summary: dict[str, Any] | None
    job_id: str  # the last job submitted for it ("" none)
    exit_status: int | None  # of that job (or of the local run), None when not ended or stale
    log: Path | None  # that job's log
    started: bool
    progress: str = ""  # ", step N (M samples)" from the end of metrics.jsonl


def run_facts(out: Path, row: dict[str, str]) -> RunFacts:
    name = row["run"]
    logs, run_dir = out / "logs", out / (row.get("run_dir") or f"runs/{name}")
    ids = recorded_jobs(out, name)
    job_id = ids[-1] if ids else ""
    exit_status = None
    exit_file = logs / f"{name}.exit"
    if exit_file.is_file():
        parts = exit_file.read_text().split()
        if parts and parts[0].lstrip("-").isdigit() and (len(parts) < 2 or parts[1] == job_id):
            exit_status = int(parts[0])
    log = logs / (f"{name}-{job_id}.out" if job_id else f"{name}.log")
    started = log.is_file() or (run_dir / "metrics.jsonl").exists() or (run_dir / "checkpoints").exists()
    last = (last_records(run_dir, 4096) or [{}])[-1]
    progress = f", step {last['step']} ({last.get('samples_seen')} of {row.get('samples')} samples)" if last else ""
    return RunFacts(name, row.get("depends_on", ""), read_summary(run_dir), job_id, exit_status,
                    log if log.is_file() else None, started, progress)


def _stepd_end(log: Path | None, job_id: str) -> str | None:
    """"CANCELLED" or the DUE TO reason ("TIME LIMIT", "PREEMPTION", "JOB REQUEUE") of this job's last slurmstepd
    end line; None when there is none."""
    if log is None:
        return None
    found = None
    with log.open(errors="replace") as f:
        for line in f:
            if "*** JOB" in line and (m := _STEPD_END.search(line)) and m.group(1) == job_id:
                found = m.group(2) or "CANCELLED"
    return found


def _progress(f: RunFacts) -> str:
    s = f.summary
    return f" at step {s.get('steps')} ({s.get('samples_seen')} samples)" if s else ""


def classify(f: RunFacts, job: Job | None) -> tuple[str, str]:
    """(state, detail) of one run from its files and its current job as Slurm reports it (None: not known)."""
    if finished(f.summary):
        loss = f.summary.get("loss")
        return "done", f"{f.summary.get('samples_seen')} samples, loss " + (
            f"{loss:.4f}" if isinstance(loss, (int, float)) else str(loss))
    jid = f"job {f.job_id}"
    if job is not None and job.alive:
        if job.state == "PENDING" and job.reason == NEVER_STARTS:
            return "blocked", f"{jid} waits on stage 1 {f.parent or '?'}, which did not finish: it will never " \
                              "start; run submit.sh again (it resubmits both)"
        if job.requeued:
            return "requeued", f"{jid}, stopped{_progress(f)}; Slurm holds a requeued job ~2-3 minutes, then it " \
                               "resumes from its checkpoint"
        if job.state == "PENDING":
            waits = f", waits for stage 1 {f.parent}" if job.reason == "Dependency" and f.parent else ""
            return "queued", f"{jid} ({job.reason or 'pending'}){waits}"
        return "running", f"{jid} ({job.state.lower()}){f.progress}"
    ended = job.state if job is not None else ""
    stepd = _stepd_end(f.log, f.job_id) if f.job_id and not ended else None
    if ended == "TIMEOUT" or stepd == "TIME LIMIT":
        return "failed", f"{jid} reached its time limit{_progress(f)} before its checkpoint was requeued: raise " \
                         "slurm.time or slurm.signal_seconds, then run submit.sh again"
    if ended == "CANCELLED" or stepd == "CANCELLED":
        return "cancelled", f"{jid} cancelled{_progress(f)}; run submit.sh again to continue it"
    if f.exit_status not in (None, 0):
        return "failed", f"exit {f.exit_status}: {first_error(f.log)}"
    if ended in FAILED:
        return "failed", f"{jid} {ended.lower()} (exit {job.exit_code or '?'}): {first_error(f.log)}"
    if f.summary is not None:  # preempted, and no job will continue it
        return "cancelled", f"stopped{_progress(f)} and not requeued; run submit.sh (or sweep run) again to " \
                            "continue it"
    if f.job_id and (ended or f.started or f.exit_status is not None):
        return "failed", f"{jid} ended without finishing: {first_error(f.log)}"
    if f.job_id:
        return "failed", f"{jid} is no longer known to Slurm and left no log; run submit.sh again"
    if f.started:  # a local run: its log exists and it has not ended
        return "running", f.progress.lstrip(", ")
    return "new", ""


def _scheduler(out: Path) -> str:
    return str(read_spec(out).get("scheduler", "slurm"))


def run_state(out: Path, row: dict[str, str]) -> tuple[str, str]:
    """One run's (state, detail) from its files alone (a local sweep: no scheduler to ask)."""
    return classify(run_facts(out, row), None)


def sweep_status(out: Path, slurm: Slurm | None = None) -> list[tuple[str, str, str]]:
    """(run, state, detail) per run of the sweep in `out`, in sweep.csv order. Slurm sweeps ask `slurm`
    (a Slurm() when None and squeue is installed) once for the whole sweep."""
    facts = [run_facts(out, row) for row in read_runs(out)]
    jobs: dict[str, Job] = {}
    if _scheduler(out) == "slurm" and any(f.job_id for f in facts):
        slurm = slurm or (Slurm() if Slurm.available() else None)
        if slurm is not None:
            try:
                jobs = slurm.queue()
                gone = [f.job_id for f in facts if f.job_id and f.job_id not in jobs and not finished(f.summary)]
                jobs.update(slurm.accounting(gone))
            except SchedulerError:
                jobs = {}  # Slurm is down: say what the files say
    return [(f.name, *classify(f, jobs.get(f.job_id))) for f in facts]
