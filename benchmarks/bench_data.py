"""Input-pipeline benchmark, run by hand: images/s per worker of our loader vs a plain reference pipeline.

    python benchmarks/bench_data.py --out benchmarks/results/data_bench_cpu.json

Writes photo-like JPEGs in two size bands (width and height each drawn in 300-600 px, or in 800-1200 px),
packs them into shards with `scaling data write`, and runs `scaling data bench` on each band
(MAE transform, 224 px, workers=1 so the figure is per core). Also times the full-scale pure-index assignment
simulation (1e9 samples, 100k shards, 1024 ranks x 8 workers). Numbers depend on the machine: the JSON
records its CPU and core count.

Images: 1/f^a noise (a in 1.3..1.7, the spectrum of natural photos) with a random colour mix, saved at
quality 85..95: about 0.2-0.4 bytes per pixel, like camera photos, so entropy decoding costs what it does on
real data (a flat synthetic image would make every decoder look fast).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scaling.data.assignment import Layout, simulate_epoch  # noqa: E402
from scaling.data.bench import run_bench  # noqa: E402
from scaling.data.writer import WriteOptions, write_shards  # noqa: E402

BANDS = {"300-600px": (300, 600), "800-1200px": (800, 1200)}


def photo_like(width: int, height: int, rng: np.random.Generator) -> Image.Image:
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    alpha = rng.uniform(1.3, 1.7)
    chans = []
    for _ in range(3):
        spec = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f**alpha
        x = np.fft.irfft2(spec, s=(height, width))
        chans.append((x - x.mean()) / (x.std() + 1e-9))
    mix = rng.normal(size=(3, 3)) * 0.35 + np.eye(3)
    img = np.einsum("ij,jhw->hwi", mix, np.stack(chans)) * rng.uniform(30, 55) + rng.uniform(70, 180, 3)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def make_band(folder: Path, low: int, high: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    (folder / "all").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        w, h = (int(v) for v in rng.integers(low, high + 1, size=2))
        buf = io.BytesIO()
        photo_like(w, h, rng).save(buf, "JPEG", quality=int(rng.integers(85, 96)))
        (folder / "all" / f"{i:05d}.jpg").write_bytes(buf.getvalue())


def time_simulation() -> dict[str, float | bool]:
    rng = np.random.default_rng(0)
    counts = rng.integers(5_000, 15_000, size=100_000)
    counts[-1] += 1_000_000_000 - counts.sum()
    layout = Layout(counts.astype(np.int64), world_size=1024, lanes=8, micro_batch=32, seed=0)
    start = time.perf_counter()
    report = simulate_epoch(layout, 0)
    return {"seconds": round(time.perf_counter() - start, 3), **report}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "data_bench_cpu.json"))
    p.add_argument("--images", type=int, default=300, help="JPEGs generated per size band")
    p.add_argument("--timed", type=int, default=256, help="images timed per round and pipeline")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--cache", help="folder to keep the generated images and shards in (default: temporary)")
    args = p.parse_args()
    results: dict[str, object] = {"simulation_1e9_samples_100k_shards_1024x8": time_simulation()}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.cache or tmp)
        for band, (low, high) in BANDS.items():
            images, shards = root / band / "images", root / band / "shards"
            if not (shards / "shards.json").exists():
                make_band(images, low, high, args.images, seed=low)
                write_shards(
                    str(images), str(shards), WriteOptions(shard_size=100, workers=1), progress=False
                )
            results[band] = run_bench(
                str(shards),
                stage="mae",
                image_size=224,
                batch=args.batch,
                workers=args.workers,
                images=args.timed,
                rounds=args.rounds,
            )
            r = results[band]
            print(
                f"{band}: ours {r['img_per_s_per_worker']} img/s/worker, reference "
                f"{r['reference_img_per_s_per_worker']}, ratio {r['ratio']}x",
                flush=True,
            )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
