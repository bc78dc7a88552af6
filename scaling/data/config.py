"""`DataConfig`: what the input pipeline reads and how, validated on construction.

Filled by `scaling.config.from_dict` from the `data:` section of a run config, e.g.
`data.train=shards/{000000..000999}.tar data.mode=epoch data.workers=8`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from scaling.config import ConfigError, Range, check_ranges

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class DataConfig:
    # Shards: a brace pattern (`shards/{000000..000999}.tar`), a `shards.json` manifest or its folder, a URL
    # webdataset can open (`https://host/shards/{000..099}.tar`, `pipe:aws s3 cp ... -`), several joined with
    # `::`, `bundled:photos7` (data shipped with the package: scaling.resources), or `synthetic`
    # (deterministic learnable images, for tests and smoke runs).
    train: str = "synthetic"
    # Held-out shards for evaluation (same forms as train); read by the evaluation code, not the train loader.
    val: str | None = None
    # resampled: infinite stream, shards drawn with replacement per worker (no counts needed; not one pass:
    # in one pass's worth of samples ~37% of the shards are never read). epoch: every sample once per epoch
    # (needs per-shard counts: a manifest), epochs chained; the recipes' one pass.
    mode: Literal["resampled", "epoch"] = "resampled"
    # DataLoader worker processes per rank, whatever grad_accum is; 0 runs the pipeline in the training process.
    workers: int = 2
    # Samples per shuffle block per worker: raw (encoded) samples are read a block at a time and emitted in a
    # random order; memory per worker is about shuffle_buffer x mean JPEG size.
    shuffle_buffer: int = 1000
    # Width of the soft targets; 0 takes the vocabulary size from the manifest or data.caption_vocab (10 for
    # `synthetic`).
    num_classes: int = 0
    # Stages with labels: label each sample with the terms of its caption found in this vocabulary file (from
    # `scaling data vocab SHARDS --out VOCAB.json`), soft targets 1/k over its k terms; a sample with none is
    # skipped and counted as data/no_label. Read once per rank.
    caption_vocab: str | None = None
    # The vocabulary's fingerprint, filled in at start and recorded in config.yaml: a resume with another
    # vocabulary is refused (a path may move; the hash may not change). Set: the file must have this hash.
    caption_vocab_hash: str = ""
    # Size of the `synthetic` dataset (samples per epoch in epoch mode).
    synthetic_samples: int = 100_000
    # cpu: decode + crop in the workers, uint8 batches on the CPU. gpu: workers only read bytes and pick
    # crops; nvJPEG decodes the batch on the current CUDA device (batch["image"] is then a CUDA tensor).
    decode: Literal["cpu", "gpu"] = "cpu"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    # RandomResizedCrop area lower bound, every stage; 0 = the stage's recipe: 0.2 for MAE (He et al.), 0.08
    # for WSP and fine-tuning (SWAG, the standard Inception crop).
    min_scale: float = 0.0
    interpolation: Literal["bilinear", "bicubic"] = "bilinear"
    # Batches each worker prepares ahead (DataLoader prefetch_factor); bounds memory with shuffle_buffer.
    prefetch: int = 2
    pin_memory: bool = False
    # A shard that cannot be opened is retried this many times (retry_delay_s apart), then skipped.
    shard_retries: int = 3
    retry_delay_s: float = 1.0
    # Bad-data warnings per kind are logged at most once per this many seconds (counts are always kept).
    log_every_s: float = 60.0

    RANGES: ClassVar[dict[str, Range]] = {
        "workers": Range(0, note="0 reads in the training process"),
        "shuffle_buffer": Range(1, note="1 disables sample shuffling"),
        "num_classes": Range(0, note="0 takes the size of the manifest's vocabulary"),
        "synthetic_samples": Range(1, note="the synthetic dataset's size"),
        "mean": Range(0, 1, note="per RGB channel, of pixels scaled to [0, 1]; ImageNet: 0.485, 0.456, 0.406"),
        "std": Range(0, lo_open=True, note="per RGB channel; ImageNet: 0.229, 0.224, 0.225"),
        "min_scale": Range(0, 1, note="the crop's smallest area fraction; MAE: 0.2; 0 takes the stage's"),
        "prefetch": Range(1, note="batches each worker prepares ahead"),
        "shard_retries": Range(0, note="0 skips an unreadable shard at once"),
        "retry_delay_s": Range(0, note="seconds"),
        "log_every_s": Range(0, note="seconds"),
    }

    def __post_init__(self) -> None:
        if not isinstance(self.train, str) or not self.train.strip():
            raise ConfigError(
                "data.train is empty: set it to a shard pattern (shards/{000000..000099}.tar), a shards.json "
                "manifest or its folder, a URL, or `synthetic`."
            )
        from scaling.resources import data_source

        # bundled:NAME (and the older scaling/assets/NAME) -> the installed package's copy, from any folder
        self.train = data_source(self.train)
        self.val = data_source(self.val) if self.val else self.val
        if self.mode not in ("resampled", "epoch"):
            raise ConfigError(f"data.mode={self.mode!r}: use `resampled` (infinite stream) or `epoch`.")
        if self.decode not in ("cpu", "gpu"):
            raise ConfigError(
                f"data.decode={self.decode!r}: use `cpu` or `gpu` (nvJPEG on the training GPU)."
            )
        if self.interpolation not in ("bilinear", "bicubic"):
            raise ConfigError(f"data.interpolation={self.interpolation!r}: use `bilinear` or `bicubic`.")
        self.mean = _triple(self.mean, "data.mean")
        self.std = _triple(self.std, "data.std")
        check_ranges(self, "data")
        if self.caption_vocab_hash and not _is_hex(self.caption_vocab_hash, 16):
            raise ConfigError(
                f"data.caption_vocab_hash={self.caption_vocab_hash!r}: 16 hex digits as config.yaml records "
                "them, or leave it empty (filled in from data.caption_vocab at start)."
            )


def _is_hex(text: str, length: int) -> bool:
    return len(text) == length and all(c in "0123456789abcdef" for c in text)


def _triple(value: tuple[float, ...], name: str) -> tuple[float, float, float]:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{name}={value!r}: give three numbers, one per RGB channel.") from e
    if len(out) != 3:
        raise ConfigError(f"{name}={value!r}: give three numbers, one per RGB channel.")
    return out  # type: ignore[return-value]
