"""`scaling data write | inspect | vocab | bench`: thin commands over writer.py, inspect_shards.py,
vocab_build.py and bench.py."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from scaling.config import ConfigError

WRITE_EXAMPLE = """example:
  scaling data write photos/ shards/ --shard-size 10000 --workers 8
      photos/<class>/<image>  ->  shards/000000.tar ... + shards/shards.json (class ids in .cls)
  scaling data write train.txt shards/          # list file: `path label [label ...]` per line
  scaling data write 'img2dataset_out/{00000..00099}.tar' shards/ --labels tags.tsv
"""
INSPECT_EXAMPLE = """example:
  scaling data inspect 'shards/{000000..000099}.tar' --write-manifest
      counts the samples of each shard (tar headers only) and writes shards/shards.json,
      which epoch mode needs for shards written by other tools (e.g. img2dataset)
  scaling data inspect shards/ --check 100 --json
"""
VOCAB_EXAMPLE = """example:
  scaling data vocab 'laion/{00000..09999}.tar' --out vocab.json --size 27000 --workers 16
      counts the terms of every caption (KEY.txt, or caption/text in KEY.json; images are never read) and
      keeps the 27000 most frequent; then train stage 2 on the captions' terms:
  scaling train --config configs/wsp/vit_huge_patch14.yaml data.train='laion/{00000..09999}.tar' \\
      data.caption_vocab=vocab.json init_from=runs/mae_h14 run_dir=runs/wsp_h14
  scaling data vocab shards/shards.json --out vocab.json --sample 1000000   # a quick look at 1M captions

terms: hashtags as written (#ootd), and content words: lower case, punctuation and URLs removed, English
stop-words and numbers dropped, plurals made singular (dresses -> dress); --synsets maps words to WordNet noun
synsets where a WordNet is installed. Memory stays bounded (a heavy-hitters sketch of --sketch counters per
worker; the file records its error bound, 0 when the counts are exact).
"""
BENCH_EXAMPLE = """example:
  scaling data bench 'shards/{000000..000003}.tar' --workers 1 --json
      images/s per worker of the real pipeline and of a plain webdataset + PIL + torchvision
      reference, timed in alternating rounds; `ratio` is ours / reference
  scaling data bench img2dataset_out/ --stage wsp --caption-vocab vocab.json   # with caption labels
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scaling data",
        description="Write, inspect and benchmark tar shards; build a label vocabulary from their captions.",
        epilog="example:\n  scaling data write photos/ shards/ && scaling data inspect shards/ && "
        "scaling data bench shards/\n\nRun `scaling data COMMAND --help` for each command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    fmt = argparse.RawDescriptionHelpFormatter

    w = sub.add_parser(
        "write",
        help="images -> shuffled webdataset shards + shards.json",
        epilog=WRITE_EXAMPLE,
        formatter_class=fmt,
    )
    w.add_argument("src", help="image folder tree (class per sub-folder), list file, or existing shards")
    w.add_argument("out_dir", help="folder for the shards and shards.json")
    w.add_argument("--shard-size", type=int, default=10_000, help="samples per shard (default 10000)")
    w.add_argument("--workers", type=int, default=4, help="parallel writer processes (default 4)")
    w.add_argument("--seed", type=int, default=0, help="seed of the write-time sample shuffle")
    w.add_argument("--labels", help="for shard inputs: file of `KEY label [label ...]` lines")
    w.add_argument("--quality", type=int, default=95, help="JPEG quality for re-encoded images")
    w.add_argument("--max-size", type=int, default=0, help="shrink images to this shorter side (0: keep)")
    w.add_argument("--prefix", default="", help="shard name prefix (e.g. train-)")
    w.add_argument("--overwrite", action="store_true", help="write into a folder that already has shards")
    w.add_argument("--quiet", action="store_true", help="no progress bar")

    i = sub.add_parser(
        "inspect",
        help="count and check shards; write their manifest",
        epilog=INSPECT_EXAMPLE,
        formatter_class=fmt,
    )
    i.add_argument("shards", help="brace pattern, folder, shards.json or URL")
    i.add_argument("--write-manifest", action="store_true", help="write shards.json next to the shards")
    i.add_argument(
        "--check", type=int, default=0, metavar="N", help="fully decode the first N images per shard"
    )
    i.add_argument("--json", action="store_true", help="print the summary as JSON")
    i.add_argument("--quiet", action="store_true", help="no progress bar")

    v = sub.add_parser(
        "vocab",
        help="a label vocabulary from the captions of image-text shards",
        epilog=VOCAB_EXAMPLE,
        formatter_class=fmt,
    )
    v.add_argument("source", help="shards: brace pattern, folder, shards.json, URL or pipe:")
    v.add_argument("--out", required=True, help="the vocabulary file to write (JSON)")
    v.add_argument("--size", type=int, default=27_000, help="terms to keep, most frequent first (default 27000)")
    v.add_argument("--min-count", type=int, default=1, help="captions a term must appear in (default 1)")
    v.add_argument("--workers", type=int, default=4, help="processes reading shards (default 4)")
    v.add_argument("--sample", type=int, default=0, metavar="N",
                   help="read only the first N captions of evenly spread shards (default: all)")
    v.add_argument("--sketch", type=int, default=0, metavar="C",
                   help="counters per worker (default max(10 x size, 100000)); memory grows with it")
    v.add_argument("--min-length", type=int, default=2, help="shortest content word kept (default 2)")
    v.add_argument("--keep-stop-words", action="store_true", help="keep English stop-words")
    v.add_argument("--no-hashtags", action="store_true", help="drop hashtags")
    v.add_argument("--keep-plurals", action="store_true", help="no plural -> singular rule")
    v.add_argument("--synsets", action="store_true", help="words -> WordNet noun synsets (needs a WordNet)")
    v.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    v.add_argument("--quiet", action="store_true", help="no progress bar")

    b = sub.add_parser(
        "bench",
        help="images/s of the input pipeline vs a plain reference",
        epilog=BENCH_EXAMPLE,
        formatter_class=fmt,
    )
    b.add_argument("shards", help="brace pattern, folder, shards.json or URL")
    b.add_argument("--stage", default="mae", choices=["mae", "wsp", "finetune"])
    b.add_argument("--image-size", type=int, default=224)
    b.add_argument("--batch", type=int, default=32)
    b.add_argument("--workers", type=int, default=1, help="DataLoader workers (1: the figure is per core)")
    b.add_argument("--images", type=int, default=512, help="images timed per round and pipeline")
    b.add_argument("--rounds", type=int, default=3)
    b.add_argument("--interpolation", default="bilinear", choices=["bilinear", "bicubic"])
    b.add_argument("--caption-vocab", metavar="VOCAB.json",
                   help="label samples from their captions (data.caption_vocab; stages wsp and finetune)")
    b.add_argument("--json", action="store_true", help="print the result as JSON")
    b.add_argument("--out", help="also write the JSON record to this file")
    return p


def _write(a: argparse.Namespace) -> int:
    from scaling.data.writer import WriteOptions, write_shards

    opts = WriteOptions(a.shard_size, a.workers, a.seed, a.quality, a.max_size, a.prefix, a.overwrite)
    path = write_shards(a.src, a.out_dir, opts, labels_file=a.labels, progress=not a.quiet)
    manifest = json.loads(path.read_text())
    skipped = manifest.get("skipped") or {}
    print(
        f"wrote {manifest['num_samples']} samples in {manifest['num_shards']} shards, "
        f"{manifest['num_classes']} classes ({manifest['label_field']}) -> {path}"
    )
    if skipped:
        print("skipped: " + ", ".join(f"{v} {k}" for k, v in sorted(skipped.items())))
    return 0


def _inspect(a: argparse.Namespace) -> int:
    from scaling.data.inspect_shards import inspect, summary, write_manifest_for

    shards, results = inspect(a.shards, a.check, progress=not a.quiet)
    info = summary(shards, results)
    if a.write_manifest:
        info["manifest"] = str(write_manifest_for(shards, results))
    if a.json:
        print(json.dumps(info, indent=1))
    else:
        per = info["samples_per_shard"]
        print(
            f"{info['shards']} shards, {info['samples']} samples (per shard min {per['min']}, "
            f"mean {per['mean']:.1f}, max {per['max']}); fields {info['fields']}"
        )
        print(f"labels: {info['label_field']}, {info['num_classes']} classes; manifest: {info['manifest']}")
        for line in info["damaged_shards"]:
            print(f"damaged: {line}")
        if info["empty_shards"]:
            print(f"empty shards: {info['empty_shards']}")
        if info["checked_images"]:
            print(f"decoded {info['checked_images']} images, {info['corrupt_images']} corrupt")
        for url in info["manifest_count_mismatch"]:
            print(f"count differs from the manifest: {url} (rewrite it with --write-manifest)")
    return 1 if info["damaged_shards"] else 0


def _vocab(a: argparse.Namespace) -> int:
    from scaling.data.captions import TermOptions
    from scaling.data.vocab_build import VocabOptions, build_vocab

    terms = TermOptions(
        hashtags=not a.no_hashtags,
        plurals=not a.keep_plurals,
        stop_words="none" if a.keep_stop_words else "english",
        min_length=a.min_length,
        synsets=a.synsets,
    )
    opts = VocabOptions(a.size, a.min_count, a.workers, a.sample, a.sketch, terms, a.overwrite)
    r = build_vocab(a.source, a.out, opts, progress=not a.quiet)
    bound = r["sketch"]["error_bound"]
    print(
        f"wrote {r['size']} terms from {r['captions']} captions ({r['samples']} samples, {r['no_caption']} "
        f"without a caption, {r['no_terms']} without a term) of {r['shards_read']} shards in {r['seconds']} s -> "
        f"{a.out} (hash {r['sha256']})"
    )
    print(f"most frequent: {', '.join(r['top'])}")
    print("counts exact" if not bound else f"document frequencies at most {bound} below the true ones (sketch)")
    if r["unreadable_shards"] or r["damaged_shards"]:
        print(f"skipped: {r['unreadable_shards']} unreadable shards, {r['damaged_shards']} damaged (read in part)")
    return 0


def _bench(a: argparse.Namespace) -> int:
    from scaling.data.bench import run_bench
    from scaling.data.config import DataConfig

    result = run_bench(
        a.shards,
        stage=a.stage,
        image_size=a.image_size,
        batch=a.batch,
        workers=a.workers,
        images=a.images,
        rounds=a.rounds,
        cfg=DataConfig(interpolation=a.interpolation, caption_vocab=a.caption_vocab),
    )
    text = json.dumps(result, indent=1)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    if a.json:
        print(text)
    else:
        ours, total = result["img_per_s_per_worker"], result["img_per_s"]
        print(f"ours      {ours:8.1f} img/s per worker ({total:.1f} total)")
        print(
            f"reference {result['reference_img_per_s_per_worker']:8.1f} img/s per worker "
            f"({result['reference_img_per_s']:.1f} total)"
        )
        print(f"ratio     {result['ratio']:8.2f}x  ({result['machine']['cpu']}, {result['workers']} workers)")
    return 0


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    args = _parser().parse_args(argv)
    try:
        return {"write": _write, "inspect": _inspect, "vocab": _vocab, "bench": _bench}[args.command](args)
    except ConfigError as e:
        print(f"scaling data {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
