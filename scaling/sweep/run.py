"""`scaling sweep run DIR`: a local sweep here, one run after another in dependency order, through each run's
job script (the DeepSpeed launcher, as a user would run it). Runs already done are skipped; a failed run's
dependants are skipped; an interrupted run continues (resume=auto)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from scaling.config import ConfigError
from scaling.sweep.status import run_status
from scaling.sweep.write import SPEC_FILE, read_runs


def run_sweep(out: Path, echo=print) -> int:
    """Returns the number of runs that failed (0: all done)."""
    out = out.resolve()
    rows = read_runs(out)
    spec = out / SPEC_FILE
    if spec.is_file() and (yaml.safe_load(spec.read_text()) or {}).get("scheduler") == "slurm":
        raise ConfigError(f"{out} is a slurm sweep: submit it with `bash {out / 'submit.sh'}` (scaling sweep run "
                          "runs scheduler: local sweeps here).")
    failed: set[str] = set()
    for i, r in enumerate(rows, start=1):
        name = r["run"]
        state, _ = run_status(out, name)
        if state == "done":
            echo(f"[{i}/{len(rows)}] {name}: done, skipped")
            continue
        if r["depends_on"] and r["depends_on"] in failed:
            echo(f"[{i}/{len(rows)}] {name}: skipped, its stage 1 {r['depends_on']} failed")
            failed.add(name)
            continue
        echo(f"[{i}/{len(rows)}] {name}: running (log: {out / 'logs' / (name + '.log')})")
        log, exit_file = out / "logs" / f"{name}.log", out / "logs" / f"{name}.exit"
        exit_file.unlink(missing_ok=True)
        with log.open("a") as f:
            code = subprocess.call(["bash", str(out / "jobs" / f"{name}.sh")], stdout=f, stderr=subprocess.STDOUT,
                                   env=_env())
        exit_file.write_text(f"{code}\n")
        state, detail = run_status(out, name)
        echo(f"[{i}/{len(rows)}] {name}: {state}{' ' + detail if detail else ''}")
        if state != "done":
            failed.add(name)
    return len(failed)


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "PYTHON": os.environ.get("PYTHON", sys.executable), "PYTHONUNBUFFERED": "1"}
