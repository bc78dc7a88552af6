"""Readers for published scaling data, so that our fits can be checked against published ones.

Nothing here ships data: each reader takes the path of a file from its public source (see the project's
shared/data/README.md) and returns results-table rows or training curves. Where a source gives a schedule
instead of logged learning rates, the schedule is rebuilt from its stated settings.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from scaling.laws.convergence import Curve, lr_schedule


def _rows(path: str | Path) -> list[dict]:
    with Path(path).open(newline="") as fh:
        return list(csv.DictReader(fh))


def chinchilla_rows(path: str | Path, drop_highest: int = 5) -> list[dict]:
    """Hoffmann et al. 2022 fig. 4 points as extracted by Besiroglu et al. 2024 (svg_extracted_data.csv):
    D = C / (6 N). Like Besiroglu et al., drop the `drop_highest` runs with the highest loss."""
    raw = _rows(path)
    order = np.argsort([float(r["loss"]) for r in raw], kind="stable")
    keep = sorted(order[: len(raw) - drop_highest]) if drop_highest else range(len(raw))
    out = []
    for i in keep:
        r = raw[i]
        n, c = float(r["Model Size"]), float(r["Training FLOP"])
        out.append(
            {
                "run": f"chinchilla_{i:03d}",
                "model": f"{n:.4g}",
                "params": n,
                "samples": c / (6 * n),
                "flops": c,
                "recipe": "chinchilla",
                "metric": "loss",
                "value": float(r["loss"]),
            }
        )
    return out


def openclip_zeroshot_rows(path: str | Path) -> list[dict]:
    """Cherti et al. 2023 ImageNet zero-shot top-1 per run; flops = 2 x GMACs (one MAC is two FLOPs).
    recipe is 'openclip' (LAION data) or 'openai' (CLIP on WIT), dataset the upstream data."""
    out = []
    for r in _rows(path):
        openai = r["name"] == "openai"
        out.append(
            {
                "run": f"openai_{r['arch']}" if openai else r["name"].removesuffix(".pt"),
                "model": r["arch"],
                "params": "",
                "samples": float(r["samples_seen"]),
                "flops": 2e9 * float(r["gmacs_total"]),
                "recipe": "openai" if openai else "openclip",
                "dataset": r["upstream_dataset"],
                "metric": "imagenet_zeroshot_top1",
                "value": float(r["acc1"]),
            }
        )
    return out


def openclip_curves(curves_path: str | Path, info_path: str | Path) -> list[Curve]:
    """Zero-shot error (1 - top-1) after each epoch, with OpenCLIP's cosine schedule rebuilt from the run's
    lr, warmup, epochs, samples per epoch and global batch (local batch x GPUs)."""
    info = {r["name"]: r for r in _rows(info_path)}
    points: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for r in _rows(curves_path):
        points[r["name"]].append((int(r["epoch"]), float(r["imagenet-zeroshot-val-top1"])))
    curves = []
    for name, pts in points.items():
        if name not in info:
            continue
        i = info[name]
        batch = int(i["gpus"]) * int(i["local_bs"])
        per_epoch = int(i["samples_per_epoch"]) // batch
        total = per_epoch * int(i["epochs"])
        pts = sorted(p for p in pts if p[0] <= int(i["epochs"]))
        epoch = np.array([p[0] for p in pts])
        curves.append(
            Curve(
                run=name.removesuffix(".pt"),
                step=epoch * per_epoch,
                loss=1.0 - np.array([p[1] for p in pts]),
                lr=lr_schedule("cosine", float(i["lr"]), total, warmup=int(i["warmup"])),
                samples=(epoch * per_epoch * batch).astype(float),
                group=i["arch"],
            )
        )
    return curves


def misfitting_curves(path: str | Path, min_points: int = 1) -> list[Curve]:
    """Li et al. 2025 checkpoints of every run: open_lm's schedule, 50 warmup steps then cosine to 0.1 x
    peak lr over the run's total steps (their sweep constants). One curve per (model, steps, lr, sweep)."""
    runs: dict[tuple, list[dict]] = defaultdict(list)
    for r in _rows(path):
        runs[(r["model"], int(r["total_steps"]), r["peak_lr"], r["sweep"])].append(r)
    curves = []
    for (model, total, peak, sweep), rs in runs.items():
        # A few checkpoints are listed past the run's own total_steps; the schedule ends there, so they go.
        rs = sorted((r for r in rs if int(r["current_steps"]) <= total), key=lambda r: int(r["current_steps"]))
        if len(rs) < min_points:
            continue
        step = np.array([int(r["current_steps"]) for r in rs])
        _, first = np.unique(step, return_index=True)  # a few checkpoints are listed twice
        rs = [rs[j] for j in first]
        curves.append(
            Curve(
                run=f"{model}_s{total}_lr{peak}_{sweep[:19]}",
                step=step[first],
                loss=np.array([float(r["loss"]) for r in rs]),
                lr=lr_schedule("cosine", float(peak), total, warmup=50, final=0.1 * float(peak)),
                params=float(rs[0]["N"]),
                samples=np.array([float(r["D"]) for r in rs]),
                group=model,
            )
        )
    return curves


def tissue_curves(path: str | Path) -> list[Curve]:
    """Tissue et al. 2024's demo curves (cosine and constant lr, warmup 500, 20k steps)."""
    by: dict[str, list[dict]] = defaultdict(list)
    for r in _rows(path):
        by[r["lr_schedule"]].append(r)
    curves = []
    for kind, rs in by.items():
        r0 = rs[0]
        lr = lr_schedule(
            kind,
            float(r0["max_lr"]),
            int(r0["total_steps"]),
            warmup=int(r0["warmup_steps"]),
            final=float(r0["min_lr"]),
        )
        step = np.array([int(r["step"]) for r in rs])
        curves.append(Curve(f"tissue_{kind}", step, np.array([float(r["val_loss"]) for r in rs]), lr, group="tissue"))
    return curves
