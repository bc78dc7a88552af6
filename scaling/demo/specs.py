"""The two sweep specs the demo writes into its folder (the same format as jobs/sweeps/*.yaml): the main
comparison (one model, MAE -> WSP vs WSP from random init, N seeds) and the small scaling sweep."""

from __future__ import annotations

from pathlib import Path

import yaml

from scaling.demo.settings import DemoSettings, sweep_overrides

CONFIGS = {"mae": "tiny/mae", "wsp": "tiny/wsp"}  # ready recipes by name, found wherever the package is


def _common(s: DemoSettings, shards: Path, eval_every_step: bool) -> list[str]:
    return [f"data.train={shards}", "data.num_classes=0", "batch.micro_batch=32", "batch.grad_accum=0",
            f"batch.global_batch={s.global_batch}", f"log_every={s.log_every if eval_every_step else 4}"]


def compare_spec(s: DemoSettings, shards: Path) -> dict:
    return {"name": "demo_compare", "scheduler": "local", "gpu": "h100", "gpus": s.ranks, "models": [s.model],
            "samples": [s.stage2_samples], "recipes": ["mae_wsp", "wsp"], "stage1_samples": s.stage1_samples,
            "seeds": list(range(s.seeds)), "configs": CONFIGS, "overrides": _common(s, shards, True)}


def sweep_spec(s: DemoSettings, shards: Path) -> dict:
    # One process per run (gpus: 1): at these sizes a second rank costs more start-up than it saves.
    overrides = {m: sweep_overrides(m) for m in s.sweep_models if sweep_overrides(m)}
    return {"name": "demo_sweep", "scheduler": "local", "gpu": "h100", "gpus": 1, "models": s.sweep_models,
            "model_overrides": overrides, "samples": s.sweep_samples, "recipes": ["mae_wsp", "wsp"],
            "stage1_samples": s.sweep_stage1_samples, "seeds": [0], "configs": CONFIGS,
            "overrides": _common(s, shards, False)}


def write_spec(spec: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = f"# Written by `scaling demo`; run it alone with: scaling sweep {path} --out DIR\n"
    text += yaml.safe_dump(spec, sort_keys=False)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    return path
