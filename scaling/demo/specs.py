"""The two sweep specs the demo writes into its folder (the same format as jobs/sweeps/*.yaml): the main
comparison (one model, MAE -> WSP vs WSP from random init, N seeds) and the small scaling sweep.
The demo's configs are named here only."""

from __future__ import annotations

from pathlib import Path

import yaml

from scaling.demo.settings import DemoSettings

CONFIGS = {"mae": "demo/mae", "wsp": "demo/wsp"}  # ready recipes by name, found wherever the package is
SWEEP_LOG_EVERY = 16  # the sweep reads only each run's end (val top-1): few logged steps


def _data(shards: Path) -> list[str]:
    return [f"data.train={shards / 'train'}", f"data.val={shards / 'val'}"]


def compare_spec(s: DemoSettings, shards: Path) -> dict:
    # 2 ranks: each takes 32 of the configs' global batch of 64 (MAE and classifier alike).
    ranks = ["batch.micro_batch=32"] if s.ranks == 2 else []
    return {"name": "demo_compare", "scheduler": "local", "gpu": "h100", "gpus": s.ranks, "models": [s.model],
            "samples": [s.stage2_samples], "recipes": ["mae_wsp", "wsp"], "stage1_samples": s.stage1_samples,
            "seeds": list(range(s.seeds)), "configs": CONFIGS, "overrides": _data(shards) + ranks}


def sweep_spec(s: DemoSettings, shards: Path) -> dict:
    # One process per run (gpus: 1): at these sizes a second rank costs more start-up than it saves.
    return {"name": "demo_sweep", "scheduler": "local", "gpu": "h100", "gpus": 1, "models": s.sweep_models,
            "samples": s.sweep_samples, "recipes": ["mae_wsp", "wsp"], "stage1_samples": s.sweep_stage1_samples,
            "seeds": [0], "configs": CONFIGS, "overrides": [*_data(shards), f"log_every={SWEEP_LOG_EVERY}"]}


def write_spec(spec: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = f"# Written by `scaling demo`; run it alone with: scaling sweep {path} --out DIR\n"
    text += yaml.safe_dump(spec, sort_keys=False)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    return path
