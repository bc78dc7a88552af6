"""`scaling data vocab`: one streaming pass over the captions of a shard source -> the K most frequent terms.

Shards are read by `workers` processes (caption_scan.py: tar headers and caption members only), each counting
terms into its own heavy-hitters sketch (sketch.py), merged at the end: memory is bounded by the sketch's
capacity per worker, whatever the number of captions, and the counts carry a stated error bound (0 when the
capacity was never reached: then they are exact). `--sample N` reads the first captions of evenly spread
shards, N in all, and opens no other shard. Every check that can fail runs before the pass, and the file is
written only after it, atomically.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from scaling.config import ConfigError
from scaling.data.caption_scan import ShardError, shard_caption_chunks, shard_captions
from scaling.data.captions import Normalizer, TermOptions
from scaling.data.shards import ShardSet, list_shards, probe_indices
from scaling.data.sketch import TermSketch
from scaling.data.source import check_reachable
from scaling.data.vocab import write_vocab

log = logging.getLogger("scaling.data")
BATCH_TERMS = 1 << 16  # terms buffered before they go into the sketch (C-speed counting per batch)


@dataclass(frozen=True)
class VocabOptions:
    size: int = 27_000  # SWAG's hashtag vocabulary was ~27k, CatLIP's synsets ~24k
    min_count: int = 1  # lowest document frequency kept
    workers: int = 4
    sample: int = 0  # 0: every caption; N: the first N captions of evenly spread shards
    sketch: int = 0  # counters per worker; 0: max(10 x size, 100_000)
    terms: TermOptions = field(default_factory=TermOptions)
    overwrite: bool = False

    def __post_init__(self) -> None:
        checks = (("--size", self.size, "the number of labels to keep; SWAG used about 27000"),
                  ("--min-count", self.min_count, "the lowest document frequency a term needs"),
                  ("--workers", self.workers, "processes reading shards"),
                  ("--sample", self.sample, "0 reads every caption"),
                  ("--sketch", self.sketch, "0 sizes the sketch from --size"))
        for name, value, why in checks:
            low = 0 if name in ("--sample", "--sketch") else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} {value!r}: must be an integer >= {low} ({why}).")
        if self.sketch and self.sketch < self.size:
            raise ConfigError(f"--sketch {self.sketch}: must be at least --size {self.size} (10x is the default).")

    @property
    def capacity(self) -> int:
        return self.sketch or max(10 * self.size, 100_000)


def plan_reads(shards: ShardSet, sample: int) -> list[tuple[int, int | None]]:
    """(shard index, caption quota) in reading order. --sample N: K = ceil(N / samples per shard) evenly spaced
    shards (first and last included), N split evenly over them; samples per shard from the manifest, else
    counted in the first shard (which is read anyway)."""
    n = len(shards.urls)
    if not sample:
        return [(i, None) for i in range(n)]
    if shards.counts is not None and shards.counts.sum() > 0:
        per_shard = float(shards.counts.sum()) / n
    else:
        try:
            per_shard = sum(1 for _ in shard_captions(shards.urls[0]))
        except ShardError:
            per_shard = 0
    k = min(n, max(1, math.ceil(sample / max(per_shard, 1))))
    picks = probe_indices(n, k)
    return [(s, sample // len(picks) + (j < sample % len(picks))) for j, s in enumerate(picks)]


def count_shard(url: str, quota: int | None, normalizer: Normalizer, sketch: TermSketch) -> dict[str, Any]:
    """Count the terms of one shard's captions (its first `quota` captions) into `sketch`."""
    samples = captions = no_terms = 0
    error = None
    distinct: list[str] = []
    occurrences: list[str] = []
    # Bound methods in locals: this loop runs once per caption, a billion times.
    term_list, unique, add_distinct, add_all = normalizer.term_list, dict.fromkeys, distinct.extend, occurrences.extend
    try:
        with closing(shard_caption_chunks(url)) as stream:
            for chunk in stream:
                texts = [c for c in chunk if c is not None] if None in chunk else chunk
                if quota is not None and captions + len(texts) >= quota:  # the last chunk: cut at the quota
                    texts = texts[: quota - captions]
                    chunk = chunk[: _index_of_nth(chunk, len(texts)) + 1]
                samples += len(chunk)
                captions += len(texts)
                for caption in texts:
                    terms = term_list(caption)
                    if terms:
                        add_distinct(unique(terms))
                        add_all(terms)
                    else:
                        no_terms += 1
                if len(occurrences) > BATCH_TERMS:
                    sketch.add(distinct, occurrences)
                    distinct.clear()
                    occurrences.clear()
                if captions == quota:
                    break
    except ShardError as e:
        error = f"{url}: {e}"
    sketch.add(distinct, occurrences)
    return {"samples": samples, "captions": captions, "no_terms": no_terms, "error": error}


def _index_of_nth(chunk: list[str | None], n: int) -> int:
    """The index of the n-th caption (n >= 1) in a chunk that has None for samples without one."""
    seen = 0
    for i, c in enumerate(chunk):
        seen += c is not None
        if seen == n:
            return i
    raise ValueError(n)


def _worker(tasks: Any, results: Any, capacity: int, options: TermOptions) -> None:
    try:
        normalizer, sketch = Normalizer(options), TermSketch(capacity)
        for index, url, quota in iter(tasks.get, None):
            results.put(("shard", index, count_shard(url, quota, normalizer, sketch)))
        results.put(("sketch", sketch.state(), None))
    except Exception as e:  # noqa: BLE001 - reported to the parent, which stops the pass
        results.put(("error", f"{type(e).__name__}: {e}", None))


class _Tally:
    """Totals over shards, the progress bar, and the early check that the source has captions at all."""

    def __init__(self, source: str, total: int | None, progress: bool) -> None:
        self.source = source
        self.totals = {"samples": 0, "captions": 0, "no_caption": 0, "no_terms": 0, "shards_read": 0,
                       "unreadable_shards": 0, "damaged_shards": 0}
        self.bar = tqdm(total=total, unit=" captions", unit_scale=True, desc="data vocab", disable=not progress)
        self.checked = False

    def add(self, url: str, stats: dict[str, Any]) -> None:
        t = self.totals
        t["shards_read"] += 1
        t["samples"] += stats["samples"]
        t["captions"] += stats["captions"]
        t["no_caption"] += stats["samples"] - stats["captions"]
        t["no_terms"] += stats["no_terms"]
        if stats["error"]:
            kind = "damaged_shards" if stats["samples"] else "unreadable_shards"
            t[kind] += 1
            log.warning("data vocab: %s shard %s; %d so far", kind.split("_")[0], stats["error"], t[kind])
        self.bar.update(stats["captions"])
        if not self.checked and stats["samples"]:
            self.checked = True
            if not stats["captions"]:
                raise ConfigError(
                    f"{self.source!r} holds no captions: shard {url} has {stats['samples']} samples and no .txt "
                    "member nor a caption/text field in .json. Download with img2dataset's caption_col set (or "
                    "add KEY.txt captions), or train stage 2 on labelled shards (`scaling data write --labels`)."
                )


def _count(shards: ShardSet, reads: list[tuple[int, int | None]], opts: VocabOptions,
           tally: _Tally) -> TermSketch:
    """Run the pass; returns the merged sketch."""
    workers = min(opts.workers, len(reads))
    if workers <= 1:
        normalizer, sketch = Normalizer(opts.terms), TermSketch(opts.capacity)
        for index, quota in reads:
            tally.add(shards.urls[index], count_shard(shards.urls[index], quota, normalizer, sketch))
        return sketch
    tasks, results = multiprocessing.Queue(), multiprocessing.Queue()
    for index, quota in reads:
        tasks.put((index, shards.urls[index], quota))
    for _ in range(workers):
        tasks.put(None)
    procs = [multiprocessing.Process(target=_worker, args=(tasks, results, opts.capacity, opts.terms), daemon=True)
             for _ in range(workers)]
    for p in procs:
        p.start()
    merged, done = TermSketch(opts.capacity), 0
    try:
        while done < workers:
            kind, a, b = results.get()
            if kind == "shard":
                tally.add(shards.urls[a], b)
            elif kind == "sketch":
                merged.merge(TermSketch.from_state(a))
                done += 1
            else:
                raise RuntimeError(f"data vocab: a worker failed: {a}")
    finally:
        for p in procs:
            if p.is_alive() and done < workers:
                p.terminate()
            p.join()
    return merged


def _check_out(out: str, overwrite: bool) -> None:
    path = Path(out)
    if path.is_dir():
        raise ConfigError(f"--out {out!r} is a folder: give a file name, e.g. {out.rstrip('/')}/vocab.json.")
    if path.exists() and not overwrite:
        raise ConfigError(f"--out {out!r} exists: choose another name or pass --overwrite.")
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise ConfigError(f"--out {out!r}: cannot write under {str(parent)!r}; choose a writable folder.")


def build_vocab(source: str, out: str, opts: VocabOptions, progress: bool = True) -> dict[str, Any]:
    """Count, pick the top terms, write `out`; returns the file's header (all but the term list) and `top`."""
    _check_out(out, opts.overwrite)
    if opts.terms.synsets:
        Normalizer(opts.terms)  # fails now, not in a worker, when no WordNet is installed
    shards = list_shards(source)
    check_reachable(shards, source)
    start = time.perf_counter()
    reads = plan_reads(shards, opts.sample)
    total = opts.sample or (shards.num_samples if shards.num_samples else None)
    tally = _Tally(source, total, progress)
    try:
        sketch = _count(shards, reads, opts, tally)
    finally:
        tally.bar.close()
    totals = tally.totals
    if not totals["captions"]:
        raise ConfigError(
            f"{source!r} holds no captions in the {totals['shards_read']} shards read ({totals['samples']} "
            "samples): give shards with KEY.txt captions (img2dataset writes them), or check the path."
        )
    terms = sketch.top(opts.size, opts.min_count)
    if not terms:
        raise ConfigError(
            f"no term of {totals['captions']} captions reaches --min-count {opts.min_count} (stop-words and "
            "numbers are dropped): lower --min-count, or read more captions."
        )
    if len(terms) < opts.size:
        log.warning("data vocab: %d terms reach --min-count %d, fewer than --size %d", len(terms), opts.min_count,
                    opts.size)
    Path(out).absolute().parent.mkdir(parents=True, exist_ok=True)
    record = write_vocab(
        out, terms, opts.terms, source=source, requested_size=opts.size, min_count=opts.min_count,
        sample=opts.sample or None, shards=len(shards.urls), **totals,
        sketch={"capacity_per_worker": opts.capacity, "workers": min(opts.workers, len(reads)),
                "prunes": sketch.prunes, "error_bound": round(sketch.error_bound, 3)},
        seconds=round(time.perf_counter() - start, 2), created_by="scaling data vocab",
    )
    record["top"] = [t for t, _, _ in terms[:10]]
    return record
