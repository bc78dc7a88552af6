"""Fixtures for the scaling-law tests: the shared reference data (skipped with a reason where absent),
synthetic results tables and run directories."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from scaling.laws.table import write_table

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def shared_file(name: str) -> Path:
    path = SHARED / name
    if not path.is_file():
        pytest.skip(
            f"reference data {path} is absent (it lives beside the checkout in ../shared/data; see "
            f"its README for the public source)"
        )
    return path


def synthetic_results(
    path: Path,
    seed: int = 0,
    recipes: dict[str, float] | None = None,
    n: int = 12,
    b: float = -0.12,
    noise: float = 0.01,
) -> Path:
    """A results table of `n` runs per recipe whose linear_top1 error follows a_r C^b with log-noise."""
    rng = np.random.default_rng(seed)
    recipes = recipes or {"wsp": 60.0, "mae_wsp": 45.0}
    rows = []
    for recipe, a in recipes.items():
        for i, c in enumerate(np.geomspace(1e19, 1e22, n)):
            params = 1e8 * (c / 1e19) ** 0.5
            err = a * c**b * np.exp(noise * rng.standard_normal())
            base = {
                "run": f"{recipe}_{i:02d}",
                "model": f"vit_{i}",
                "params": params,
                "samples": c / (6 * params),
                "flops": c,
                "recipe": recipe,
            }
            rows.append({**base, "metric": "linear_top1", "value": 1 - err})
            rows.append({**base, "metric": "loss", "value": 2.0 + 30 * c**-0.1})
    write_table(rows, path)
    return path


def make_run_dir(
    root: Path,
    name: str,
    params: float,
    samples: int,
    flops: float,
    loss: float,
    recipe: str | None = "mae_wsp",
    evals: dict | None = None,
    steps: int = 200,
    eval_files: list[dict] | None = None,
) -> Path:
    """A run directory as `scaling train` leaves it: summary.json, metrics.jsonl, optional eval/*.json."""
    d = root / name
    d.mkdir(parents=True)
    summary = {
        "run": name,
        "stage": "wsp",
        "model": "vit_tiny_patch16",
        "params": params,
        "samples_seen": samples,
        "flops": flops,
        "loss": loss,
        "eval": evals or {},
    }
    if recipe is not None:
        summary["recipe"] = recipe
    (d / "summary.json").write_text(json.dumps(summary))
    lr = np.where(
        np.arange(1, steps + 1) <= 20,
        1e-3 * np.arange(1, steps + 1) / 20,
        1e-3 * 0.5 * (1 + np.cos(np.pi * (np.arange(1, steps + 1) - 20) / (steps - 20))),
    )
    with (d / "metrics.jsonl").open("w") as fh:
        for s in range(1, steps + 1):
            fh.write(
                json.dumps(
                    {
                        "step": s,
                        "samples_seen": 32 * s,
                        "loss": 2.0 + 3.0 * s**-0.5,
                        "lr": lr[s - 1],
                        "grad_norm": 1.0,
                        "img_per_s": 100.0,
                        "tflops_per_device": 0.1,
                        "mfu": 0.01,
                        "mem_gb": 1.0,
                        "time": 0.1 * s,
                    }
                )
                + "\n"
            )
    for i, rec in enumerate(eval_files or []):
        (d / "eval").mkdir(exist_ok=True)
        (d / "eval" / f"{i}.json").write_text(json.dumps(rec))
    return d


@pytest.fixture
def results_csv(tmp_path: Path) -> Path:
    return synthetic_results(tmp_path / "results.csv")
