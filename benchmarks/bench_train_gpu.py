"""Training-step benchmark on one GPU: our DeepSpeed ZeRO-3 bf16 step vs plain PyTorch, same run.

For each (model, stage) it finds the largest micro batch that fits (from a short list, largest first),
times `--steps` optimizer steps after `--warmup`, and reports images/s, TFLOP/s (analytic FLOPs, the same
function the trainer logs) and MFU against the card's dense bf16 peak. The baseline is the same step in
plain PyTorch: timm's VisionTransformer (WSP) or our MaskedAutoencoder (MAE; timm has none) with bf16
autocast and torch AdamW(fused=True), fp32 weights. Every case is isolated: an error is recorded and the
script goes on. Writes DIR/train_bench.json and prints a table last.

    python benchmarks/bench_train_gpu.py --out results/            # on a CUDA machine
    python benchmarks/bench_train_gpu.py --out /tmp/x --smoke      # CPU, tiny model: checks the code paths
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
try:
    import scaling.kernels  # noqa: F401
except ImportError:  # checkout not pip-installed: kernels/ is scaling.kernels only through setup.py's package_dir
    import scaling

    scaling.__path__.append(str(REPO))

CASES = {  # (model, stage): micro batches to try, largest first; the target case runs first
    ("vit_2b_patch14", "mae"): [512, 384, 256],
    ("vit_huge_patch14", "mae"): [512, 256, 128],
    ("vit_2b_patch14", "wsp"): [96, 64, 32],
    ("vit_huge_patch14", "wsp"): [192, 128, 64],
}
SMOKE = {("vit_micro_patch4", "mae"): [8], ("vit_micro_patch4", "wsp"): [8]}
NUM_CLASSES = 1000
TORCH_LINEAR = torch.nn.functional.linear  # DeepSpeed can swap it process-wide; the baseline must get torch's


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _inputs(spec, stage: str, micro: int, device: torch.device, dtype: torch.dtype):
    images = torch.randn(micro, 3, spec.img_size, spec.img_size, device=device, dtype=dtype)
    targets = torch.softmax(torch.randn(micro, NUM_CLASSES, device=device), dim=-1)
    return images, targets


def _time_steps(step_fn, device: torch.device, warmup: int, steps: int) -> float:
    for _ in range(warmup):
        step_fn()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step_fn()
    _sync(device)
    return (time.perf_counter() - t0) / steps


CASE_NOTES: dict[str, int] = {}  # facts about the last case, copied into its result
PROFILE_TO: dict[str, str] = {}  # set by --profile: the first case of each impl writes its op table here


def _profile(step_fn, path: str) -> None:
    """Two steps under torch.profiler: where the GPU time goes, by op, for the next optimisation pass."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(2):
            step_fn()
        torch.cuda.synchronize()
    table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=80, max_name_column_width=60)
    Path(path).write_text(table)


def run_ours(name: str, stage: str, micro: int, device: torch.device, warmup: int, steps: int, smoke: bool) -> float:
    """Seconds per optimizer step of our engine pieces: zero.Init model, ZeRO-3 bf16, fused AdamW."""
    import deepspeed

    from scaling.engine.config import TrainConfig
    from scaling.engine.ds_config import build_ds_config, load_policy
    from scaling.engine.optim import build_optimizer, param_groups
    from scaling.engine.parallelize import build_model, misaligned_partitions
    from scaling.kernels import sample_seeds
    from scaling.models import get_spec, set_kernels, soft_target_cross_entropy

    precision = "fp32" if smoke else "bf16"
    cfg = TrainConfig(stage=stage)
    cfg.model.name, cfg.deepspeed.precision = name, precision
    cfg.model.kernels = "auto"
    set_kernels("auto")
    spec = get_spec(name)
    ds_cfg = build_ds_config(load_policy("zero3_bf16.json"), micro_batch=micro, grad_accum=1, world_size=1,
                             precision=precision, clip_grad=1.0, width=spec.width)
    model = build_model(cfg, ds_cfg, NUM_CLASSES if stage != "mae" else 0)
    groups = param_groups(model, 0.05)
    opt = build_optimizer(groups, "torch", 1e-4, (0.9, 0.95), 1e-8, device.type)
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=opt, config=ds_cfg)
    CASE_NOTES["misaligned_params"] = len(misaligned_partitions(model))  # see scaling/engine/optim.py ALIGN
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    images, targets = _inputs(spec, stage, micro, device, dtype)
    counter = [0]

    def step() -> None:
        counter[0] += 1
        if stage == "mae":
            loss = engine(images, mask_ratio=0.75, seeds=sample_seeds(0, counter[0], 0, micro, device=device))[0]
        else:
            loss = soft_target_cross_entropy(engine(images), targets)
        engine.backward(loss)
        engine.step()

    try:
        seconds = _time_steps(step, device, warmup, steps)
        if PROFILE_TO.get("ours") and device.type == "cuda":
            _profile(step, PROFILE_TO.pop("ours"))
        return seconds
    finally:
        engine.destroy()  # bench_case collects the garbage and empties the CUDA cache between cases


def run_baseline(name: str, stage: str, micro: int, device: torch.device, warmup: int, steps: int,
                 smoke: bool) -> float:
    """Seconds per step of plain PyTorch: fp32 weights, bf16 autocast, torch AdamW(fused=True)."""
    import timm.models.vision_transformer as timm_vit

    from scaling.models import create_mae, get_spec, soft_target_cross_entropy

    torch.nn.functional.linear = TORCH_LINEAR
    spec = get_spec(name)
    with device:  # built and initialised on the GPU: a 2B model's init on the host takes tens of seconds
        if stage == "mae":
            model = create_mae(name)
        else:
            model = timm_vit.VisionTransformer(img_size=spec.img_size, patch_size=spec.patch_size,
                                               num_classes=NUM_CLASSES, embed_dim=spec.width, depth=spec.depth,
                                               num_heads=spec.heads, mlp_ratio=spec.mlp_dim / spec.width,
                                               qkv_bias=True)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4,
                            fused=device.type == "cuda")
    images, targets = _inputs(spec, stage, micro, device, torch.float32)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=not smoke)

    def step() -> None:
        with autocast:
            if stage == "mae":
                loss = model(images, mask_ratio=0.75)[0]
            else:
                loss = soft_target_cross_entropy(model(images), targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    seconds = _time_steps(step, device, warmup, steps)
    if PROFILE_TO.get("baseline") and device.type == "cuda":
        _profile(step, PROFILE_TO.pop("baseline"))
    return seconds


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower()


def _alloc_retries(device: torch.device) -> int:
    return torch.cuda.memory_stats(device).get("num_alloc_retries", 0) if device.type == "cuda" else 0


def bench_case(kind: str, name: str, stage: str, micros: list[int], device: torch.device, args) -> dict:
    """The fastest micro batch from `micros` (largest first): the first that fits, or the next smaller one
    when the first fit only by flushing the allocator's cache (which costs more than the larger batch gains)."""
    from scaling.flops import PEAK_BF16_FLOPS, device_kind, stage_flops
    from scaling.models import get_spec

    fn = run_ours if kind == "ours" else run_baseline
    per_sample = stage_flops(get_spec(name), stage, 0.75, NUM_CLASSES if stage != "mae" else 0).train
    kind_name = device_kind(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
    peak = PEAK_BF16_FLOPS.get(kind_name or "", 0)
    tried, best = [], None
    for micro in micros:
        t0, retries = time.perf_counter(), _alloc_retries(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        try:
            seconds = fn(name, stage, micro, device, args.warmup, args.steps, args.smoke)
        except Exception as e:  # noqa: BLE001 - record and go on: one shot on the GPU
            tried.append({"micro_batch": micro, "error": f"{type(e).__name__}: {str(e)[:300]}",
                          "oom": _is_oom(e)})
            _free(device)
            if not _is_oom(e):
                traceback.print_exc()
                break
            continue
        tflops = per_sample * micro / seconds / 1e12
        result = {"impl": kind, "model": name, "stage": stage, "micro_batch": micro, "step_s": seconds,
                  "img_per_s": micro / seconds, "tflops": tflops, "mfu": tflops * 1e12 / peak if peak else None,
                  "gflops_per_sample": per_sample / 1e9, "case_wall_s": time.perf_counter() - t0,
                  "peak_mem_gb": torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None,
                  "alloc_retries": _alloc_retries(device) - retries, **CASE_NOTES}
        CASE_NOTES.clear()
        _free(device)
        if best is None or result["img_per_s"] > best["img_per_s"]:
            if best is not None:
                tried.append({k: best[k] for k in ("micro_batch", "img_per_s", "alloc_retries")})
            best = result
        else:
            tried.append({k: result[k] for k in ("micro_batch", "img_per_s", "alloc_retries")})
        if result["alloc_retries"] == 0 or best is not result:
            break  # fitted cleanly, or the smaller batch was no faster
    if best is None:
        return {"impl": kind, "model": name, "stage": stage, "error": "no micro batch ran", "tried": tried}
    return {**best, "tried": tried}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for train_bench.json")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--profile", action="store_true",
                        help="also profile 2 steps of the first case of each impl into DIR/profile_{ours,baseline}.txt")
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny model, fp32: check the code paths")
    parser.add_argument("--only", default="", help="comma-separated model names to run")
    parser.add_argument("--budget-s", type=float, default=330.0,
                        help="start no new case after this many seconds (cases left are recorded as skipped)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.warmup, args.steps = 1, 1
    elif not torch.cuda.is_available():
        print("bench_train_gpu: no CUDA device; use --smoke on a CPU", file=sys.stderr)
        return 2
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29511")
    from scaling.engine.distributed import setup

    dist = setup()
    device = dist.device
    cases = SMOKE if args.smoke else CASES
    if args.only:
        cases = {k: v for k, v in cases.items() if k[0] in args.only.split(",")}
    results: list[dict] = []
    out = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
           "torch": torch.__version__, "python": platform.python_version(), "results": results,
           "when": time.strftime("%Y-%m-%d %H:%M:%S"), "warmup_steps": args.warmup, "timed_steps": args.steps}
    try:
        import deepspeed

        out["deepspeed"] = deepspeed.__version__
    except ImportError:
        pass
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if args.profile:
        PROFILE_TO.update({k: str(Path(args.out) / f"profile_{k}.txt") for k in ("ours", "baseline")})
    t_start = time.perf_counter()
    for (name, stage), micros in cases.items():
        for kind in ("ours", "baseline"):
            if time.perf_counter() - t_start > args.budget_s:
                r = {"impl": kind, "model": name, "stage": stage,
                     "error": f"skipped: past --budget-s {args.budget_s:g}"}
            else:
                r = bench_case(kind, name, stage, micros, device, args)
            results.append(r)
            print(json.dumps(r), flush=True)
            # written after every case: a run cut off by its time limit still leaves what it measured
            (Path(args.out) / "train_bench.json").write_text(json.dumps(out, indent=1))
    print(f"\n{'model':<18}{'stage':<6}{'impl':<10}{'micro':>6}{'img/s':>9}{'TFLOP/s':>9}{'MFU':>7}")
    for r in results:
        if "error" in r:
            print(f"{r['model']:<18}{r['stage']:<6}{r['impl']:<10}  error: {r['error'][:60]}")
            continue
        m = f"{r['mfu']:.1%}" if r["mfu"] is not None else "-"
        print(f"{r['model']:<18}{r['stage']:<6}{r['impl']:<10}{r['micro_batch']:>6}{r['img_per_s']:>9.1f}"
              f"{r['tflops']:>9.1f}{m:>7}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
