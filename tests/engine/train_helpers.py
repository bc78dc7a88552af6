"""Helpers for the engine tests: run `scaling train` for real (a subprocess, or N ranks through the deepspeed
launcher). A module of its own (not conftest) so that `from train_helpers import ...` is unambiguous."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from scaling.engine.distributed import free_port as _free_port  # noqa: F401 (tests import it from here)

REPO = Path(__file__).resolve().parents[2]


def train_cmd(config: str, overrides: list[str], ranks: int = 1, module: str = "scaling.train") -> list[str]:
    """module: `faults` runs the trainer with the faults of $FAULTS patched in (tests/engine/faults.py)."""
    if ranks == 1:
        return [sys.executable, "-m", module, "--config", config, *overrides]
    launcher = [
        sys.executable,
        "-m",
        "deepspeed.launcher.runner",
        "--num_gpus",
        str(ranks),
        "--master_port",
        str(_free_port()),
    ]
    return [*launcher, "--module", module, "--config", config, *overrides]


def run_train(
    config: str,
    overrides: list[str],
    ranks: int = 1,
    check: bool = True,
    timeout: float = 600,
    faults: str = "",
) -> subprocess.CompletedProcess:
    """faults: e.g. "nan_loss@3:1" (tests/engine/faults.py) runs the trainer with that fault patched in."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    env.pop("RANK", None)
    if faults:
        here = str(Path(__file__).resolve().parent)
        env.update(FAULTS=faults, PYTHONPATH=os.pathsep.join(filter(None, [here, env.get("PYTHONPATH")])))
    proc = subprocess.run(
        train_cmd(config, overrides, ranks, module="faults" if faults else "scaling.train"),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"training failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def losses(run_dir: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
