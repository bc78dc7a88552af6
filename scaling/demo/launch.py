"""Run one stage of a local sweep folder's jobs as `scaling sweep run` does (each run's job script: the
DeepSpeed launcher for 2 ranks, plain `python -m scaling.train` for 1), so the demo can report stage 1 before
stage 2. Finished runs are skipped; an interrupted one resumes (resume=auto)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from scaling.sweep.run import RunOutcome, run_sweep
from scaling.sweep.write import read_runs


class RunFailed(RuntimeError):
    pass


def run_jobs(sweep_dir: Path, stage: str, echo: Callable[[str], None], verbose: bool = False,
             jobs: int = 1) -> list[str]:
    """Runs every `stage` run of the folder not yet done, `jobs` at once; returns their names (sweep.csv order).
    A failure raises RunFailed with the run's last error line and its log, once the runs started have ended."""

    def report(i: int, n: int, o: RunOutcome) -> None:
        if o.state == "done before":
            echo(f"  [{i}/{n}] {o.name}: done before, skipped")
        elif o.state == "done":
            s = json.loads((sweep_dir / "runs" / o.name / "summary.json").read_text())
            echo(f"  [{i}/{n}] {o.name}: {s['samples_seen']:,} samples, loss {s['loss']:.4f}, {o.seconds:.0f} s")

    outcomes = run_sweep(sweep_dir, jobs=jobs, stages=(stage,), verbose=verbose, report=report, started=None)
    bad = [o for o in outcomes if o.state in ("failed", "skipped")]
    if bad:
        log = sweep_dir / "logs" / f"{bad[0].name}.log"
        raise RunFailed(f"run {bad[0].name} {bad[0].state} ({bad[0].detail}); its log: {log}")
    return [r["run"] for r in read_runs(sweep_dir) if r["stage"] == stage]
