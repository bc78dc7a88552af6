"""`--protocol finetune`: the engine's `finetune` stage from the evaluated encoder, then its val accuracy.

The run config is a ready fine-tune config (configs/finetune/*.yaml: MAE's recipe) or the defaults, with
stage=finetune, data.train / data.val, init_from and model.name set from the arguments (key=value overrides
win). The engine validates on data.val after the last step (validation.py), on every rank, and writes
`val.json` in the fine-tune run dir; its numbers are the protocol's result. Under the launcher
(`deepspeed --module scaling.eval.cli ...`) every rank trains; rank 0 writes the outputs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scaling.config import ConfigError


def _weights_model(weights: str) -> tuple[str, str, Path | None]:
    """(init_from, model name or "", run dir whose summary gets the result) of `weights`."""
    if weights.startswith("random:"):
        return "", weights.split(":")[1], None
    path = Path(weights)
    if path.is_dir():
        from scaling.eval.encoder import _run_model

        return weights, _run_model(path)[0], path
    if path.is_file():
        from scaling.eval.encoder import _safetensors_metadata

        meta = _safetensors_metadata(path)
        source = Path(meta["source"]) if meta.get("source") else None
        run_dir = source if source is not None and (source / "summary.json").is_file() else None
        return weights, meta.get("model", ""), run_dir
    raise ConfigError(f"--weights {weights!r} does not exist: give an exported .safetensors file, a run directory, "
                      "or random:MODEL.")


def finetune(weights: str, train: str, val: str, config: str | None, overrides: list[str],
             model: str = "") -> tuple[dict[str, Any], dict[str, float], Path | None]:
    from scaling.engine.config import load_config
    from scaling.engine.trainer import train as run_training

    init_from, name, source_run = _weights_model(weights)
    base = ["stage=finetune", f"data.train={train}", f"data.val={val}", f"init_from={init_from}"]
    if model or name:
        base.append(f"model.name={model or name}")
    cfg = load_config(config, [*base, *overrides])
    summary = run_training(cfg)
    val_file = Path(cfg.run_dir) / "val.json"
    detail = json.loads(val_file.read_text()) if val_file.is_file() else {}
    result = {"model": cfg.model.name, "top1": summary["eval"].get("finetune_top1"),
              "top5": summary["eval"].get("finetune_top5"), "loss": summary["eval"].get("finetune_loss"),
              "per_class": detail.get("per_class", {}), "seeds": [cfg.seed], "finetune_run": cfg.run_dir,
              "settings": {"config": config, "overrides": [*base, *overrides], "total_samples": cfg.total_samples,
                           "layer_decay": cfg.optim.layer_decay, "drop_path": cfg.model.drop_path,
                           "global_pool": cfg.model.global_pool, "augment": _augment_settings(cfg)}}
    entries = {k: v for k, v in summary["eval"].items() if k in ("finetune_top1", "finetune_top5")}
    return result, entries, source_run


def _augment_settings(cfg: Any) -> dict[str, Any]:
    from scaling.config import to_dict

    return to_dict(cfg.augment) if hasattr(cfg, "augment") else {}
