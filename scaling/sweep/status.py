"""`scaling sweep status DIR`: per run done, running, failed (with its last error line) or missing.

done: summary.json of a finished run. failed: its job recorded a non-zero exit (logs/NAME.exit). running:
it has started (a log, metrics or a checkpoint) and not ended, or it was preempted and waits for its requeue.
missing: nothing yet.
"""

from __future__ import annotations

import json
from pathlib import Path

from scaling.sweep.write import read_runs


def _last_error(logs: list[Path]) -> str:
    for log in sorted(logs, key=lambda p: p.stat().st_mtime, reverse=True):
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        for ln in reversed(lines):
            if "error" in ln.lower() or "Traceback" in ln:
                return ln
        if lines:
            return lines[-1]
    return "(no log)"


def run_status(out: Path, name: str) -> tuple[str, str]:
    run_dir, logs_dir = out / "runs" / name, out / "logs"
    summary = run_dir / "summary.json"
    if summary.is_file():
        data = json.loads(summary.read_text())
        if not data.get("preempted"):
            return "done", f"{data.get('samples_seen')} samples, loss {data.get('loss')}"
    exit_file = logs_dir / f"{name}.exit"
    logs = sorted(logs_dir.glob(f"{name}.log")) + sorted(logs_dir.glob(f"{name}-*.out"))
    if exit_file.is_file() and exit_file.read_text().strip() not in ("", "0"):
        return "failed", f"exit {exit_file.read_text().strip()}: {_last_error(logs)}"
    if summary.is_file():
        return "running", "preempted; continues when requeued (resume=auto)"
    if logs or (run_dir / "metrics.jsonl").exists() or (run_dir / "checkpoints").exists():
        return "running", ""
    return "missing", ""


def sweep_status(out: Path) -> list[tuple[str, str, str]]:
    return [(r["run"], *run_status(out, r["run"])) for r in read_runs(out)]
