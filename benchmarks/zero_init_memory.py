"""Peak host memory per rank when a model is built under deepspeed.zero.Init on CPU ranks.

    deepspeed --num_gpus 2 benchmarks/zero_init_memory.py --model vit_2b_patch14 --out benchmarks/results

Each rank builds the encoder in fp32 under ZeRO-3 (the engine's own `build_model`), then reports its peak
RSS (ru_maxrss), the RSS before building, and its share of the parameters. Rank 0 writes
OUT/zero_init_memory_<model>_<ranks>ranks.json. The criterion: peak RSS per rank < 60% of the full fp32 model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="vit_2b_patch14")
    parser.add_argument("--out", required=True)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="dtype of the built weights")
    parser.add_argument("--local_rank", type=int, default=0)
    args = parser.parse_args()
    import psutil
    import torch.distributed as dist

    from scaling.engine.config import TrainConfig
    from scaling.engine.distributed import setup
    from scaling.engine.ds_config import build_ds_config, load_policy
    from scaling.engine.parallelize import build_model
    from scaling.flops import encoder_params
    from scaling.models import get_spec

    info = setup()
    spec = get_spec(args.model)
    cfg = TrainConfig(stage="wsp")
    cfg.model.name, cfg.deepspeed.precision = args.model, args.precision
    ds_cfg = build_ds_config(load_policy("zero3_bf16.json"), micro_batch=1, grad_accum=1,
                             world_size=info.world_size, precision=args.precision, clip_grad=1.0, width=spec.width)
    rss_before = psutil.Process().memory_info().rss
    t0 = time.perf_counter()
    model = build_model(cfg, ds_cfg, num_classes=0)
    seconds = time.perf_counter() - t0
    local = sum(p.ds_tensor.numel() for p in model.parameters())
    env = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}
    full = encoder_params(spec)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    row = torch.tensor([info.rank, rss_before, peak, local, seconds], dtype=torch.float64)
    rows = [torch.zeros_like(row) for _ in range(info.world_size)]
    dist.all_gather(rows, row)
    if info.rank == 0:
        full_fp32 = 4 * full
        ranks = [{"rank": int(r[0]), "rss_before_gb": r[1].item() / 1e9, "peak_rss_gb": r[2].item() / 1e9,
                  "local_params": int(r[3]), "build_s": r[4].item(),
                  "peak_fraction_of_full_fp32": r[2].item() / full_fp32} for r in rows]
        out = {"model": args.model, "precision": args.precision, "params": full, "full_fp32_gb": full_fp32 / 1e9,
               "world_size": info.world_size,
               "ranks": ranks, "criterion": "peak RSS per rank < 0.60 x full fp32 model",
               "passed": all(r["peak_fraction_of_full_fp32"] < 0.60 for r in ranks),
               "machine": f"{platform.processor() or platform.machine()}, {psutil.cpu_count()} cores, "
                          f"{psutil.virtual_memory().total / 1e9:.0f} GB",
               "malloc_env": env, "torch": torch.__version__, "when": time.strftime("%Y-%m-%d %H:%M:%S")}
        Path(args.out).mkdir(parents=True, exist_ok=True)
        name = f"zero_init_memory_{args.model}_{args.precision}_{info.world_size}ranks.json"
        (Path(args.out) / name).write_text(json.dumps(out, indent=1))
        print(json.dumps(out, indent=1))
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
