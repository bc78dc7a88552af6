"""Consolidated weights from a run: ZeRO shards of the newest complete checkpoint -> one fp32 state dict."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from scaling.engine.checkpoint import CHECKPOINTS, complete_checkpoints, read_marker
from scaling.models.weights import WeightsError

log = logging.getLogger(__name__)


def consolidate_run(
    run_dir: str | Path, tag_dir: str | Path | None = None
) -> tuple[dict[str, torch.Tensor], dict]:
    """(full fp32 state dict with our model's key names, the checkpoint's marker) of a run directory."""
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    run_dir = Path(run_dir)
    if tag_dir is None:
        tags = complete_checkpoints(run_dir)
        if not tags:
            raise WeightsError(
                f"{run_dir} has no complete checkpoint under {CHECKPOINTS}/ (was the run started? "
                "did it save? checkpoints need COMPLETE.json)."
            )
        tag_dir = tags[-1]
    tag_dir = Path(tag_dir)
    log.info("consolidating %s", tag_dir)
    sd = get_fp32_state_dict_from_zero_checkpoint(str(tag_dir.parent), tag=tag_dir.name)
    return {k: v.float().contiguous() for k, v in sd.items()}, read_marker(tag_dir)
