"""`scaling sweep run DIR [--jobs N]`: a local sweep here, through each run's job script (the DeepSpeed launcher
or plain python, as a user would run it), up to N runs at once. A run starts once the stage 1 it starts from is
done. Runs already done are skipped; a failed run's dependants are skipped; an interrupted run continues
(resume=auto).

With N > 1 each run gets its own MASTER_PORT (two launchers on one port would collide), its share of the CPU
cores (OMP_NUM_THREADS, unless you set it) and, on a GPU machine, its own GPU (CUDA_VISIBLE_DEVICES): so N > 1
takes one-GPU runs only there, since the DeepSpeed launcher's --num_gpus ignores CUDA_VISIBLE_DEVICES.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from scaling.config import ConfigError
from scaling.engine.distributed import free_port
from scaling.sweep.status import run_state
from scaling.sweep.write import SPEC_FILE, read_runs


@dataclass
class RunOutcome:
    name: str
    state: str  # "done", "done before" (skipped), "failed", or "skipped" (its stage 1 failed or is not done)
    detail: str = ""
    seconds: float = 0.0


def _print_outcome(i: int, n: int, o: RunOutcome) -> None:
    what = {"done before": "done, skipped", "skipped": f"skipped, {o.detail}"}.get(o.state)
    if what is None:
        what = f"{o.state}{' ' + o.detail if o.detail else ''} ({o.seconds:.0f} s)"
    print(f"[{i}/{n}] {o.name}: {what}", flush=True)


def _print_start(i: int, n: int, name: str, log: Path) -> None:
    print(f"[{i}/{n}] {name}: running (log: {log})", flush=True)


@dataclass
class _Running:
    proc: subprocess.Popen
    copier: threading.Thread | None
    log: object
    start: float
    slot: int


def gpu_ids() -> list[str]:
    """The GPUs a job here may use: CUDA_VISIBLE_DEVICES when set, else one per /dev/nvidiaN (none on CPU)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d for d in visible.split(",") if d.strip()]
    return sorted((p.name[6:] for p in Path("/dev").glob("nvidia[0-9]*")), key=int)


def check_jobs(out: Path, jobs: int) -> tuple[list[str], int]:
    """Refuses a --jobs that would make runs share devices. Returns the GPU ids to hand out (empty on CPU) and the
    processes of one run (its ranks: spec `gpus`, which on a CPU machine are CPU ranks)."""
    if jobs < 1:
        raise ConfigError(f"--jobs {jobs}: give 1 or more runs at once.")
    spec_path = out / SPEC_FILE
    spec = (yaml.safe_load(spec_path.read_text()) or {}) if spec_path.is_file() else {}
    if spec.get("scheduler") == "slurm":
        raise ConfigError(f"{out} is a slurm sweep: submit it with `bash {out / 'submit.sh'}` (scaling sweep run "
                          "runs scheduler: local sweeps here).")
    gpus = gpu_ids() if jobs > 1 else []
    if gpus and int(spec.get("gpus", 1)) > 1:
        raise ConfigError(f"--jobs {jobs} with gpus: {spec['gpus']} per run: the DeepSpeed launcher's --num_gpus "
                          "ignores CUDA_VISIBLE_DEVICES, so runs would share GPUs; use --jobs 1 (or gpus: 1).")
    if gpus and jobs > len(gpus):
        raise ConfigError(f"--jobs {jobs} needs one GPU per run and {len(gpus)} are visible; use --jobs "
                          f"{len(gpus)} or fewer.")
    return gpus, max(1, int(spec.get("gpus", 1)))


def _job_env(jobs: int, slot: int, gpus: list[str], ranks: int) -> dict[str, str]:
    env = {**os.environ, "PYTHON": os.environ.get("PYTHON", sys.executable), "PYTHONUNBUFFERED": "1"}
    if jobs > 1:
        env["MASTER_PORT"] = str(free_port())
        # Every process of every run gets its share of the cores (CPU ranks: jobs x ranks processes).
        share = len(os.sched_getaffinity(0)) // (jobs * (1 if gpus else ranks))
        env.setdefault("OMP_NUM_THREADS", str(max(1, share)))
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[slot]
    return env


def _start(out: Path, name: str, env: dict[str, str], verbose: bool) -> tuple[subprocess.Popen, threading.Thread |
                                                                                 None, object]:
    log = (out / "logs" / f"{name}.log").open("a")
    job = ["bash", str(out / "jobs" / f"{name}.sh")]
    if not verbose:
        return subprocess.Popen(job, stdout=log, stderr=subprocess.STDOUT, env=env), None, log
    proc = subprocess.Popen(job, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)

    def copy() -> None:  # to the log always, to the terminal too with --verbose
        for line in proc.stdout:
            log.write(line)
            sys.stdout.write(line)

    copier = threading.Thread(target=copy, daemon=True)
    copier.start()
    return proc, copier, log


def run_sweep(out: Path, jobs: int = 1, stages: tuple[str, ...] = (), verbose: bool = False,
              report: Callable[[int, int, RunOutcome], None] = _print_outcome,
              started: Callable[[int, int, str, Path], None] | None = _print_start) -> list[RunOutcome]:
    """Runs the folder's runs (only those of `stages` when given) that are not done yet, up to `jobs` at once,
    in sweep.csv order as far as dependencies allow. Returns one outcome per run, in the order they ended."""
    out = out.resolve()
    gpus, ranks = check_jobs(out, jobs)
    rows = [r for r in read_runs(out) if not stages or r["stage"] in stages]
    index = {r["run"]: i for i, r in enumerate(rows, start=1)}
    running: dict[str, _Running] = {}
    ended: dict[str, str] = {}  # run -> the state it ended in
    outcomes: list[RunOutcome] = []
    (out / "logs").mkdir(exist_ok=True)

    def end(o: RunOutcome) -> None:
        outcomes.append(o)
        ended[o.name] = o.state
        report(index[o.name], len(rows), o)

    by_name = {r["run"]: r for r in read_runs(out)}
    pending = []
    for row in rows:  # each run's files are read once here, not at every poll below
        if run_state(out, row)[0] == "done":
            end(RunOutcome(row["run"], "done before"))
        else:
            pending.append(row)
    waiting = {r["run"] for r in pending}
    try:
        while pending or running:
            for row in list(pending):
                name, dep = row["run"], row["depends_on"]
                if dep and ended.get(dep) in ("failed", "skipped"):
                    skip = f"its stage 1 {dep} {ended[dep]}"
                elif dep and (dep in running or dep in waiting):
                    continue  # waits for its stage 1
                elif dep and dep not in ended and run_state(out, by_name[dep])[0] != "done":  # a stage not run here
                    skip = f"its stage 1 {dep} is not done (run that stage first)"
                elif len(running) == jobs:
                    break
                else:
                    skip = ""
                pending.remove(row)
                waiting.discard(name)
                if skip:
                    end(RunOutcome(name, "skipped", skip))
                    continue
                slot = min(set(range(jobs)) - {r.slot for r in running.values()})
                (out / "logs" / f"{name}.exit").unlink(missing_ok=True)
                proc, copier, log = _start(out, name, _job_env(jobs, slot, gpus, ranks), verbose)
                running[name] = _Running(proc, copier, log, time.perf_counter(), slot)
                if started:
                    started(index[name], len(rows), name, out / "logs" / f"{name}.log")
            for name, r in list(running.items()):
                code = r.proc.poll()
                if code is None:
                    continue
                if r.copier:
                    r.copier.join()
                r.log.close()
                del running[name]
                (out / "logs" / f"{name}.exit").write_text(f"{code}\n")
                state, detail = run_state(out, by_name[name])
                end(RunOutcome(name, "done" if state == "done" else "failed", detail, time.perf_counter() - r.start))
            if running:
                time.sleep(0.1)
    except BaseException:  # Ctrl-C or SIGTERM: each running job checkpoints at its next step and stops with us
        for r in running.values():
            r.proc.terminate()
        for r in running.values():
            try:
                r.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                r.proc.kill()
        raise
    return outcomes
