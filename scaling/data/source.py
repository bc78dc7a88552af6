"""Open a data source string once, at start: shards or `synthetic`, with the checks that must fail early.

A whole missing dataset is an error here, before any worker starts; single missing shards are logged and
then retried and skipped by the reader like any unreadable shard. Every rank opens a source, so opening costs
O(1) in the shard count: the manifest is read once and at most PROBED shards are stat'ed (a wrong path or
pattern misses them all; a few missing shards among 100k are found when read, as any unreadable shard).
With data.caption_vocab (stages that need labels) the vocabulary file is read here too: once per rank.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from scaling.config import ConfigError
from scaling.data.config import DataConfig
from scaling.data.reader import Item, TarSource
from scaling.data.shards import ShardSet, is_local, list_shards, missing_local, probe_indices
from scaling.data.skips import SkipCounter
from scaling.data.synthetic import SyntheticSource, synthetic_counts
from scaling.data.vocab import CaptionVocab, load_vocab

log = logging.getLogger("scaling.data")
SYNTHETIC_CLASSES = 10  # classes of `synthetic` when data.num_classes is 0
PROBED = 16  # shards stat'ed at open


@dataclass
class Source:
    name: str
    counts: np.ndarray | None  # int64 [S] samples per shard, None when unknown
    num_shards: int
    num_classes: int  # size of the label vocabulary (0: unknown)
    reader: TarSource | SyntheticSource
    synthetic: bool = False
    caption_vocab: CaptionVocab | None = None  # labels read from captions (data.caption_vocab)
    start_skips: dict[str, int] = field(default_factory=dict)  # problems found while opening

    def read(self, shard: int, lo: int, hi: int | None, skips: SkipCounter) -> Iterator[Item]:
        return self.reader.read(shard, lo, hi, skips)


def open_source(cfg: DataConfig, spec: str, need_labels: bool) -> Source:
    if spec.strip() == "synthetic":
        counts = synthetic_counts(cfg.synthetic_samples)
        classes = cfg.num_classes or SYNTHETIC_CLASSES
        return Source("synthetic", counts, len(counts), classes, SyntheticSource(classes), synthetic=True)
    shards = list_shards(spec)
    check_reachable(shards, spec)
    vocab = load_vocab(cfg.caption_vocab) if need_labels and cfg.caption_vocab else None
    if need_labels and vocab is None and shards.label_field == "none":
        raise ConfigError(
            f"{spec!r} holds no labels (its manifest says label_field none, e.g. img2dataset "
            "shards): label them from their captions (`scaling data vocab SHARDS --out VOCAB.json`, then "
            "data.caption_vocab=VOCAB.json), use stage mae, or rewrite them with `scaling data write SRC OUT "
            "--labels FILE`."
        )
    skips: dict[str, int] = {}
    if shards.counts is not None and (shards.counts == 0).any():
        skips["empty_shard"] = int((shards.counts == 0).sum())
        log.warning("data: %d shards of %s are empty; they are skipped", skips["empty_shard"], spec)
    reader = TarSource(shards, need_labels, cfg.shard_retries, cfg.retry_delay_s, captions=vocab)
    classes = len(vocab) if vocab is not None else len(shards.classes)
    return Source(spec, shards.counts, len(shards.urls), classes, reader, start_skips=skips, caption_vocab=vocab)


def check_reachable(shards: ShardSet, spec: str) -> None:
    probed = [shards.urls[i] for i in probe_indices(len(shards.urls), PROBED)]
    missing = missing_local(probed)
    what = f"its {len(shards.urls)} shards" if len(probed) == len(shards.urls) else (
        f"the {len(probed)} of its {len(shards.urls)} shards checked (evenly spaced)")
    if missing and len(missing) == len(probed):
        raise ConfigError(
            f"data source {spec!r}: none of {what} exist (first: "
            f"{missing[0]!r}). Check the path or brace pattern, or write shards with "
            "`scaling data write SRC OUT_DIR`."
        )
    if missing:
        log.error(
            "data: %d of %s of %s are missing (first: %s); their samples will be skipped",
            len(missing),
            what,
            spec,
            missing[0],
        )
    if not is_local(shards.urls[0]):
        import webdataset as wds

        try:
            with wds.gopen(shards.urls[0], "rb") as stream:
                head = stream.read(512)
        except Exception as e:  # noqa: BLE001 - gopen raises whatever its transport raises
            raise ConfigError(
                f"data source {spec!r}: cannot open its first shard {shards.urls[0]!r} ({e})."
            ) from e
        if len(head) < 512:
            raise ConfigError(
                f"data source {spec!r}: its first shard {shards.urls[0]!r} is empty or unreachable."
            )
