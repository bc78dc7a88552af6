"""A demo folder with real sweep folders (`scaling sweep`) but made-up run outputs, so the report and the
resume logic are tested in milliseconds; tests/demo/test_demo_quick.py runs the real pipeline."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from scaling.demo.folder import open_folder
from scaling.demo.settings import demo_settings
from scaling.demo.specs import compare_spec, sweep_spec, write_spec
from scaling.demo.steps import ASSETS
from scaling.engine.run_dir import write_json
from scaling.sweep.spec import SweepSpec
from scaling.sweep.write import read_runs, write_sweep


def make_folder(out: Path, seeds: int = 3) -> Path:
    settings = open_folder(out, demo_settings(False, seeds, 1), force=False)
    (out / "shards").mkdir()
    for split in ("train", "val"):  # the bundled shards stand in for the written ones
        (out / "shards" / split).symlink_to(ASSETS / split)
    spec = compare_spec(settings, out / "shards")
    write_spec(spec, out / "specs" / "compare.yaml")
    write_sweep(SweepSpec(**{k: v for k, v in spec.items()}), out / "compare")
    return out


def curve(start: float, end: float, steps: int, batch: int = 64) -> list[dict]:
    return [{"step": i, "samples_seen": i * batch, "loss": start + (end - start) * i / steps}
            for i in range(1, steps + 1)]


def finish_runs(out: Path, accuracy: dict[str, list[float]], curves: dict[str, list[list[dict]]] | None = None) -> None:
    """summary.json (+ eval) and metrics.jsonl for every run of the comparison: accuracy[recipe][seed]."""
    for row in read_runs(out / "compare"):
        run_dir = out / "compare" / row["run_dir"]
        run_dir.mkdir(parents=True, exist_ok=True)
        recipe, seed = row["recipe"], int(row["seed"])
        points = (curves or {}).get(recipe, [])
        points = points[seed] if points else curve(0.9 if recipe == "mae" else 2.3, 0.5 if recipe == "mae" else 1.5, 32)
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(p) + "\n" for p in points))
        ev = {} if recipe == "mae" else {"linear_top1": accuracy[recipe][seed], "knn_top1": accuracy[recipe][seed] - .1}
        write_json(run_dir / "summary.json", {
            "run": row["run"], "stage": row["stage"], "model": row["model"], "recipe": recipe,
            "params": int(row["params"]), "samples_seen": int(row["samples"]), "flops": float(row["flops"]),
            "loss": points[-1]["loss"], "steps": len(points), "preempted": False, "eval": ev})


def finish_sweep(out: Path, top1: Callable[[dict[str, str]], float]) -> Path:
    """The demo's sweep folder (`scaling sweep` on the demo's spec) with made-up outputs: top1(sweep.csv row)
    is each stage-2 run's val_top1. Returns the sweep folder; step_sweep then collects, fits and plots."""
    settings = demo_settings(False, None, 1)
    spec = sweep_spec(settings, out / "shards")
    write_spec(spec, out / "specs" / "sweep.yaml")
    folder = out / "sweep"
    write_sweep(SweepSpec(**spec), folder)
    for row in read_runs(folder):
        run_dir = folder / row["run_dir"]
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "metrics.jsonl").write_text(json.dumps({"step": 1, "samples_seen": 64, "loss": 1.0}) + "\n")
        ev = {} if row["stage"] == "mae" else {"val_top1": top1(row)}
        write_json(run_dir / "summary.json", {
            "run": row["run"], "stage": row["stage"], "model": row["model"], "recipe": row["recipe"],
            "params": int(row["params"]), "samples_seen": int(row["samples"]), "flops": float(row["flops"]),
            "total_flops": float(row["total_flops"]), "loss": 1.0, "steps": 1, "preempted": False, "eval": ev})
    return folder
