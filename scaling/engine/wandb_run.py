"""Weights & Biases, optional: `logging.wandb=PROJECT` sends the scalars of metrics.jsonl to a W&B run.

The run id lives in the checkpoint (TrainState.wandb_id), so a resumed or requeued job continues the same W&B
run (`resume="allow"`) instead of starting a new one (OpenCLIP fixed the same, their PR 344); W&B's own files
go to RUN_DIR/wandb/. `WANDB_MODE=offline` logs without a network (`wandb sync RUN_DIR/wandb/offline-run-*`
uploads later). `wandb` is an optional package (`pip install 'maws-scaling[wandb]'`): a run that asks for it
without it is refused at start, before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaling.config import ConfigError


@dataclass
class LoggingConfig:
    """The `logging:` section: where metrics go besides metrics.jsonl and tb/."""

    wandb: str = ""  # a W&B project name: the same scalars to Weights & Biases; "" off
    wandb_entity: str = ""  # the W&B team or user; "" is your default entity


def require_wandb(cfg: LoggingConfig) -> None:
    """A ConfigError, at the start of a run, when W&B is asked for and not installed."""
    if not cfg.wandb:
        return
    try:
        import wandb  # noqa: F401
    except ImportError as e:
        raise ConfigError(f"logging.wandb={cfg.wandb} needs the wandb package, which does not import here ({e}): "
                          "pip install 'maws-scaling[wandb]' (or pip install wandb), or drop logging.wandb.") from e


class WandbRun:
    """One W&B run for one training run (rank 0 only): started or continued by id, fed every logged record."""

    def __init__(self, cfg: LoggingConfig, run_dir: Path, run_id: str, hparams: dict[str, Any]) -> None:
        import wandb

        # a new run gets W&B's own id; a resumed one passes the checkpoint's, and W&B continues that run
        self._run = wandb.init(project=cfg.wandb, entity=cfg.wandb_entity or None, id=run_id or None,
                               resume="allow", name=run_dir.name, dir=str(run_dir), config=hparams)
        self.id = self._run.id

    def log(self, record: dict[str, Any]) -> None:
        scalars = {f"train/{k}": v for k, v in record.items()
                   if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)}
        self._run.log(scalars, step=int(record["step"]))

    def finish(self) -> None:
        self._run.finish()
