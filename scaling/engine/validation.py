"""Validation during training: with `data.val` set, every `eval.every` samples (and after the last step) the
run computes the val loss (MAE: the masked-patch loss; WSP/fine-tune: cross-entropy) and, for classifiers,
top-1/top-5 over the whole val set, on all ranks, logged with that step to metrics.jsonl and TensorBoard.

Exact and deterministic: the val set is read in its fixed order (scaling/data/eval_set.py), rank r takes the
contiguous range `rank_range(r, W)` (disjoint, covering every sample: nothing dropped, nothing twice, the last
partial batch kept), sums are all-reduced. MAE masks come from per-sample seeds of the sample's index in the
val set, so the val loss does not depend on the number of ranks. Every rank runs the same number of forwards
(ZeRO-3 gathers parameters in each one): a rank whose range ends early runs its last batch again and
discards the result.

`classification_sums` is the pass itself, shared with `scaling eval` (scaling/eval/classify.py), so a
separate evaluation of the same checkpoint gives the same numbers.

kNN monitor (MAE runs, `eval.knn_monitor=DIR` with labelled `DIR/train` and `DIR/val`, e.g. the bundled
scaling/assets/fashion_mnist): the encoder's cls features of both sets, extracted across ranks (each rank its
range, then one all-reduce of the zero-padded [N, D] table), and DINO's weighted kNN vote (`knn_scores`, also
what `scaling eval --protocol knn` runs) give `val/knn_top1`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F

from scaling.config import ConfigError, Range, check_ranges
from scaling.data import normalize_images
from scaling.data.eval_set import EvalSet, EvalTransform
from scaling.kernels import sample_seeds

VAL_MASK_STEP = 0xFFFFFFFF  # the `step` of the val masks' seeds: a value no training micro-step reaches


@dataclass
class EvalConfig:
    """The `eval:` section of a run config."""

    every: int = 0  # samples between validations on data.val; 0: only after the last step
    micro_batch: int = 0  # per rank; 0: batch.micro_batch
    center_fraction: float = 0.875  # centre crop of the val transform (MAE: resize 256, crop 224)
    interpolation: Literal["bilinear", "bicubic"] = "bicubic"
    # MAE: a folder with labelled train/ and val/ sets (e.g. bundled:fashion_mnist) for a kNN top-1
    # monitor of the encoder's features at each validation; "" off.
    knn_monitor: str = ""
    knn_k: int = 20
    knn_temperature: float = 0.07

    RANGES: ClassVar[dict[str, Range]] = {
        "every": Range(0, note="samples; 0 validates after the last step only"),
        "micro_batch": Range(0, note="0 takes batch.micro_batch"),
        "center_fraction": Range(0, 1, lo_open=True, note="MAE: 0.875"),
        "knn_k": Range(1, note="DINO: 20"),
        "knn_temperature": Range(0, lo_open=True, note="DINO: 0.07"),
    }

    def __post_init__(self) -> None:
        from scaling.resources import data_source

        self.knn_monitor = data_source(self.knn_monitor)  # bundled:fashion_mnist from any folder
        check_ranges(self, "eval")


def _blank(transform: EvalTransform) -> dict[str, Any]:
    """A one-image batch for the padding forwards of a rank whose range is empty (fewer samples than ranks)."""
    return {"image": torch.zeros(1, 3, transform.size, transform.size, dtype=torch.uint8), "key": [""]}


def forwards_per_rank(num_samples: int, world_size: int, micro_batch: int) -> int:
    """Batches of the largest rank range: the number of forwards every rank runs."""
    return math.ceil(math.ceil(num_samples / world_size) / micro_batch)


def knn_scores(
    train_x: torch.Tensor, train_y: torch.Tensor, query_x: torch.Tensor, num_classes: int,
    k: int = 20, temperature: float = 0.07, chunk: int = 1024,
) -> torch.Tensor:
    """DINO's weighted kNN vote: totals [Nq, C] of exp(cos / T) over each query's k most similar training
    samples (features L2-normalised here)."""
    if k < 1 or k > train_x.shape[0]:
        raise ValueError(f"kNN k={k}: must be in [1, {train_x.shape[0]}] (the training set size).")
    bank = F.normalize(train_x.float(), dim=1)
    out = torch.zeros(query_x.shape[0], num_classes)
    for start in range(0, query_x.shape[0], chunk):
        q = F.normalize(query_x[start : start + chunk].float(), dim=1)
        sim, idx = (q @ bank.T).topk(k, dim=1)  # [b, k]
        out[start : start + chunk].scatter_add_(1, train_y[idx], (sim / temperature).exp())
    return out


def feature_table(
    encode: Callable[[torch.Tensor], torch.Tensor], data: EvalSet, transform: EvalTransform, micro_batch: int,
    rank: int, world_size: int, device: torch.device, dtype: torch.dtype, mean: tuple, std: tuple, width: int,
    keys: list[str] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(features float32 [N, width], labels int64 [N]) of the whole set on every rank: each rank encodes its
    range (the same number of forwards everywhere), then one all-reduce of the zero-padded table. `keys`, when
    given, receives this rank's sample keys in order."""
    import torch.distributed as dist

    n = data.num_samples
    table = torch.zeros(n, width + 1, dtype=torch.float32, device=device)  # last column: the label
    lo, hi = data.rank_range(rank, world_size)
    batches = data.batches(transform, micro_batch, lo, hi)
    at, last = lo, None
    for _ in range(forwards_per_rank(n, world_size, micro_batch)):
        batch = next(batches, None)
        images = normalize_images((batch or last or _blank(transform))["image"].to(device), dtype=dtype, mean=mean,
                                  std=std)
        feats = encode(images).float()
        if batch is None:
            continue
        b = len(batch["key"])
        table[at : at + b, :width] = feats
        table[at : at + b, width] = batch["label"].to(device).float()
        if keys is not None:
            keys.extend(batch["key"])
        last, at = batch, at + b
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(table)
    table = table.cpu()
    return table[:, :width], table[:, width].round().long()


def classification_sums(
    forward: Callable[[torch.Tensor], torch.Tensor],
    data: EvalSet,
    transform: EvalTransform,
    micro_batch: int,
    rank: int,
    world_size: int,
    device: torch.device,
    dtype: torch.dtype,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    num_classes: int,
) -> torch.Tensor:
    """This rank's float64 sums [4 + 2C]: cross-entropy sum, top-1 hits, top-5 hits, samples, then per class
    top-1 hits [C] and samples [C]. All-reduce them to get the whole set's."""
    sums = torch.zeros(4 + 2 * num_classes, dtype=torch.float64)
    lo, hi = data.rank_range(rank, world_size)
    batches = data.batches(transform, micro_batch, lo, hi)
    last = None
    for _ in range(forwards_per_rank(data.num_samples, world_size, micro_batch)):
        batch = next(batches, None)
        images = normalize_images((batch or last or _blank(transform))["image"].to(device), dtype=dtype, mean=mean,
                                  std=std)
        logits = forward(images).float()
        if batch is None:
            continue  # a padding forward: this rank's range is done
        last = batch
        labels = batch["label"].to(device)
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        hit1 = (top[:, 0] == labels).double().cpu()
        sums[0] += float(F.cross_entropy(logits, labels, reduction="sum"))
        sums[1] += float(hit1.sum())
        sums[2] += float((top == labels[:, None]).any(dim=1).double().sum())
        sums[3] += len(labels)
        sums[4 : 4 + num_classes].index_add_(0, batch["label"], hit1)
        sums[4 + num_classes :].index_add_(0, batch["label"], torch.ones(len(labels), dtype=torch.float64))
    return sums


def mae_sums(
    engine: Any, data: EvalSet, transform: EvalTransform, micro_batch: int, rank: int, world_size: int,
    device: torch.device, dtype: torch.dtype, mean: tuple, std: tuple, seed: int, mask_ratio: float,
) -> torch.Tensor:
    """[loss x samples summed, samples] of this rank; masks seeded by each sample's index in the val set."""
    sums = torch.zeros(2, dtype=torch.float64)
    lo, hi = data.rank_range(rank, world_size)
    seeds = sample_seeds(seed, VAL_MASK_STEP, 0, data.num_samples)
    batches = data.batches(transform, micro_batch, lo, hi)
    at, last = lo, None
    for _ in range(forwards_per_rank(data.num_samples, world_size, micro_batch)):
        batch = next(batches, None)
        b = batch or last or _blank(transform)
        n = len(b["key"])
        start = at if batch is not None else max(at - n, 0)
        images = normalize_images(b["image"].to(device), dtype=dtype, mean=mean, std=std)
        loss, _, _ = engine(images, mask_ratio=mask_ratio, seeds=seeds[start : start + n].to(device))
        if batch is None:
            continue
        last, at = batch, at + n
        sums[0] += float(loss) * n
        sums[1] += n
    return sums


class Validator:
    """Built once per run when data.val is set; `maybe(...)` runs on every rank at the due steps."""

    def __init__(self, cfg: Any, rank: int, world_size: int, device: torch.device, image_size: int,
                 num_classes: int, global_batch: int, total_steps: int) -> None:
        self.cfg, self.rank, self.world_size, self.device = cfg, rank, world_size, device
        self.data = EvalSet(cfg.data.val, need_labels=cfg.stage != "mae") if cfg.data.val else None
        self.knn: tuple[EvalSet, EvalSet] | None = None
        if cfg.eval.knn_monitor:
            if cfg.stage != "mae":
                raise ConfigError("eval.knn_monitor is for stage mae (classifiers report val/top1 instead).")
            root = cfg.eval.knn_monitor.rstrip("/")
            self.knn = (EvalSet(f"{root}/train"), EvalSet(f"{root}/val"))
            if self.knn[0].classes != self.knn[1].classes:
                raise ConfigError(f"eval.knn_monitor={root!r}: train/ and val/ have different class lists.")
        self.num_classes = num_classes
        if self.data is not None and cfg.stage != "mae" and len(self.data.classes) != num_classes:
            raise ConfigError(
                f"data.val={cfg.data.val!r} has {len(self.data.classes)} classes but the model's head has "
                f"{num_classes}: validate on a set with the training set's class list.")
        self.transform = EvalTransform(image_size, cfg.eval.center_fraction, cfg.eval.interpolation)
        self.micro_batch = cfg.eval.micro_batch or cfg.batch.micro_batch
        self.every = max(cfg.eval.every // global_batch, 1) if cfg.eval.every else 0
        self.total_steps = total_steps
        self.last: dict[str, float] = {}
        self.per_class: dict[str, float | None] = {}

    def due(self, step: int) -> bool:
        return step == self.total_steps or bool(self.every and step % self.every == 0)

    @torch.no_grad()
    def run(self, engine: Any) -> dict[str, float]:
        from scaling.engine.distributed import all_reduce_sum
        from scaling.engine.parallelize import PRECISION_DTYPES

        cfg = self.cfg
        dtype = PRECISION_DTYPES[cfg.deepspeed.precision]
        args = (self.data, self.transform, self.micro_batch, self.rank, self.world_size, self.device, dtype,
                cfg.data.mean, cfg.data.std)
        was_training = engine.training
        engine.eval()
        out: dict[str, float] = {}
        try:
            if self.knn is not None:
                out["val/knn_top1"] = self._knn(engine, dtype)
            if self.data is None:
                pass
            elif cfg.stage == "mae":
                loss_sum, n = all_reduce_sum(mae_sums(engine, *args, cfg.seed, cfg.model.mask_ratio).tolist(),
                                             self.device)
                out.update({"val/loss": loss_sum / n, "val/samples": int(n)})
            else:
                sums = all_reduce_sum(classification_sums(engine, *args, self.num_classes).tolist(), self.device)
                n, c = sums[3], self.num_classes
                out.update({"val/loss": sums[0] / n, "val/top1": sums[1] / n, "val/top5": sums[2] / n,
                            "val/samples": int(n)})
                self.per_class = {name: (h / k if k else None) for name, h, k in
                                  zip(self.data.classes, sums[4 : 4 + c], sums[4 + c :])}
        finally:
            engine.train(was_training)
        self.last = out
        if self.rank == 0:  # the whole last validation, per-class accuracy included, for `scaling eval`
            from pathlib import Path

            from scaling.engine.run_dir import write_json

            write_json(Path(cfg.run_dir) / "val.json", {**out, "per_class": self.per_class})
        return out

    def _knn(self, engine: Any, dtype: torch.dtype) -> float:
        import deepspeed

        cfg, enc = self.cfg, engine.module.encoder
        args = (self.transform, self.micro_batch, self.rank, self.world_size, self.device, dtype, cfg.data.mean,
                cfg.data.std, enc.spec.width)
        # The encoder is called below its root module, so ZeRO-3's hooks gather only its children's parameters:
        # gather its own (cls_token, pos_embed) for the pass, on every rank (a collective; no-op unsharded).
        with deepspeed.zero.GatheredParameters(list(enc.parameters(recurse=False))):
            bank, bank_y = feature_table(lambda x: enc.forward_features(x)[:, 0], self.knn[0], *args)
            query, query_y = feature_table(lambda x: enc.forward_features(x)[:, 0], self.knn[1], *args)
        scores = knn_scores(bank, bank_y, query, len(self.knn[0].classes), cfg.eval.knn_k, cfg.eval.knn_temperature)
        return float((scores.argmax(dim=1) == query_y).double().mean())

    def maybe(self, step: int, engine: Any) -> dict[str, float]:
        return self.run(engine) if self.due(step) else {}

    def summary_eval(self) -> dict[str, float]:
        """summary.json["eval"] entries of the last validation: accuracies only (the contract: values in [0, 1];
        losses stay in metrics.jsonl and val.json). finetune_* for fine-tune runs, else val_*."""
        prefix = "finetune" if self.cfg.stage == "finetune" else "val"
        return {f"{prefix}_{k.split('/')[1]}": v for k, v in self.last.items()
                if k in ("val/top1", "val/top5", "val/knn_top1")}


def build_validator(cfg: Any, dist: Any, session: Any, total_steps: int) -> Validator | None:
    """A Validator when data.val is set (None otherwise)."""
    if not cfg.data.val and not cfg.eval.knn_monitor:
        return None
    num_classes = 0 if cfg.stage == "mae" else (cfg.model.num_classes or session.streams.num_classes)
    return Validator(cfg, dist.rank, dist.world_size, dist.device, session.spec.img_size, num_classes,
                     session.global_batch, total_steps)
