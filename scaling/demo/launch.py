"""Run some of a local sweep folder's jobs, in its order, as `scaling sweep run` does (each job script: the
DeepSpeed launcher for 2 ranks, plain `python -m scaling.train` for 1), but one stage at a time so the demo
can report stage 1 before stage 2. Finished runs are skipped; an interrupted one resumes (resume=auto)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from scaling.sweep.status import run_status
from scaling.sweep.write import read_runs

# The job scripts run ${PYTHON:-python}: this interpreter, whatever is on PATH.
_ENV = {**os.environ, "PYTHON": sys.executable, "PYTHONUNBUFFERED": "1"}


class RunFailed(RuntimeError):
    pass


def run_jobs(sweep_dir: Path, stage: str, echo: Callable[[str], None], verbose: bool = False) -> list[str]:
    """Runs every `stage` run of the folder not yet done; returns their names. A failure raises RunFailed
    with the run's last error line and its log."""
    rows = [r for r in read_runs(sweep_dir) if r["stage"] == stage]
    for i, row in enumerate(rows, start=1):
        name = row["run"]
        if run_status(sweep_dir, name)[0] == "done":
            echo(f"  [{i}/{len(rows)}] {name}: done before, skipped")
            continue
        log, exit_file = sweep_dir / "logs" / f"{name}.log", sweep_dir / "logs" / f"{name}.exit"
        exit_file.unlink(missing_ok=True)
        start = time.perf_counter()
        with log.open("a") as f:
            proc = subprocess.Popen(["bash", str(sweep_dir / "jobs" / f"{name}.sh")], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, env=_ENV, text=True)
            try:
                for line in proc.stdout:  # to the log always, to the terminal with --verbose
                    f.write(line)
                    if verbose:
                        sys.stdout.write(line)
                code = proc.wait()
            except BaseException:  # Ctrl-C or SIGTERM: the run checkpoints at its next step and stops with us
                proc.terminate()
                proc.wait(timeout=120)
                raise
        exit_file.write_text(f"{code}\n")
        state, detail = run_status(sweep_dir, name)
        if state != "done":
            raise RunFailed(f"run {name} failed ({detail}); its log: {log}")
        summary = json.loads((sweep_dir / row["run_dir"] / "summary.json").read_text())
        echo(f"  [{i}/{len(rows)}] {name}: {summary['samples_seen']:,} samples, loss {summary['loss']:.4f}, "
             f"{time.perf_counter() - start:.0f} s")
    return [r["run"] for r in rows]
