"""Time DeepSpeed's universal conversion (what a resized job's rank 0 runs while the others wait in a barrier)
on a real ZeRO-3 checkpoint: a ViT MAE trained one step on 2 CPU ranks, converted with 1 worker and with
`checkpoint.conversion_workers()` extract/merge workers. Writes benchmarks/results/universal_conversion_*.json.

  flock /tmp/cpu_heavy.lock python benchmarks/bench_universal_conversion.py --model vit_large_patch16
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "engine"))


def main() -> None:
    from train_helpers import run_train

    from scaling.engine import checkpoint as ckpt
    from scaling.engine.checkpoint import complete_checkpoints, universal_dir
    from scaling.flops import encoder_params
    from scaling.models import get_spec

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="vit_large_patch16")
    parser.add_argument("--workdir", default=None, help="where the checkpoint goes (default: a temp dir)")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_universal_"))
    run = work / "run"
    t0 = time.perf_counter()
    run_train(str(REPO / "configs" / "tiny" / "mae.yaml"), [
        f"run_dir={run}", f"model.name={args.model}", "data.train=synthetic", "batch.micro_batch=1",
        "batch.grad_accum=1", "total_samples=2", "deepspeed.precision=fp32", "deepspeed.config=zero3_bf16.json",
    ], ranks=2, timeout=3600)
    train_s = time.perf_counter() - t0
    tag = complete_checkpoints(run)[-1]
    size = sum(p.stat().st_size for p in tag.rglob("*") if p.is_file())
    results = {"model": args.model, "encoder_params": encoder_params(get_spec(args.model)), "checkpoint_bytes": size,
               "ranks": 2, "train_and_save_s": train_s, "conversions": []}
    workers_max = ckpt.conversion_workers()
    for workers in sorted({1, workers_max}):
        shutil.rmtree(universal_dir(tag), ignore_errors=True)
        t0 = time.perf_counter()
        ckpt.to_universal(tag, rank=0, workers=workers)
        results["conversions"].append({"workers": workers, "seconds": time.perf_counter() - t0})
        print(results["conversions"][-1], flush=True)
    results["note"] = "2-core box shared with other jobs; seconds are wall time of to_universal on rank 0"
    out = REPO / "benchmarks" / "results" / f"universal_conversion_{args.model}_cpu.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
