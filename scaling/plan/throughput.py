"""Time and GPU-hours of a run: samples x training FLOPs per sample / (MFU x the GPU's peak).

MFU: the best our engine measured for this model and stage (benchmarks/results/train_bench_*.json, impl
"ours"), else an assumption that says so. Measured MFU transfers between GPUs of the same generation only
roughly (it was measured on one GPU; many GPUs add communication the measurement does not contain).
"""

from __future__ import annotations

import json
from pathlib import Path

from scaling.config import ConfigError
from scaling.flops import PEAK_BF16_FLOPS
from scaling.resources import folder

RESULTS_DIR = folder("benchmarks/results")  # train_bench_*.json install with the package (setup.py)
ASSUMED_MFU = 0.40  # the ready configs' cost comments use it


def peak_flops(gpu: str) -> float:
    if gpu not in PEAK_BF16_FLOPS:
        raise ConfigError(f"unknown GPU {gpu!r}: no known bf16 peak; choose one of {', '.join(PEAK_BF16_FLOPS)} "
                          "(or add its peak to scaling/flops.py PEAK_BF16_FLOPS).")
    return PEAK_BF16_FLOPS[gpu]


def measured_mfu(model: str, stage: str, results_dir: Path = RESULTS_DIR) -> tuple[float, str] | None:
    """(best MFU, where it comes from) for our engine on `model`/`stage`, or None without a measurement."""
    best: tuple[float, str] | None = None
    for path in sorted(results_dir.glob("train_bench_*.json")):
        data = json.loads(path.read_text())
        for r in data.get("results", []):
            if r.get("impl") == "ours" and r.get("model") == model and r.get("stage") == stage and r.get("mfu"):
                if best is None or r["mfu"] > best[0]:
                    source = f"measured: {path.name} ({data.get('device', '?')}, micro batch {r['micro_batch']})"
                    best = (float(r["mfu"]), source)
    return best


def choose_mfu(model: str, stage: str, mfu: float | None, results_dir: Path = RESULTS_DIR) -> tuple[float, str]:
    if mfu is not None:
        if not 0 < mfu <= 1:
            raise ConfigError(f"--mfu must be in (0, 1], got {mfu}: give a fraction such as 0.4.")
        return mfu, "given (--mfu)"
    found = measured_mfu(model, stage, results_dir)
    if found:
        return found
    return ASSUMED_MFU, f"assumed {ASSUMED_MFU:.2f}: no measurement of {model} {stage} in benchmarks/results/"


def gpu_hours(samples: int, flops_per_sample: float, mfu: float, gpu: str) -> float:
    return samples * flops_per_sample / (mfu * peak_flops(gpu)) / 3600
