"""Rank-0 logging: `metrics.jsonl` (one object per logged step), TensorBoard under `tb/`, a progress bar.

On resume, lines past the resumed step are dropped from metrics.jsonl first, so a run that crashed after
its last checkpoint does not log the replayed steps twice.

HParams: a fresh run writes its hyperparameters (`hparams`: model, samples, recipe, lr, batch, seed, ...) as
the HParams plugin's session-start record into its own tb/ (not SummaryWriter.add_hparams, which opens a new
sub-folder per call), and a finished run its session-end record. No experiment record: the plugin then builds
one table from every run's session under `tensorboard --logdir SWEEP/runs`, with the scalars' last values
(train/loss, train/val/top1, ...) as the metric columns. A resume writes no second start record (the first
is before the purge step, so it survives).
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


def _hparams_summary(start: dict[str, Any] | None = None, end: bool = False):
    """The HParams plugin's session-start (hyperparameters) or session-end (status: success) summary."""
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    if end:
        info = plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS, end_time_secs=time.time())
        content, tag = plugin_data_pb2.HParamsPluginData(session_end_info=info), metadata.SESSION_END_INFO_TAG
    else:
        info = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time())
        for key, value in (start or {}).items():
            if isinstance(value, bool):
                info.hparams[key].bool_value = value
            elif isinstance(value, (int, float)):
                info.hparams[key].number_value = float(value)
            else:
                info.hparams[key].string_value = str(value)
        content, tag = plugin_data_pb2.HParamsPluginData(session_start_info=info), metadata.SESSION_START_INFO_TAG
    content.version = metadata.PLUGIN_DATA_VERSION
    meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name=metadata.PLUGIN_NAME,
                                                                  content=content.SerializeToString()))
    return Summary(value=[Summary.Value(tag=tag, metadata=meta)])


class MetricsLogger:
    """`wandb`: the logging section; with a project, every record also goes to W&B (wandb_run.py), continuing
    the run `wandb_id` (from the checkpoint) or a new one; `self.wandb_id` is the id to checkpoint."""

    def __init__(self, run_dir: Path, enabled: bool, total_steps: int, start_step: int, desc: str,
                 hparams: dict[str, Any] | None = None, wandb: Any = None, wandb_id: str = "") -> None:
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self._bar = self._tb = self._wandb = None
        self._total, self._step = total_steps, start_step
        self.wandb_id = wandb_id
        if not enabled:
            return
        if wandb is not None and wandb.wandb:
            from scaling.engine.wandb_run import WandbRun

            self._wandb = WandbRun(wandb, run_dir, wandb_id, hparams or {})
            self.wandb_id = self._wandb.id
        truncate_after(self.path, start_step)
        from torch.utils.tensorboard import SummaryWriter

        from scaling.engine.progress import progress_bar

        self._tb = SummaryWriter(str(run_dir / "tb"), purge_step=start_step + 1 if start_step else None)
        if hparams and not start_step:
            self._tb.file_writer.add_summary(_hparams_summary(hparams), 0)
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
        if self._wandb is not None:
            self._wandb.log(record)
        postfix = {
            "loss": f"{record['loss']:.4f}" if record.get("loss") is not None else "nan",
            "img/s": f"{record.get('img_per_s') or 0:.0f}",
        }
        self._bar.set_postfix(postfix, refresh=False)

    def advance(self, steps: int = 1) -> None:
        self._step += steps
        if self.enabled:
            self._bar.update(steps)

    def close(self) -> None:
        if not self.enabled:
            return
        if self._step >= self._total:  # finished: the session's end record (not on preemption or an error)
            self._tb.file_writer.add_summary(_hparams_summary(end=True), self._step)
        self._bar.close()
        self._tb.flush()
        self._tb.close()
        self._file.close()
        if self._wandb is not None:
            self._wandb.finish()
