"""The training loop for every stage: fetch, forward, backward, clip, step, log, checkpoint.

One code path for one process or N ranks, CPU (gloo) or GPU (NCCL). `build_session` does the setup
(data streams, DeepSpeed config, run dir, model, optimizer, resume); `_step` runs one optimizer step of
`grad_accum` micro-batches; `train` is the loop around it that logs and checkpoints.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from scaling.config import dump_yaml
from scaling.data import normalize_images
from scaling.data.augment import augment_batch, batch_seed
from scaling.engine import checkpoint as ckpt
from scaling.engine.config import TrainConfig
from scaling.engine.distributed import DistInfo, all_reduce_sum, barrier, setup, teardown
from scaling.engine.ds_config import build_ds_config, check_with_deepspeed, load_policy
from scaling.engine.metrics import MetricsLogger
from scaling.engine.optim import build_optimizer, param_groups
from scaling.engine.parallelize import (
    PRECISION_DTYPES,
    apply_activation_checkpointing,
    build_model,
    load_into_model,
    misaligned_partitions,
    swap_in_apex_layernorm,
)
from scaling.engine.run_dir import config_hash, prepare_run_dir, write_json
from scaling.engine.schedule import lr_at, peak_lr
from scaling.engine.streams import MicroBatchStreams
from scaling.engine.validation import build_validator
from scaling.flops import device_kind, encoder_params, mfu, stage_flops
from scaling.kernels import sample_seeds
from scaling.models import ViTSpec, get_spec, set_kernels, soft_target_cross_entropy
from scaling.models.vit import fit_encoder_to_pool
from scaling.models.weights import WeightsError


class TrainingDiverged(RuntimeError):
    pass


@dataclass
class TrainState:
    step: int = 0  # optimizer steps taken
    samples_seen: int = 0
    skipped_steps: int = 0  # micro-batches dropped for a non-finite loss, in total
    bad_in_a_row: int = 0
    injected_at: int = 0  # debug.nan_loss_at_steps: the step last poisoned (each listed step once)


@dataclass
class Session:
    """Everything the loop needs, built once by `build_session`."""

    cfg: TrainConfig
    dist: DistInfo
    spec: ViTSpec
    run_dir: Path
    engine: Any
    scheduler: Any
    streams: MicroBatchStreams
    state: TrainState
    global_batch: int
    flops_per_sample: float


class PreemptionFlag:
    """SIGTERM/SIGUSR1 set a flag; the loop all-reduces it each step (so one signalled rank is enough),
    checkpoints and exits cleanly."""

    def __init__(self) -> None:
        self.raised = 0.0
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:  # noqa: ARG002
        self.raised = 1.0


def build_session(cfg: TrainConfig, dist: DistInfo) -> Session:
    global_batch, grad_accum = cfg.batch.resolve(dist.world_size)  # before anything is written or built
    cfg.batch.grad_accum = grad_accum
    set_kernels(cfg.model.kernels)
    torch.manual_seed(cfg.seed)
    spec = get_spec(cfg.model.name, **cfg.model.spec_overrides())
    # Opening the dataset comes first too: a missing one fails here, before any file is written.
    streams = MicroBatchStreams(cfg.data, stage=cfg.stage, image_size=spec.img_size,
                                micro_batch=cfg.batch.micro_batch, rank=dist.rank, world_size=dist.world_size,
                                grad_accum=grad_accum, seed=cfg.seed)
    num_classes = 0 if cfg.stage == "mae" else (cfg.model.num_classes or streams.num_classes)
    ds_cfg = build_ds_config(load_policy(cfg.deepspeed.config), micro_batch=cfg.batch.micro_batch,
                             grad_accum=grad_accum, world_size=dist.world_size, precision=cfg.deepspeed.precision,
                             clip_grad=cfg.optim.clip_grad, width=spec.width)
    check_with_deepspeed(ds_cfg)
    run_dir = Path(cfg.run_dir)
    resume_tag = ckpt.find_resume(run_dir, cfg.resume)
    if resume_tag is not None and ckpt.read_marker(resume_tag)["world_size"] != dist.world_size:
        resume_tag = ckpt.to_universal(resume_tag, dist.rank)  # a resized job: DeepSpeed's universal format
        ds_cfg["checkpoint"] = {"load_universal": True}
    if dist.is_main:
        prepare_run_dir(run_dir, cfg, resuming=resume_tag is not None)
        dump_yaml(cfg, run_dir / "config.yaml")
        write_json(run_dir / "ds_config.json", ds_cfg)
    barrier()

    model = build_model(cfg, ds_cfg, num_classes)
    if cfg.stage != "mae" and cfg.init_from and resume_tag is None:
        from scaling.engine.consolidate import encoder_weights

        _load_encoder(model, fit_encoder_to_pool(model, encoder_weights(cfg.init_from)))
    if cfg.optim.impl == "apex":
        swap_in_apex_layernorm(model)
    if cfg.model.activation_checkpointing:
        apply_activation_checkpointing(model)

    lr = peak_lr(cfg.optim.base_lr, cfg.optim.lr, global_batch)
    groups = param_groups(model, cfg.optim.weight_decay, cfg.optim.layer_decay, spec.depth)
    optimizer = build_optimizer(groups, cfg.optim.impl, lr, cfg.optim.betas, cfg.optim.eps, dist.device.type)
    schedule = dict(peak_lr=lr, min_lr=cfg.optim.min_lr, warmup_samples=cfg.optim.warmup_samples,
                    total_samples=cfg.total_samples)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_at(step * global_batch, **schedule) / lr)
    import deepspeed

    engine, _, _, scheduler = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=scheduler,
                                                   config=ds_cfg)
    if dist.is_main and (misaligned := misaligned_partitions(model)):
        logging.getLogger(__name__).warning(
            "%d parameters start off a 16-byte boundary in ZeRO-3's flat buffer (first: %s); matmuls on them use "
            "slower GPU kernels. Put tensors whose size is not a multiple of 8 last (scaling/engine/optim.py).",
            len(misaligned), misaligned[0])
    state = TrainState()
    if resume_tag is not None:
        _, client = engine.load_checkpoint(str(resume_tag.parent), tag=resume_tag.name)
        state = TrainState(**client["train_state"])
        if ds_cfg.get("checkpoint", {}).get("load_universal"):
            _repair_universal_load(engine.optimizer, groups, scheduler, lr)
        streams.load_state_dict(ckpt.load_stream_states(resume_tag))
        if ckpt.read_marker(resume_tag)["world_size"] == dist.world_size:
            ckpt.set_rng_state(ckpt.load_rank_state(resume_tag, dist.rank)["rng"])
    per_sample = stage_flops(spec, cfg.stage, cfg.model.mask_ratio, num_classes).train
    return Session(cfg, dist, spec, run_dir, engine, scheduler, streams, state, global_batch, per_sample)


def _loss(s: Session, batch: dict[str, Any], stream: int, index: int) -> torch.Tensor:
    cfg, device = s.cfg, s.dist.device
    if cfg.stage == "finetune":  # RandAugment/erasing/mixup, generators seeded per (seed, stream, index)
        images, targets = augment_batch(cfg.augment, batch["image"], batch["target"], device=device,
                                        seed=batch_seed(cfg.seed, stream, index), mean=cfg.data.mean,
                                        std=cfg.data.std, dtype=PRECISION_DTYPES[cfg.deepspeed.precision])
        return soft_target_cross_entropy(s.engine(images), targets)
    images = normalize_images(batch["image"].to(device, non_blocking=True),
                              dtype=PRECISION_DTYPES[cfg.deepspeed.precision], mean=cfg.data.mean, std=cfg.data.std)
    if cfg.stage == "mae":
        # Masks from (seed, batch index, data stream): equal for any split of the global batch into ranks
        # and accumulation steps, and reproduced exactly after a resume.
        seeds = sample_seeds(cfg.seed, index, stream, images.shape[0], device=device)
        loss, _, _ = s.engine(images, mask_ratio=cfg.model.mask_ratio, seeds=seeds)
        return loss
    return soft_target_cross_entropy(s.engine(images), batch["target"].to(device))


def _step(s: Session) -> tuple[float, int]:
    """One optimizer step of grad_accum good micro-batches. A micro-batch whose loss is non-finite on any
    rank is dropped on every rank (no backward) and counted. Returns (loss sum, micro-batches used)."""
    cfg, state = s.cfg, s.state
    loss_sum, used = 0.0, 0
    while used < cfg.batch.grad_accum:
        batch, stream, index = s.streams.next(used)
        loss = _loss(s, batch, stream, index)
        if state.step + 1 in cfg.debug.nan_loss_at_steps and state.injected_at != state.step + 1:
            state.injected_at = state.step + 1
            if s.dist.rank == 0:  # fault injection for the tests of this path: one rank is enough
                loss = loss * float("nan")
        (bad,) = all_reduce_sum([0.0 if torch.isfinite(loss).item() else 1.0], s.dist.device)
        if bad:
            state.skipped_steps += 1
            state.bad_in_a_row += 1
            if state.bad_in_a_row >= cfg.max_bad_steps:
                raise TrainingDiverged(
                    f"loss was NaN/Inf on {state.bad_in_a_row} micro-batches in a row at step {state.step + 1}; "
                    "stopping. The last good checkpoint is intact: lower optim.lr or optim.base_lr, check the "
                    f"data, then resume=auto. (max_bad_steps={cfg.max_bad_steps})")
            continue
        state.bad_in_a_row = 0
        s.engine.backward(loss)
        s.engine.step()
        loss_sum += loss.item()
        used += 1
    return loss_sum, used


def _save(s: Session) -> None:
    client = {"config_hash": config_hash(s.cfg), "stage": s.cfg.stage, "model": s.cfg.model.name,
              "train_state": vars(s.state), "samples_seen": s.state.samples_seen}
    ckpt.save(s.engine, s.run_dir, s.state.step, client, s.streams.state_dict(), s.dist.rank, s.dist.world_size,
              s.cfg.keep_checkpoints)


def _record(s: Session, loss: float, seconds: float, start: float) -> dict[str, Any]:
    device = s.dist.device
    flops_per_s = s.flops_per_sample * s.global_batch / seconds / s.dist.world_size
    gpu = device_kind(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
    grad_norm = s.engine.get_global_grad_norm()
    if device.type == "cuda":
        mem = torch.cuda.max_memory_allocated(device) / 1e9
    else:
        import psutil

        mem = psutil.Process().memory_info().rss / 1e9
    return {"step": s.state.step, "samples_seen": s.state.samples_seen, "loss": loss,
            "lr": s.scheduler.get_last_lr()[0], "grad_norm": None if grad_norm is None else float(grad_norm),
            "img_per_s": s.global_batch / seconds, "tflops_per_device": flops_per_s / 1e12,
            "mfu": mfu(flops_per_s, gpu), "mem_gb": mem, "time": time.time() - start,
            "skipped_steps": s.state.skipped_steps, **{f"data/{k}": v for k, v in s.streams.stats().items()}}


def train(cfg: TrainConfig) -> dict[str, Any]:
    dist = setup()
    s = build_session(cfg, dist)
    total_steps = math.ceil(cfg.total_samples / s.global_batch)
    validator = build_validator(cfg, dist, s, total_steps)  # None without data.val
    every = max(cfg.checkpoint_every // s.global_batch, 1) if cfg.checkpoint_every else 0
    logger = MetricsLogger(s.run_dir, dist.is_main, total_steps, s.state.step, f"{cfg.stage} {cfg.model.name}")
    preempt, loss, stop, start = PreemptionFlag(), float("nan"), 0.0, time.time()
    try:
        while s.state.step < total_steps:
            t0 = time.perf_counter()
            loss_sum, used = _step(s)
            s.state.step += 1
            s.state.samples_seen += s.global_batch
            loss_total, count, stop = all_reduce_sum([loss_sum, used, preempt.raised], dist.device)
            loss = loss_total / count
            logger.advance()
            seconds = time.perf_counter() - t0
            val = validator.maybe(s.state.step, s.engine) if validator else {}  # every rank
            if val or s.state.step % cfg.log_every == 0 or s.state.step == total_steps:
                logger.log({**_record(s, loss, seconds, start), **val})
            if stop:
                _save(s)
                break
            if every and s.state.step % every == 0 and s.state.step < total_steps:
                _save(s)
        else:
            _save(s)
    finally:
        logger.close()
        s.streams.close()
    summary = {"run": s.run_dir.name, "stage": cfg.stage, "model": cfg.model.name, "recipe": _recipe(cfg),
               "params": encoder_params(s.spec), "samples_seen": s.state.samples_seen,
               "flops": s.flops_per_sample * s.state.samples_seen, "loss": loss, "steps": s.state.step,
               "skipped_steps": s.state.skipped_steps, "world_size": dist.world_size,
               "preempted": bool(stop) and s.state.step < total_steps,
               "eval": validator.summary_eval() if validator else {}}
    if dist.is_main:
        write_json(s.run_dir / "summary.json", summary)
    teardown(s.engine)
    return summary


def _load_encoder(model, sd: dict[str, torch.Tensor]) -> None:
    """Stage-1 encoder into a classifier: every encoder tensor must fit (checked before any copy); the
    head keeps its fresh initialisation."""
    try:
        load_into_model(model, sd, strict=True, allow_missing=("head.",))
    except WeightsError as e:
        raise WeightsError(f"stage-1 {e} Is model.name the same as stage 1's?") from e


def _repair_universal_load(optimizer, groups: list[dict], scheduler, peak: float) -> None:
    """Undo two faults of DeepSpeed 0.19's universal-checkpoint load (zero/stage3.py,
    load_hp_checkpoint_state_from_checkpoint_dir_stage3):
    - it copies param group 0's hyperparameters into every group, which erases the decay/no-decay split and
      layer-wise lr scales: put ours back (the scheduler's own state was loaded intact);
    - it gives every sub-group's Adam state the *same* `step` tensor, which torch's AdamW increments in
      place, so with G groups the step advanced G times per optimizer step and the bias corrections drifted
      (losses 0.5% off the uninterrupted run after a few steps): give each state its own copy."""
    inner = getattr(optimizer, "optimizer", optimizer)
    for state in inner.state.values():
        if isinstance(state.get("step"), torch.Tensor):
            state["step"] = state["step"].clone()
    if len(inner.param_groups) != len(groups):
        raise RuntimeError(f"optimizer has {len(inner.param_groups)} param groups after the universal load, "
                           f"expected {len(groups)}")
    for ours, theirs, last_lr in zip(groups, inner.param_groups, scheduler.get_last_lr()):
        theirs["weight_decay"] = ours["weight_decay"]
        theirs["lr_scale"] = ours["lr_scale"]
        theirs["initial_lr"] = peak * ours["lr_scale"]
        theirs["lr"] = last_lr


def _recipe(cfg: TrainConfig) -> str:
    if cfg.stage == "mae":
        return "mae"
    return f"mae_{cfg.stage}" if cfg.init_from else cfg.stage
