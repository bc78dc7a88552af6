"""Small sweep specs for the sweep tests (tiny models, synthetic data)."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
BASE = {"name": "t", "scheduler": "local", "gpu": "h100", "gpus": 1,
        "models": ["vit_nano_patch4", "vit_micro_patch4", "vit_tiny_patch16"],
        "model_overrides": {"vit_tiny_patch16": ["model.img_size=64"]},
        "samples": [256, 512, 1024], "recipes": ["mae_wsp", "wsp"], "stage1_samples": 512, "seeds": [0],
        "configs": {"mae": "configs/tiny/mae.yaml", "wsp": "configs/tiny/wsp.yaml"},
        "overrides": ["data.train=synthetic", "batch.micro_batch=32", "batch.grad_accum=1"]}


def write_spec(path: Path, **changes) -> Path:
    spec = {**BASE, **changes}
    spec = {k: v for k, v in spec.items() if v is not None}
    spec["model_overrides"] = {m: o for m, o in spec.get("model_overrides", {}).items() if m in spec["models"]}
    path.write_text(yaml.safe_dump(spec))
    return path
