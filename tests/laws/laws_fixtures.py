"""Helpers for the scaling-law tests: the shared reference data (skipped with a reason where absent),
synthetic results tables and run directories.

A plain module, not conftest.py: other test folders do `from conftest import ...`, and two modules named
conftest in one pytest session shadow each other."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from scaling.laws.convergence import annealing_areas, lr_schedule
from scaling.laws.table import write_table


def _shared_dir() -> Path:
    # ../shared/data beside the checkout: /work/main -> /work/shared, a worktree /work/wt/x -> /work/shared too.
    for parent in Path(__file__).resolve().parents[2:]:
        if (parent / "shared" / "data").is_dir():
            return parent / "shared" / "data"
    return Path(__file__).resolve().parents[3] / "shared" / "data"


SHARED = _shared_dir()


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
                "total_flops": c,
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
    # Warmup + cosine, and a loss that follows Tissue et al.'s law on it: L0 2, A 0.3, alpha 0.5, C 2.
    lr = lr_schedule("cosine", 1e-3, steps, warmup=20)
    s1, s2 = annealing_areas(lr)
    loss = 2.0 + 0.3 * s1**-0.5 - 2.0 * s2
    with (d / "metrics.jsonl").open("w") as fh:
        for s in range(1, steps + 1):
            rec = {
                "step": s,
                "samples_seen": 32 * s,
                "loss": loss[s - 1],
                "lr": lr[s - 1],
                "grad_norm": 1.0,
                "img_per_s": 100.0,
                "tflops_per_device": 0.1,
                "mfu": 0.01,
                "mem_gb": 1.0,
                "time": 0.1 * s,
            }
            fh.write(json.dumps(rec) + "\n")
    for i, rec in enumerate(eval_files or []):
        (d / "eval").mkdir(exist_ok=True)
        (d / "eval" / f"{i}.json").write_text(json.dumps(rec))
    return d
