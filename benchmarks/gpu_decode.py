"""GPU decode input mode on a CUDA machine: images/s per GPU, with the CPU path timed beside it.

    python benchmarks/gpu_decode.py --out DIR            # needs CUDA; about 30-60 s
    python benchmarks/gpu_decode.py --out DIR --cpu-only  # the CPU half, anywhere

Writes a few hundred photo-like JPEGs (800-1200 px and 300-600 px) into a tar with the stdlib `tarfile`
(webdataset may be missing on the GPU machine), reads them back, and times per size band:
  - gpu: scaling.data.gpu_decode.decode_batch, the loader's `data.decode=gpu` stage (batched nvJPEG decode,
    crop, antialiased resize, flip; uint8 [B, 3, 224, 224] on the device), and nvJPEG decode alone;
  - cpu: scaling.data.decode.decode_crop (the workers' path: DCT-scaled decode + uint8 resize) on one core,
    and the plain PIL + torchvision RandomResizedCrop + ToTensor + Normalize reference on one core.
It also checks that GPU and CPU crops agree and, where the scaling package's dependencies are installed,
times the whole loader (build_train_loader) with decode=gpu and decode=cpu. JSON with the device name goes
to DIR/gpu_decode.json.

The two modules are loaded from their files, not through `import scaling`, so that the script needs only
torch, torchvision, numpy and Pillow (simplejpeg is used when present).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import platform
import sys
import tarfile
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
BANDS = {"800-1200px": (800, 1200), "300-600px": (300, 600)}
SIZE = 224


def _load(name: str, relative: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / relative)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def photo_like(width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """1/f^a noise with a colour mix: the spectrum and JPEG size (0.2-0.4 bytes/px) of a camera photo."""
    fy, fx = np.fft.fftfreq(height)[:, None], np.fft.rfftfreq(width)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    alpha = rng.uniform(1.3, 1.7)
    chans = []
    for _ in range(3):
        x = np.fft.irfft2(
            (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f**alpha, s=(height, width)
        )
        chans.append((x - x.mean()) / (x.std() + 1e-9))
    mix = rng.normal(size=(3, 3)) * 0.35 + np.eye(3)
    img = np.einsum("ij,jhw->hwi", mix, np.stack(chans)) * rng.uniform(30, 55) + rng.uniform(70, 180, 3)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def _encode(job: tuple[int, int, int, int]) -> bytes:
    low, high, seed, i = job
    rng = np.random.default_rng([seed, i])
    w, h = (int(v) for v in rng.integers(low, high + 1, size=2))
    buf = io.BytesIO()
    photo_like(w, h, rng).save(buf, "JPEG", quality=int(rng.integers(85, 96)))
    return buf.getvalue()


def write_and_read_tar(path: Path, low: int, high: int, n: int, seed: int) -> list[bytes]:
    """Write n JPEGs (made in parallel) as a webdataset-layout tar with tarfile, then read them back."""
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(min(8, multiprocessing.cpu_count())) as pool:
        images = pool.map(_encode, [(low, high, seed, i) for i in range(n)])
    with tarfile.open(path, "w") as tar:
        for i, data in enumerate(images):
            info = tarfile.TarInfo(f"{i:06d}.jpg")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with tarfile.open(path, "r") as tar:
        return [tar.extractfile(m).read() for m in tar.getmembers() if m.name.endswith(".jpg")]  # type: ignore[union-attr]


def crop_boxes(sizes: list[tuple[int, int]], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """RandomResizedCrop(scale 0.2-1) boxes (left, top, w, h) and flips, from torchvision's own sampler."""
    import torchvision.transforms as T

    torch.manual_seed(seed)
    boxes = []
    for h, w in sizes:
        top, left, ch, cw = T.RandomResizedCrop.get_params(
            torch.empty(3, h, w, device="meta"), [0.2, 1.0], [3 / 4, 4 / 3]
        )
        boxes.append((left, top, cw, ch))
    return torch.tensor(boxes, dtype=torch.int64), torch.rand(len(sizes)) < 0.5


def time_cpu(
    decode: ModuleType, jpegs: list[bytes], boxes: torch.Tensor, flips: torch.Tensor, budget_s: float
) -> dict[str, float]:
    """One core: our worker path and the PIL/torchvision reference, alternating, within a time budget."""
    import torchvision.transforms as T

    torch.set_num_threads(1)
    reference = T.Compose(
        [
            T.RandomResizedCrop(SIZE, scale=(0.2, 1.0)),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )
    out = torch.empty(3, SIZE, SIZE, dtype=torch.uint8)
    ours_s = ref_s = 0.0
    n = 0
    deadline = time.perf_counter() + budget_s
    for i, data in enumerate(jpegs):
        t0 = time.perf_counter()
        decode.decode_crop(data, decode.image_size(data), tuple(boxes[i].tolist()), bool(flips[i]), out)
        t1 = time.perf_counter()
        reference(Image.open(io.BytesIO(data)).convert("RGB"))
        t2 = time.perf_counter()
        ours_s, ref_s, n = ours_s + t1 - t0, ref_s + t2 - t1, n + 1
        if time.perf_counter() > deadline:
            break
    return {
        "cpu_img_per_s_per_core": round(n / ours_s, 1),
        "cpu_reference_img_per_s_per_core": round(n / ref_s, 1),
        "cpu_ratio": round(ref_s / ours_s, 3),
        "cpu_images": n,
        "simplejpeg": decode.simplejpeg is not None,
    }


def time_gpu(
    gpu: ModuleType,
    decode: ModuleType,
    jpegs: list[bytes],
    boxes: torch.Tensor,
    flips: torch.Tensor,
    batch: int,
    budget_s: float,
    device: torch.device,
) -> dict[str, float]:
    import torchvision

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    tensors = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in jpegs]
    batches = [
        (tensors[i : i + batch], boxes[i : i + batch], flips[i : i + batch])
        for i in range(0, len(tensors) - batch + 1, batch)
    ]

    def run(fn) -> float:  # images/s over repeated passes, after one warm-up pass
        for b in batches[:2]:
            fn(*b)
        sync()
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < budget_s / 2 or n == 0:
            for b in batches:
                fn(*b)
                n += len(b[0])
            sync()
        return n / (time.perf_counter() - start)

    full = run(lambda j, bx, fl: gpu.decode_batch(j, bx, fl, SIZE, device))
    only = run(
        lambda j, bx, fl: torchvision.io.decode_jpeg(j, mode=torchvision.io.ImageReadMode.RGB, device=device)
    )
    # Agreement with the CPU path on a few images (mean absolute difference in 0..255 units).
    images, bad = gpu.decode_batch(tensors[:8], boxes[:8], flips[:8], SIZE, device)
    diffs = []
    for i in range(8):
        ref = torch.empty(3, SIZE, SIZE, dtype=torch.uint8)
        decode.decode_crop(
            jpegs[i], decode.image_size(jpegs[i]), tuple(boxes[i].tolist()), bool(flips[i]), ref
        )
        diffs.append(float((images[i].cpu().int() - ref.int()).abs().float().mean()))
    return {
        "gpu_img_per_s": round(full, 1),
        "gpu_decode_only_img_per_s": round(only, 1),
        "gpu_batch": batch,
        "gpu_vs_cpu_mean_abs_diff": round(max(diffs), 3),
        "gpu_failed_slots": len(bad),
        "gpu_max_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2)
        if device.type == "cuda"
        else 0.0,
    }


def time_loader(jpegs: list[bytes], folder: Path, workers: int, batch: int) -> dict[str, object]:
    """The whole loader (`build_train_loader`) in decode=gpu and decode=cpu modes, `workers` workers each.

    Needs the scaling package's own dependencies (PyYAML, webdataset, braceexpand); skipped without them."""
    try:
        sys.path.insert(0, str(REPO))
        from scaling.data import DataConfig, build_train_loader
        from scaling.data.shards import write_manifest
    except ImportError as e:
        return {"loader_skipped": f"scaling package not importable here: {e}"}
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(folder / "000000.tar", "w") as tar:
        for i, data in enumerate(jpegs):
            for ext, payload in (("jpg", data), ("cls", b"0")):
                info = tarfile.TarInfo(f"{i:06d}.{ext}")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    write_manifest(folder, ["000000.tar"], [len(jpegs)], ["x"], "cls")
    out: dict[str, object] = {"loader_workers": workers, "loader_batch": batch}
    for mode in ("gpu", "cpu") if torch.cuda.is_available() else ("cpu",):
        cfg = DataConfig(train=str(folder), decode=mode, workers=workers, shuffle_buffer=64)
        loader = build_train_loader(
            cfg, stage="mae", image_size=SIZE, micro_batch=batch, rank=0, world_size=1, seed=0
        )
        for _ in range(3):
            first = next(loader)
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < 5.0:
            n += next(loader)["image"].shape[0]
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        out[f"loader_{mode}_img_per_s"] = round(n / (time.perf_counter() - start), 1)
        out[f"loader_{mode}_image"] = (
            f"{tuple(first['image'].shape)} {first['image'].dtype} {first['image'].device}"
        )
        loader.close()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for gpu_decode.json (and the temporary tar)")
    p.add_argument("--images", type=int, default=192, help="JPEGs per size band")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--cpu-only", action="store_true", help="skip the GPU half (for machines without CUDA)")
    p.add_argument("--loader-workers", type=int, default=6, help="workers for the whole-loader timing")
    p.add_argument("--device", default="cuda", help="device of the GPU half (cpu only to test this script)")
    args = p.parse_args()
    device = torch.device(args.device)
    if not args.cpu_only and device.type == "cuda" and not torch.cuda.is_available():
        print(
            "gpu_decode.py: no CUDA device (torch.cuda.is_available() is False). This benchmark times nvJPEG "
            "decode: run it on a GPU machine, or pass --cpu-only to time the CPU path alone.",
            file=sys.stderr,
        )
        return 2
    started = time.perf_counter()
    decode = _load("scaling_data_decode", "scaling/data/decode.py")
    gpu = _load("scaling_data_gpu_decode", "scaling/data/gpu_decode.py")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import torchvision

    result: dict[str, object] = {
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (cpu-only)",
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda": torch.version.cuda,
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "webdataset_available": importlib.util.find_spec("webdataset") is not None,
        "image_size": SIZE,
    }
    failed = False
    for k, (band, (low, high)) in enumerate(BANDS.items()):
        jpegs = write_and_read_tar(out / f"bench_{band}.tar", low, high, args.images, seed=k)
        (out / f"bench_{band}.tar").unlink()
        sizes = [decode.image_size(d) for d in jpegs]
        boxes, flips = crop_boxes(sizes, seed=k)
        entry: dict[str, object] = {
            "images": len(jpegs),
            "mean_kbytes": round(sum(map(len, jpegs)) / len(jpegs) / 1024, 1),
            "mean_hw": [
                round(float(np.mean([s[0] for s in sizes]))),
                round(float(np.mean([s[1] for s in sizes]))),
            ],
        }
        entry.update(time_cpu(decode, jpegs, boxes, flips, budget_s=4.0))
        if not args.cpu_only:
            try:
                entry.update(
                    time_gpu(gpu, decode, jpegs, boxes, flips, min(args.batch, len(jpegs)), 6.0, device)
                )
            except Exception:  # noqa: BLE001 - one shot on the GPU: keep the error in the JSON, go on
                import traceback

                entry["gpu_error"] = traceback.format_exc()
                failed = True
        result[band] = entry
        print(band, json.dumps(entry), flush=True)
        if band == "800-1200px":
            try:
                result["loader_800-1200px"] = time_loader(jpegs, out / "shards", args.loader_workers, 64)
            except Exception:  # noqa: BLE001 - keep the error in the JSON
                import traceback

                result["loader_800-1200px"] = {"loader_error": traceback.format_exc()}
                failed = True
            print("loader", json.dumps(result["loader_800-1200px"]), flush=True)
    result["seconds"] = round(time.perf_counter() - started, 1)
    (out / "gpu_decode.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out / 'gpu_decode.json'} in {result['seconds']} s")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
