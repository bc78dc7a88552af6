"""Caption-vocabulary benchmark, run by hand (under the shared CPU lock on a shared box):

    python benchmarks/bench_vocab.py --out benchmarks/results/vocab_bench_cpu.json

1. Throughput: `scaling data vocab` (build_vocab, the real command) over local img2dataset-like shards
   (KEY.jpg + KEY.txt + KEY.json per sample; captions of 6-14 words drawn from a Zipf vocabulary, with
   hashtags), with 1 worker (the per-core figure; target >= 200k captions/s/core) and with all cores.
2. Memory: peak RSS of a fresh process that streams 1M, 4M and 20M synthetic Zipf captions through the
   counting path of the command (Normalizer.term_list + TermSketch, batches as count_shard makes them),
   at the command's default sketch capacity. Tar reading is left out here because its memory is per shard
   (a memory map; part 1 runs it); the distinct words keep growing with the captions (a Zipf vocabulary
   of 5M words), so the sketch must prune to stay flat. Target: flat from 1M to 20M.
3. Labelling overhead: `scaling data bench` (stage wsp, 224 px, 1 worker) on photo-like JPEG shards whose
   samples carry both a `.cls` label and a caption, without and with data.caption_vocab (rounds
   alternate); target: caption labels cost < 5% of images/s.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scaling.data.bench import cpu_name, run_bench  # noqa: E402
from scaling.data.captions import TermOptions  # noqa: E402
from scaling.data.config import DataConfig  # noqa: E402
from scaling.data.vocab_build import VocabOptions, build_vocab  # noqa: E402

WORDS = 5_000_000  # Zipf vocabulary of the synthetic captions
PARTS = ("throughput", "memory", "labelling")
HASHTAGS = ("#ootd", "#travel", "#food", "#nature", "#art", "#sunset", "#dog", "#cat")


def word(i: int) -> str:
    """A pronounceable pseudo-word per id (no stop-word, no digits)."""
    consonants, vowels = "bcdfgklmnprstvz", "aeiou"
    out = []
    i += 1
    while i:
        i, r = divmod(i, 75)
        out.append(consonants[r % 15] + vowels[r // 15])
    return "".join(out)


class Captions:
    """Zipf captions: 6-14 words, s = 1.1 over WORDS words, a hashtag in one caption of four."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.cache: dict[int, str] = {}

    def batch(self, n: int) -> list[str]:
        lengths = self.rng.integers(6, 15, size=n)
        ids = np.minimum(self.rng.zipf(1.1, size=int(lengths.sum())), WORDS) - 1
        tags = self.rng.integers(0, 4 * len(HASHTAGS), size=n)
        out, pos = [], 0
        for length, tag in zip(lengths.tolist(), tags.tolist()):
            words = [self.cache.get(w) or self.cache.setdefault(w, word(w)) if w < 100_000 else word(w)
                     for w in ids[pos : pos + length].tolist()]
            pos += length
            if tag < len(HASHTAGS):
                words.append(HASHTAGS[tag])
            out.append(" ".join(words))
        return out


def write_caption_shards(folder: Path, shards: int, per_shard: int, jpeg: bytes | list[bytes],
                         cls: bool = False) -> None:
    import tarfile

    folder.mkdir(parents=True, exist_ok=True)
    captions = Captions(0)

    def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    for s in range(shards):
        with tarfile.open(folder / f"{s:05d}.tar", "w") as tar:
            for i, text in enumerate(captions.batch(per_shard)):
                key = f"{s:05d}{i:05d}"
                add(tar, f"{key}.jpg", jpeg if isinstance(jpeg, bytes) else jpeg[i % len(jpeg)])
                if cls:
                    add(tar, f"{key}.cls", str(i % 10).encode())
                add(tar, f"{key}.json", json.dumps({"url": f"http://x/{key}.jpg", "caption": text,
                                                    "key": key, "status": "success"}).encode())
                add(tar, f"{key}.txt", text.encode())


def throughput(root: Path, captions: int, per_shard: int) -> dict:
    from PIL import Image

    shards = root / "captions"
    if not (shards / "00000.tar").exists():
        buf = io.BytesIO()
        Image.new("RGB", (64, 48), (120, 80, 40)).save(buf, "JPEG")
        write_caption_shards(shards, captions // per_shard, per_shard, buf.getvalue())
    out: dict = {"captions": captions, "shards": captions // per_shard, "fields": "jpg+json+txt"}
    for workers in sorted({1, os.cpu_count() or 1}):
        subprocess.run(["cat", *map(str, sorted(shards.glob("*.tar")))], stdout=subprocess.DEVNULL, check=True)
        opts = VocabOptions(size=27_000, workers=workers, overwrite=True)
        start = time.perf_counter()
        record = build_vocab(str(shards), str(root / "vocab.json"), opts, progress=False)
        seconds = time.perf_counter() - start
        rate = record["captions"] / seconds
        out[f"workers_{workers}"] = {"seconds": round(seconds, 2), "captions_per_s": round(rate),
                                     "captions_per_s_per_core": round(rate / workers),
                                     "terms": record["size"], "error_bound": record["sketch"]["error_bound"]}
        print(f"data vocab, {workers} worker(s): {rate:,.0f} captions/s ({rate / workers:,.0f} per core)",
              flush=True)
    return out


def memory_child(n: int) -> dict:
    """Runs in a fresh process: stream n captions through the counting path; peak RSS."""
    from scaling.data.captions import Normalizer
    from scaling.data.sketch import TermSketch

    opts = VocabOptions()
    normalizer, sketch, captions = Normalizer(TermOptions()), TermSketch(opts.capacity), Captions(1)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the interpreter, numpy, torch (imports)
    start, done = time.perf_counter(), 0
    while done < n:
        distinct: list = []
        occurrences: list = []
        for text in captions.batch(min(10_000, n - done)):
            terms = normalizer.term_list(text)
            distinct.extend(dict.fromkeys(terms))
            occurrences.extend(terms)
        sketch.add(distinct, occurrences)
        done += 10_000
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"captions": n, "peak_rss_mib": round(peak, 1), "rss_after_imports_mib": round(base, 1),
            "counting_mib": round(peak - base, 1),
            "seconds": round(time.perf_counter() - start, 1), "sketch_terms": len(sketch.df),
            "prunes": sketch.prunes, "error_bound": round(sketch.error_bound, 2), "capacity": opts.capacity}


def memory(sizes: list[int]) -> list[dict]:
    rows = []
    for n in sizes:
        proc = subprocess.run([sys.executable, __file__, "--memory-child", str(n)], capture_output=True, text=True,
                              check=True)
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"memory: {n:,} captions -> peak RSS {rows[-1]['peak_rss_mib']} MiB, counting "
              f"{rows[-1]['counting_mib']} MiB "
              f"({rows[-1]['prunes']} prunes, error bound {rows[-1]['error_bound']})", flush=True)
    return rows


def labelling(root: Path, images: int, rounds: int) -> dict:
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_data import photo_like

    shards = root / "photos"
    if not (shards / "00000.tar").exists():
        rng = np.random.default_rng(0)
        jpegs = []
        for _ in range(64):
            buf = io.BytesIO()
            w, h = (int(v) for v in rng.integers(300, 601, size=2))
            photo_like(w, h, rng).save(buf, "JPEG", quality=90)
            jpegs.append(buf.getvalue())
        write_caption_shards(shards, 4, 256, jpegs, cls=True)
    vocab = root / "photos_vocab.json"
    build_vocab(str(shards), str(vocab), VocabOptions(size=1000, workers=1, overwrite=True), progress=False)
    plain, captioned = [], []
    for _ in range(rounds):  # alternate: a noisy machine slows both alike
        for cfg, sink in ((DataConfig(num_classes=10), plain), (DataConfig(caption_vocab=str(vocab)), captioned)):
            result = run_bench(str(shards), stage="wsp", image_size=224, batch=32, workers=1, images=images,
                               rounds=1, cfg=cfg)
            sink.append(result["img_per_s"])
    med = float(np.median(plain)), float(np.median(captioned))
    out = {"stage": "wsp", "image_size": 224, "workers": 1, "images_per_round": images, "rounds": rounds,
           "cls_labels_img_per_s": [round(x, 1) for x in plain],
           "caption_labels_img_per_s": [round(x, 1) for x in captioned],
           "overhead_fraction": round(1 - med[1] / med[0], 4)}
    print(f"labelling: {med[0]:.1f} img/s with .cls labels, {med[1]:.1f} with caption labels "
          f"({100 * out['overhead_fraction']:.1f}% overhead)", flush=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "vocab_bench_cpu.json"))
    p.add_argument("--captions", type=int, default=200_000, help="captions in the throughput shards")
    p.add_argument("--memory-sizes", default="1000000,4000000,20000000")
    p.add_argument("--images", type=int, default=512, help="images timed per labelling round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--cache", help="keep the generated shards here (default: a temporary folder)")
    p.add_argument("--load", default="", help="what else ran on the machine (recorded in the JSON)")
    p.add_argument("--parts", default=",".join(PARTS), help="which parts to run; others are kept from --out")
    p.add_argument("--memory-child", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child)))
        return 0
    parts = args.parts.split(",")
    out = Path(args.out)
    results = json.loads(out.read_text()) if set(parts) != set(PARTS) and out.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.cache or tmp)
        for part in parts:  # each part records the machine and its load when it ran
            machine = {"cpu": cpu_name(), "cores": os.cpu_count(), "load": args.load,
                       "loadavg_at_start": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M")}
            if part == "throughput":
                value: object = throughput(root, args.captions, per_shard=10_000)
            elif part == "memory":
                value = memory([int(x) for x in args.memory_sizes.split(",")])
            else:
                value = labelling(root, args.images, args.rounds)
            results[part] = {"machine": machine, "result": value}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
