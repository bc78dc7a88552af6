"""Rank-0 logging: `metrics.jsonl` (one object per logged step), TensorBoard under `tb/`, a progress bar.

On resume, lines past the resumed step are dropped from metrics.jsonl first, so a run that crashed after
its last checkpoint does not log the replayed steps twice.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

METRIC_KEYS = (
    "step",
    "samples_seen",
    "loss",
    "lr",
    "grad_norm",
    "img_per_s",
    "tflops_per_device",
    "mfu",
    "mem_gb",
    "time",
)


def truncate_after(path: Path, step: int) -> None:
    if not path.is_file():
        return
    kept = [
        line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step
    ]
    path.write_text("".join(line + "\n" for line in kept))


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


class MetricsLogger:
    def __init__(self, run_dir: Path, enabled: bool, total_steps: int, start_step: int, desc: str) -> None:
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self._bar = self._tb = None
        if not enabled:
            return
        truncate_after(self.path, start_step)
        from torch.utils.tensorboard import SummaryWriter

        from scaling.engine.progress import progress_bar

        self._tb = SummaryWriter(str(run_dir / "tb"), purge_step=start_step + 1 if start_step else None)
        self._bar = progress_bar(total_steps, start_step, desc)  # plain lines when stderr is not a terminal
        self._file = self.path.open("a")
        self._start = time.time()

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()
        }
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)) and value is not None:
                self._tb.add_scalar(f"train/{key}", value, record["step"])
        postfix = {
            "loss": f"{record['loss']:.4f}" if record.get("loss") is not None else "nan",
            "img/s": f"{record.get('img_per_s') or 0:.0f}",
        }
        self._bar.set_postfix(postfix, refresh=False)

    def advance(self, steps: int = 1) -> None:
        if self.enabled:
            self._bar.update(steps)

    def close(self) -> None:
        if not self.enabled:
            return
        self._bar.close()
        self._tb.flush()
        self._tb.close()
        self._file.close()
