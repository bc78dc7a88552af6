"""Check the fused kernels against their references on a GPU, then time them.

    python benchmarks/bench_kernels_gpu.py --out DIR [--quick] [--sweep] [--budget-s 150]

1. Correctness (fresh random inputs, outputs poisoned with NaN): `flash_attention` forward and the three
   input gradients vs a float64 reference, fp16/bf16 (and fp32) at D = 64, 80, 128, q/k/v read as views of
   one qkv tensor; the masking kernels vs `reference.py`, which they must equal bit for bit.
2. Timing (`triton.testing.do_bench`, median): attention fwd and fwd+bwd in bf16 at ViT shapes (heads x
   head dim of B/16, L/16, H/14, 2B/14, 6.5B/14; N = 50, 197, 257, 1025; batch so that B*N ~ 64k tokens)
   against every SDPA backend that accepts the shape; masking fwd and fwd+bwd vs the reference chain.
3. `--sweep` first times a few block configurations per attention kernel (to re-tune GPU_CONFIGS).

Every case runs in its own try/except and lands in DIR/bench_kernels.json (rewritten after each section,
so a crash or timeout keeps what was done); once `--budget-s` seconds have passed the remaining timing
cases are recorded as skipped. A short table is printed last. Target: under 3 minutes on one H100.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

# (name, heads, head dim) of the ViT attention shapes.
VIT_SHAPES = [("B/16", 12, 64), ("L/16", 16, 64), ("H/14", 16, 80), ("2B/14", 32, 80), ("6.5B/14", 32, 128)]
SEQ_LENS = [50, 197, 257, 1025]
TOKENS_PER_CASE = 65536
DEVICE = "cuda"  # a module global so the checks can be smoke-tested on CPU under TRITON_INTERPRET=1
TOLERANCE = {torch.float32: 1e-5, torch.float16: 5e-3, torch.bfloat16: 3e-2}


def ensure_importable() -> None:
    """Make `scaling.kernels` importable from a bare checkout (no `pip install -e .`): the package maps
    the top-level folder kernels/ to scaling.kernels, so add the repo root to scaling's search path."""
    try:
        import scaling.kernels  # noqa: F401
    except ImportError:
        root = str(Path(__file__).resolve().parents[1])
        sys.path.insert(0, root)
        import scaling

        scaling.__path__.append(root)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="folder for bench_kernels.json")
    p.add_argument("--quick", action="store_true", help="fewer shapes and checks")
    p.add_argument("--sweep", action="store_true", help="time candidate attention block configs first")
    p.add_argument("--budget-s", type=float, default=150.0, help="skip timing cases after this many seconds")
    p.add_argument("--sweep-lens", default="197,1025", help="sequence lengths of --sweep (comma-separated)")
    p.add_argument("--sweep-dims", default="64,80,128", help="head dims of --sweep (64, 80, 128)")
    return p.parse_args(argv)


class Report:
    """Collects every case; `save` rewrites the JSON so partial results survive."""

    def __init__(self, out: Path, args: argparse.Namespace):
        self.path = out / "bench_kernels.json"
        self.t0 = time.perf_counter()
        self.data: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "checks": [], "attention": [],
                           "masking": [], "sweep": [], "errors": []}

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def save(self) -> None:
        self.data["elapsed_s"] = round(self.elapsed(), 1)
        self.path.write_text(json.dumps(self.data, indent=1, default=str))

    def run(self, section: str, case: dict, fn: Callable[..., dict], *args: object) -> dict:
        try:
            case.update(fn(*args))
        except Exception as e:  # one failing case must not stop the others
            case["error"] = f"{type(e).__name__}: {e}"[:500]
            self.data["errors"].append({"section": section, **case, "trace": traceback.format_exc()[-1500:]})
        self.data[section].append(case)
        return case


def rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    """|a - ref| / |ref|, or |a - ref| where ref is all zero (dq and dk for N = 1)."""
    diff, denom = (a.double() - ref).norm(), ref.norm()
    return (diff / denom if denom > 0 else diff).item()


def bench_ms(fn: Callable[[], object], grad_to_none: list[torch.Tensor] | None = None) -> float:
    from triton.testing import do_bench

    return float(do_bench(fn, warmup=10, rep=40, grad_to_none=grad_to_none, return_mode="median"))


def kernel_ms(fn: Callable[[], object], iters: int = 10) -> float:
    """GPU time of fn's kernels alone (profiler, summed per call): do_bench's wall time also holds the
    CPU launch cost, which dominates small memory-bound ops such as masking."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(iters):
            fn()
        torch.cuda.synchronize()
    events = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    return sum(e.device_time for e in events) / iters / 1000.0


def host_us(fn: Callable[[], object], iters: int = 50) -> float:
    """CPU time per call in microseconds: calls issued back to back without waiting for the GPU (the launch
    cost that do_bench's wall time holds when the kernels are shorter than it)."""
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    host = time.perf_counter() - t0
    torch.cuda.synchronize()
    return host / iters * 1e6


def qkv_views(qkv: torch.Tensor, heads: int, head_dim: int):
    B, N = qkv.shape[:2]
    return qkv.reshape(B, N, 3, heads, head_dim).permute(2, 0, 3, 1, 4).unbind(0)


# ----------------------------------------------------------------------------------------------- checks
def check_attention(dtype: torch.dtype, B: int, H: int, N: int, D: int, seed: int) -> dict:
    from scaling.kernels import attention_reference, flash_attention
    from scaling.kernels._support import poisoned_outputs

    gen = torch.Generator(device=DEVICE).manual_seed(seed)
    qkv = torch.randn(B, N, 3 * H * D, device=DEVICE, dtype=dtype, generator=gen).requires_grad_()
    do = torch.randn(B, H, N, D, device=DEVICE, dtype=dtype, generator=gen)
    with poisoned_outputs():
        out = flash_attention(*qkv_views(qkv, H, D))
        out.backward(do)
    ref_qkv = qkv.detach().double().requires_grad_()
    ref = attention_reference(*qkv_views(ref_qkv, H, D))
    ref.backward(do.double())
    g, rg = qkv.grad.reshape(B, N, 3, H, D), ref_qkv.grad.reshape(B, N, 3, H, D)
    errs = {"out": rel(out, ref), "dq": rel(g[:, :, 0], rg[:, :, 0]), "dk": rel(g[:, :, 1], rg[:, :, 1]),
            "dv": rel(g[:, :, 2], rg[:, :, 2])}
    tol = TOLERANCE[dtype]
    return {"rel_err": errs, "tol": tol, "ok": all(math.isfinite(e) and e < tol for e in errs.values())}


def check_masking(
    x_dtype: torch.dtype, pos_dtype: torch.dtype, seed: int,
    B: int = 8, L: int = 196, D: int = 768, Dd: int = 512, K: int = 49,
) -> dict:
    from scaling.kernels import (
        fused_mask_gather,
        fused_unshuffle_fill,
        mask_gather_reference,
        mask_noise,
        unshuffle_fill_reference,
    )
    from scaling.kernels._support import poisoned_outputs

    gen = torch.Generator(device=DEVICE).manual_seed(seed)
    dev = DEVICE
    x = torch.randn(B, L, D, device=dev, dtype=x_dtype, generator=gen)
    pos = torch.randn(1, L, D, device=dev, dtype=pos_dtype, generator=gen)
    seeds = torch.randint(0, 2**62, (B,), device=dev, generator=gen)
    xk_dec = torch.randn(B, K, Dd, device=dev, dtype=x_dtype, generator=gen)
    mt = torch.randn(1, 1, Dd, device=dev, dtype=pos_dtype, generator=gen)
    pos_dec = torch.randn(1, L, Dd, device=dev, dtype=pos_dtype, generator=gen)

    def run(fused: bool):
        leaves = [t.clone().requires_grad_() for t in (x, pos, xk_dec, mt, pos_dec)]
        lx, lpos, lxk, lmt, lpd = leaves
        if fused:
            enc = fused_mask_gather(lx, lpos, seeds, K)
            dec = fused_unshuffle_fill(lxk, lmt, enc[2], lpd)
        else:
            enc = mask_gather_reference(lx, lpos, mask_noise(seeds, L), K)
            dec = unshuffle_fill_reference(lxk, lmt, enc[2], lpd)
        g_gen = torch.Generator(dev).manual_seed(seed + 1)  # same upstream gradients for both runs
        g_enc = torch.randn(enc[0].shape, device=dev, dtype=enc[0].dtype, generator=g_gen)
        g_dec = torch.randn(dec.shape, device=dev, dtype=dec.dtype, generator=g_gen)
        torch.autograd.backward([enc[0], dec], [g_enc, g_dec])
        return [*enc, dec, *(t.grad for t in leaves)]

    with poisoned_outputs():
        got = run(True)
    want = run(False)
    names = ["x_kept", "ids_keep", "ids_restore", "mask", "decoded", "dx", "dpos", "dx_kept", "dmask_token",
             "dpos_dec"]
    equal = {n: bool(a.dtype == b.dtype and torch.equal(a, b)) for n, a, b in zip(names, got, want)}
    return {"equal": equal, "ok": all(equal.values())}


def run_checks(rep: Report, quick: bool) -> None:
    seed = int(time.time())  # fresh inputs every run; the seed is recorded to reproduce a failure
    cases = [(dt, d, n) for dt in (torch.float16, torch.bfloat16) for d in (64, 80, 128)
             for n in ((197,) if quick else (50, 197))]
    if not quick:  # fp32, other head dims, a single token
        cases += [(torch.float32, 64, 197), (torch.float32, 80, 50), (torch.bfloat16, 96, 70),
                  (torch.float16, 112, 33), (torch.bfloat16, 64, 1)]
    for i, (dt, d, n) in enumerate(cases):
        case = {"kernel": "attention", "dtype": str(dt), "B": 2, "H": 3, "N": n, "D": d, "seed": seed + i}
        rep.run("checks", case, check_attention, dt, 2, 3, n, d, seed + i)
    combos = [(torch.float32, torch.float32), (torch.bfloat16, torch.bfloat16),
              (torch.float16, torch.float16), (torch.bfloat16, torch.float32)]
    for i, (xd, pd) in enumerate(combos):
        case = {"kernel": "masking", "x_dtype": str(xd), "pos_dtype": str(pd), "seed": seed + 100 + i}
        rep.run("checks", case, check_masking, xd, pd, seed + 100 + i)
    rep.save()


# ----------------------------------------------------------------------------------------------- timing
def sdpa_backends() -> dict:
    from torch.nn.attention import SDPBackend

    names = {"flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION", "cudnn": "CUDNN_ATTENTION"}
    return {k: getattr(SDPBackend, v) for k, v in names.items() if hasattr(SDPBackend, v)}


def time_attention_case(name: str, H: int, D: int, N: int, budget_s: float, rep: Report) -> dict:
    import torch.nn.functional as F
    from torch.nn.attention import sdpa_kernel

    from scaling.kernels import flash_attention

    B = max(1, round(TOKENS_PER_CASE / N))
    dtype = torch.bfloat16
    qkv = torch.randn(B, N, 3 * H * D, device=DEVICE, dtype=dtype, requires_grad=True)
    do = torch.randn(B, H, N, D, device=DEVICE, dtype=dtype)
    fwd_flops = 4.0 * B * H * N * N * D
    res: dict = {"B": B, "impl": {}}

    def fused(views):
        return flash_attention(*views)

    impls: dict[str, Callable] = {"fused": fused}
    for bname, backend in sdpa_backends().items():
        def sdpa(views, backend=backend):
            with sdpa_kernel([backend]):
                return F.scaled_dot_product_attention(*views)
        impls["sdpa_" + bname] = sdpa

    for iname, fn in impls.items():
        if rep.elapsed() > budget_s:
            res["impl"][iname] = {"skipped": "time budget"}
            continue
        try:
            with torch.no_grad():
                fwd_ms = bench_ms(lambda fn=fn: fn(qkv_views(qkv, H, D)))
            fb_ms = bench_ms(lambda fn=fn: fn(qkv_views(qkv, H, D)).backward(do), grad_to_none=[qkv])
            res["impl"][iname] = {"fwd_ms": fwd_ms, "fwd_bwd_ms": fb_ms,
                                  "fwd_tflops": fwd_flops / fwd_ms * 1e-9,
                                  "fwd_bwd_tflops": 3.5 * fwd_flops / fb_ms * 1e-9}
        except Exception as e:  # e.g. a backend that refuses this shape
            res["impl"][iname] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
    sdpa_ok = {k: v for k, v in res["impl"].items() if k.startswith("sdpa") and "fwd_ms" in v}
    ours = res["impl"].get("fused", {})
    if sdpa_ok and "fwd_ms" in ours:
        for key in ("fwd_ms", "fwd_bwd_ms"):
            best = min(sdpa_ok, key=lambda k: sdpa_ok[k][key])
            res["best_sdpa_" + key] = [best, sdpa_ok[best][key]]
            res["speedup_" + key] = sdpa_ok[best][key] / ours[key]
    return res


def time_masking_case(side: str, B: int, L: int, D: int, K: int) -> dict:
    from scaling.kernels import (
        fused_mask_gather,
        fused_unshuffle_fill,
        mask_gather_reference,
        mask_noise,
        unshuffle_fill_reference,
    )

    dev, dtype = DEVICE, torch.bfloat16
    seeds = torch.randint(0, 2**62, (B,), device=dev)
    pos = torch.randn(1, L, D, device=dev, dtype=dtype, requires_grad=True)
    if side == "encoder":
        x = torch.randn(B, L, D, device=dev, dtype=dtype, requires_grad=True)
        g = torch.randn(B, K, D, device=dev, dtype=dtype)
        impls = {"fused": lambda: fused_mask_gather(x, pos, seeds, K)[0],
                 "reference": lambda: mask_gather_reference(x, pos, mask_noise(seeds, L), K)[0]}
        leaves = [x, pos]
    else:
        x = torch.randn(B, K, D, device=dev, dtype=dtype, requires_grad=True)
        mt = torch.randn(1, 1, D, device=dev, dtype=dtype, requires_grad=True)
        ids_restore = torch.argsort(torch.rand(B, L, device=dev), dim=1)
        g = torch.randn(B, L, D, device=dev, dtype=dtype)
        impls = {"fused": lambda: fused_unshuffle_fill(x, mt, ids_restore, pos),
                 "reference": lambda: unshuffle_fill_reference(x, mt, ids_restore, pos)}
        leaves = [x, mt, pos]
    # The harness floor: one elementwise op with the same output, forward and autograd backward from Python.
    # Wall time per call below it is out of any kernel's reach (launch + autograd-engine cost).
    floor_in = torch.randn(*g.shape, device=dev, dtype=dtype, requires_grad=True)
    impls["floor"] = lambda: floor_in.mul(1.0)
    leaves.append(floor_in)

    def fwd_bwd(fn: Callable) -> None:
        for t in leaves:
            t.grad = None
        fn().backward(g)

    res: dict = {"impl": {}}
    for name, fn in impls.items():
        with torch.no_grad():
            fwd = bench_ms(fn)
        r = res["impl"][name] = {"fwd_ms": fwd, "fwd_bwd_ms": bench_ms(lambda fn=fn: fwd_bwd(fn))}
        with torch.no_grad():
            r["fwd_host_us"] = host_us(fn)
        r["fwd_bwd_host_us"] = host_us(lambda fn=fn: fwd_bwd(fn))
        try:
            with torch.no_grad():
                r["fwd_kernel_ms"] = kernel_ms(fn)
            r["fwd_bwd_kernel_ms"] = kernel_ms(lambda fn=fn: fwd_bwd(fn))
        except Exception as e:  # the profiler is a nice-to-have
            r["kernel_ms_error"] = f"{type(e).__name__}: {str(e)[:200]}"
    for key in ("fwd_ms", "fwd_bwd_ms", "fwd_kernel_ms", "fwd_bwd_kernel_ms", "fwd_host_us", "fwd_bwd_host_us"):
        if key in res["impl"]["fused"] and key in res["impl"]["reference"]:
            res["speedup_" + key] = res["impl"]["reference"][key] / res["impl"]["fused"][key]
    fused, ref, floor = (res["impl"][k]["fwd_bwd_ms"] for k in ("fused", "reference", "floor"))
    if fused > floor:  # the wall-time win left once the harness floor is taken out of both
        res["speedup_fwd_bwd_ms_above_floor"] = (ref - floor) / (fused - floor)
    return res


def run_timing(rep: Report, quick: bool, budget_s: float) -> None:
    shapes = [s for s in VIT_SHAPES if s[0] in ("B/16", "H/14", "6.5B/14")] if quick else VIT_SHAPES
    lens = [197, 1025] if quick else SEQ_LENS
    for side, B, L, D, K in (("encoder", 256, 196, 1024, 49), ("decoder", 256, 196, 512, 49)):
        case = {"side": side, "dtype": "bfloat16", "B": B, "L": L, "D": D, "len_keep": K}
        rep.run("masking", case, time_masking_case, side, B, L, D, K)
    rep.save()
    for name, H, D in shapes:
        for N in lens:
            case = {"shape": name, "H": H, "D": D, "N": N, "dtype": "bfloat16"}
            rep.run("attention", case, time_attention_case, name, H, D, N, budget_s, rep)
            rep.save()


# Candidate (m, n, warps, stages) per attention kernel for --sweep; the first of each is a neighbour of the
# shipped config, the others vary one thing at a time.
SWEEP_CANDIDATES = {
    "fwd": [(64, 64, 4, 3), (64, 32, 4, 3), (64, 128, 4, 3), (128, 64, 8, 3), (64, 64, 4, 4),
            (128, 64, 4, 3), (128, 128, 8, 2), (128, 64, 8, 2)],
    "dkdv": [(32, 64, 4, 3), (16, 64, 4, 3), (32, 32, 4, 3), (64, 64, 4, 3), (32, 128, 8, 3),
             (32, 64, 4, 2), (64, 64, 8, 3), (64, 128, 8, 2)],
    "dq": [(64, 32, 4, 3), (64, 64, 4, 3), (32, 64, 4, 3), (64, 16, 4, 3), (128, 32, 8, 3), (64, 32, 4, 4),
           (128, 64, 8, 3)],
}


def sweep_case(kernel: str, cand: tuple[int, ...], key: int, args: tuple) -> dict:
    from scaling.kernels import attention as attn

    base = attn.GPU_CONFIGS[key]
    attn.GPU_CONFIGS[key] = attn.AttentionConfig(**{**base.__dict__, kernel: attn.Blocks(*cand)})
    try:
        if kernel == "fwd":
            return {"ms": bench_ms(lambda: attn._forward(*args[:3]))}
        return {"ms": bench_ms(lambda: attn._backward(*args))}
    finally:
        attn.GPU_CONFIGS[key] = base


def run_sweep(rep: Report, lens: tuple[int, ...] = (197, 1025), dims: tuple[int, ...] = (64, 80, 128)) -> None:
    """Time SWEEP_CANDIDATES, one kernel varied at a time from GPU_CONFIGS, for each tile width
    (D = 64, 80, 128) and sequence length, in bf16. The backward is timed whole (delta, dK/dV, dQ)."""
    from scaling.kernels import attention as attn

    for H, D in ((h, d) for h, d in ((16, 64), (16, 80), (32, 128)) if d in dims):
        key = min(k for k in attn.GPU_CONFIGS if k >= sum(attn.head_split(D)))
        for N in lens:
            B = round(TOKENS_PER_CASE / N)
            q, k, v, do = (torch.randn(B, H, N, D, device=DEVICE, dtype=torch.bfloat16) for _ in range(4))
            o, lse = attn._forward(q, k, v)
            for kernel, cands in SWEEP_CANDIDATES.items():
                for cand in cands:
                    case = {"D": D, "H": H, "N": N, "B": B, "kernel": kernel, "blocks": cand}
                    rep.run("sweep", case, sweep_case, kernel, cand, key, (q, k, v, o, lse, do))
            del q, k, v, do, o, lse
            rep.save()


# ----------------------------------------------------------------------------------------------- output
def print_table(data: dict) -> None:
    checks = data["checks"]
    n_ok = sum(1 for c in checks if c.get("ok"))
    print(f"\nchecks: {n_ok}/{len(checks)} passed")
    for c in checks:
        if not c.get("ok"):
            print("  FAILED", {k: v for k, v in c.items() if k != "seed"})
    for s in data["sweep"]:
        print("  sweep", *(s.get(k) for k in ("D", "N", "kernel", "blocks", "ms")), s.get("error", ""))
    print(f"\n{'masking':9}{'':10}{'fwd ref/fused ms':>22}{'x':>6}{'fwd+bwd ref/fused ms':>24}{'x':>6}")
    for c in data["masking"]:
        if "impl" not in c:
            print(f"{c['side']:9} error: {c.get('error')}")
            continue
        r, f = c["impl"]["reference"], c["impl"]["fused"]
        for label, suffix in (("wall", "ms"), ("kernels", "kernel_ms")):
            a, b = "fwd_" + suffix, "fwd_bwd_" + suffix
            if a in f and b in f and a in r and b in r:
                print(f"{c['side']:9}{label:10}{r[a]:>11.3f}/{f[a]:<10.3f}{c['speedup_' + a]:>6.1f}"
                      f"{r[b]:>12.3f}/{f[b]:<11.3f}{c['speedup_' + b]:>6.1f}")
        if "floor" in c["impl"]:
            fl = c["impl"]["floor"]
            print(f"{c['side']:9}{'host us':10}{r['fwd_host_us']:>11.0f}/{f['fwd_host_us']:<10.0f}"
                  f"{'':>6}{r['fwd_bwd_host_us']:>12.0f}/{f['fwd_bwd_host_us']:<11.0f}  floor: wall "
                  f"{fl['fwd_bwd_ms']:.3f} ms, host {fl['fwd_bwd_host_us']:.0f} us; x above floor "
                  f"{c.get('speedup_fwd_bwd_ms_above_floor', float('nan')):.1f}")
    print(f"\n{'attention':9}{'N':>5}{'B':>6}{'fused fwd':>10}{'best sdpa':>21}{'x':>6}"
          f"{'fused f+b':>10}{'best sdpa':>21}{'x':>6}{'TF/s f+b':>9}")
    for c in data["attention"]:
        head = f"{c['shape']:9}{c['N']:>5}{c.get('B', 0):>6}"
        ours = c.get("impl", {}).get("fused", {})
        if "speedup_fwd_ms" not in c:
            print(head, "error:", c.get("error") or ours.get("error") or ours.get("skipped") or "no sdpa")
            continue
        bf, bfb = c["best_sdpa_fwd_ms"], c["best_sdpa_fwd_bwd_ms"]
        print(f"{head}{ours['fwd_ms']:>10.3f}{bf[0].removeprefix('sdpa_'):>11}{bf[1]:>10.3f}"
              f"{c['speedup_fwd_ms']:>6.2f}{ours['fwd_bwd_ms']:>10.3f}{bfb[0].removeprefix('sdpa_'):>11}"
              f"{bfb[1]:>10.3f}{c['speedup_fwd_bwd_ms']:>6.2f}{ours['fwd_bwd_tflops']:>9.0f}")
    print(f"\ndevice: {data.get('device')}  torch {data.get('torch')}  triton {data.get('triton')}  "
          f"errors: {len(data['errors'])}  elapsed: {data.get('elapsed_s')} s")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ensure_importable()
    args.out.mkdir(parents=True, exist_ok=True)
    rep = Report(args.out, args)
    if not torch.cuda.is_available():
        rep.data["errors"].append({"section": "setup", "error": "no CUDA device: nothing checked or timed"})
        rep.save()
        print("bench_kernels_gpu: no CUDA device; wrote", rep.path, file=sys.stderr)
        return 1
    import triton

    os.environ.pop("TRITON_INTERPRET", None)
    from scaling.kernels import attention

    rep.data.update(device=torch.cuda.get_device_name(), capability=list(torch.cuda.get_device_capability()),
                    torch=torch.__version__, triton=triton.__version__, cuda=torch.version.cuda,
                    attention_configs={k: dataclasses.asdict(v) for k, v in attention.GPU_CONFIGS.items()})
    rep.save()
    if args.sweep:
        run_sweep(rep, tuple(int(n) for n in args.sweep_lens.split(",")),
                  tuple(int(d) for d in args.sweep_dims.split(",")))
        rep.data["sweep_s"] = round(rep.elapsed(), 1)
    run_checks(rep, args.quick)
    rep.data["checks_done_s"] = round(rep.elapsed(), 1)
    run_timing(rep, args.quick, args.budget_s + (rep.data.get("sweep_s") or 0.0))
    rep.save()
    print_table(rep.data)
    return 0 if all(c.get("ok") for c in rep.data["checks"]) else 2


if __name__ == "__main__":
    sys.exit(main())
