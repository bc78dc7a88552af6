"""The training loop for every stage: fetch, forward, backward, clip, step, log, checkpoint.

One code path for one process or N ranks, CPU (gloo) or GPU (NCCL). `build_session` does the setup
(checks, model, optimizer; resume and checkpoints through `checkpointing.CheckpointManager`); `_step` runs
one optimizer step of `grad_accum` micro-batches; `train` is the loop around it that logs and checkpoints.

Non-finite steps: a step is skipped, on every rank, when any micro-batch of any rank has a non-finite loss
or the global gradient norm is not finite. A non-finite loss is made to poison its own backward (NaN
gradients), so both cases are one: DeepSpeed's overflow path, which finds the global norm invalid on every
rank, zeroes the gradients and leaves the optimizer state (Adam moments, step) untouched. The skipped step
still consumes its data and its place in the schedule (samples_seen and the lr move on, so the data streams
and the cosine horizon stay where an unskipped run has them); it is counted in `skipped_steps`, and
`max_bad_steps` skipped steps in a row stop the run (TrainingDiverged; the last checkpoint is intact). In
fp16, a skip with finite losses is the loss scaler's overflow: counted, not towards max_bad_steps.
Host syncs: none per micro-batch. The loss stays on the device; one all-reduce per step carries the loss
sum, the preemption flag and the data counters.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from scaling.config import ConfigError
from scaling.data import normalize_images
from scaling.data.augment import augment_batch, batch_seed
from scaling.data.skips import KINDS
from scaling.engine.checkpointing import CheckpointManager, check_on_rank0, summary_flops
from scaling.engine.config import TrainConfig
from scaling.engine.distributed import DistInfo, all_reduce_sum, setup, teardown
from scaling.engine.ds_config import build_ds_config, check_offload, check_with_deepspeed, load_policy
from scaling.engine.finished import complete_summary, last_logged_loss
from scaling.engine.load_weights import check_stage1, load_stage1_encoder
from scaling.engine.metrics import MetricsLogger
from scaling.engine.optim import build_optimizer, param_groups
from scaling.engine.parallelize import (
    PRECISION_DTYPES,
    build_model,
    misaligned_partitions,
    parallelize_model,
)
from scaling.engine.run_dir import write_json
from scaling.engine.schedule import lr_at, peak_lr
from scaling.engine.streams import MicroBatchStreams
from scaling.engine.validation import build_validator
from scaling.engine.wandb_run import require_wandb
from scaling.flops import device_kind, encoder_params, mfu, stage_flops
from scaling.kernels import sample_seeds
from scaling.models import ViTSpec, get_spec, set_kernels, soft_target_cross_entropy
from scaling.models.attention import announce as announce_kernels
from scaling.models.weights import WeightsError

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    pass


@dataclass
class TrainState:
    step: int = 0  # optimizer steps taken, skipped ones included
    samples_seen: int = 0  # samples drawn, those of skipped steps included
    skipped_steps: int = 0  # optimizer steps skipped for a non-finite loss or gradient norm, in total
    bad_in_a_row: int = 0
    elapsed_s: float = 0.0  # training seconds before this process started (the logged `time` continues)
    wandb_id: str = ""  # the W&B run this run logs to (logging.wandb): a resumed job continues it

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> TrainState:
        """From a checkpoint's train_state; keys of older versions (e.g. injected_at) are dropped."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in saved.items() if k in names})


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
    manager: CheckpointManager
    init_from_flops: float | None  # FLOPs that produced init_from (None: unknown or no init_from)


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
    """Checks first, then the model, then the run dir's files: every bad input (batch arithmetic, data, policy,
    offload ops, the resume's config, init_from) fails before anything is written, and a retry is accepted."""
    global_batch, grad_accum = cfg.batch.resolve(dist.world_size)
    require_wandb(cfg.logging)  # an optional package asked for: refused before anything is written
    # cfg keeps what the user gave (config.yaml must reload at another world size); the derived grad_accum
    # lives in the streams (len(streams.ids)).
    set_kernels(cfg.model.kernels)
    torch.manual_seed(cfg.seed)
    spec = get_spec(cfg.model.name, **cfg.model.spec_overrides())
    head_dims = [spec.width // spec.heads] + ([spec.decoder_width // spec.decoder_heads] if cfg.stage == "mae" else [])
    announce_kernels(dist.device, PRECISION_DTYPES[cfg.deepspeed.precision], head_dims)  # once, before the bar
    streams = MicroBatchStreams(cfg.data, stage=cfg.stage, image_size=spec.img_size,
                                micro_batch=cfg.batch.micro_batch, rank=dist.rank, world_size=dist.world_size,
                                grad_accum=grad_accum, seed=cfg.seed)
    num_classes = 0 if cfg.stage == "mae" else (cfg.model.num_classes or streams.num_classes)
    ds_cfg = build_ds_config(load_policy(cfg.deepspeed.config), micro_batch=cfg.batch.micro_batch,
                             grad_accum=grad_accum, world_size=dist.world_size, precision=cfg.deepspeed.precision,
                             clip_grad=cfg.optim.clip_grad, width=spec.width, nvme_path=cfg.deepspeed.nvme_path)
    check_with_deepspeed(ds_cfg)
    offload = check_offload(ds_cfg, cfg.optim.impl, cfg.deepspeed.config)
    # scaling plan's memory estimate before the model is built: refused in seconds, not out of memory minutes later
    from scaling.plan.fits import budget_here, check_memory, local_ranks

    check_on_rank0(lambda: check_memory(cfg, spec, num_classes, dist.world_size, dist.device.type,
                                        budget_here(dist.device.type, local_ranks())), dist.rank)
    manager = CheckpointManager(cfg, dist, global_batch, grad_accum)
    resume = manager.plan()
    if resume is not None and resume.resized:
        ds_cfg["checkpoint"] = {"load_universal": True}
    init_from = cfg.init_from if cfg.stage != "mae" and resume is None else ""
    if init_from:
        check_on_rank0(lambda: check_stage1(init_from), dist.rank)
    init_flops = manager.init_from_flops()

    model = build_model(cfg, ds_cfg, num_classes)
    if init_from:
        try:
            load_stage1_encoder(model, init_from, dist.rank)
        except WeightsError as e:
            raise ConfigError(str(e)) from e
    parallelize_model(model, cfg, zero3=ds_cfg.get("zero_optimization", {}).get("stage", 0) == 3)

    lr = peak_lr(cfg.optim.base_lr, cfg.optim.lr, global_batch)
    groups = param_groups(model, cfg.optim.weight_decay, cfg.optim.layer_decay, spec.depth)
    optimizer = build_optimizer(groups, cfg.optim.impl, lr, cfg.optim.betas, cfg.optim.eps, dist.device.type,
                                offload=offload)
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
    manager.start(ds_cfg)
    state = TrainState.from_dict(manager.restore(engine, groups, scheduler, lr, streams)) if resume else TrainState()
    per_sample = stage_flops(spec, cfg.stage, cfg.model.mask_ratio, num_classes).train
    return Session(cfg, dist, spec, Path(cfg.run_dir), engine, scheduler, streams, state, global_batch, per_sample,
                   manager, init_flops)


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


def _poisoned_if_not_finite(loss: torch.Tensor) -> torch.Tensor:
    """loss x 1 when finite (exactly loss, and exactly its gradient), loss x NaN otherwise: then every
    gradient of the step is NaN, the global norm is invalid on every rank and DeepSpeed skips the step.
    No host sync: the test is an element-wise op on the device."""
    return loss * torch.where(torch.isfinite(loss.detach()), 1.0, float("nan")).to(loss.dtype)


def _step(s: Session) -> torch.Tensor:
    """One optimizer step: forward + backward of each of the rank's grad_accum micro-batches, then
    DeepSpeed's step at the accumulation boundary (skipped by DeepSpeed when the gradients are not finite).
    Returns this rank's loss sum as a float64 device tensor: nothing here waits for the device."""
    loss_sum = torch.zeros((), dtype=torch.float64, device=s.dist.device)
    for slot in range(len(s.streams.ids)):
        batch, stream, index = s.streams.next(slot)
        loss = _loss(s, batch, stream, index)
        loss_sum += loss.detach().double()
        s.engine.backward(_poisoned_if_not_finite(loss))
        s.engine.step()
    return loss_sum


def _count_skip(s: Session, loss_finite: bool) -> None:
    """Book a step DeepSpeed skipped; stop after max_bad_steps in a row. In fp16 a skipped step with finite
    losses is the loss scaler's overflow (DeepSpeed lowers the scale and goes on, several times in a row at
    the start): counted, but not as a bad step."""
    state, cfg = s.state, s.cfg
    state.skipped_steps += 1
    if cfg.deepspeed.precision != "fp16" or not loss_finite:
        state.bad_in_a_row += 1
    s.scheduler.step()  # DeepSpeed does not step it on a skipped step; our lr is a function of samples seen
    if s.dist.is_main:  # every rank skipped it; one line, not world_size
        logging.getLogger(__name__).warning(
            "step %d skipped: non-finite loss or gradient norm (%d in a row, %d in total)", state.step,
            state.bad_in_a_row, state.skipped_steps)
    if state.bad_in_a_row >= cfg.max_bad_steps:
        raise TrainingDiverged(
            f"loss or gradient norm was NaN/Inf on {state.bad_in_a_row} optimizer steps in a row (up to step "
            f"{state.step}); stopping. The last good checkpoint is intact: lower optim.lr or optim.base_lr, "
            f"check the data, then resume=auto. (max_bad_steps={cfg.max_bad_steps})")


def _save(s: Session, clock: _Clock) -> None:
    s.state.elapsed_s = clock.elapsed()
    s.manager.save(s.engine, vars(s.state), s.streams, s.flops_per_sample * s.state.samples_seen,
                   s.init_from_flops)
    clock.restart_window(s.state.step)  # checkpoint time is not training throughput


class _Clock:
    """Training time: `elapsed` continues the checkpoint's; the throughput window runs from the last log."""

    def __init__(self, before_s: float, step: int) -> None:
        self.before_s, self.start = before_s, time.perf_counter()
        self.restart_window(step)

    def elapsed(self) -> float:
        return self.before_s + time.perf_counter() - self.start

    def restart_window(self, step: int) -> None:
        self.window_start, self.window_step = time.perf_counter(), step

    def window(self, step: int) -> tuple[int, float]:
        """(steps, seconds) since the window started."""
        return step - self.window_step, time.perf_counter() - self.window_start


def _schedule_lr(s: Session) -> float:
    """The lr of the param group with lr scale 1 (under layer decay, group 0 may be the embeddings')."""
    scales = [g.get("lr_scale", 1.0) for g in s.scheduler.optimizer.param_groups]
    lrs = s.scheduler.get_last_lr()
    i = scales.index(1.0) if 1.0 in scales else 0
    return lrs[i] / scales[i]


def _record(s: Session, loss: float, steps: int, seconds: float, elapsed: float,
            data: dict[str, float]) -> dict[str, Any]:
    """One metrics row; throughput over the `steps` steps of the last `seconds` (the logging window)."""
    device = s.dist.device
    flops_per_s = s.flops_per_sample * s.global_batch * steps / seconds / s.dist.world_size
    gpu = device_kind(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
    grad_norm = s.engine.get_global_grad_norm()
    if device.type == "cuda":
        mem = torch.cuda.max_memory_allocated(device) / 1e9
    else:
        import psutil

        mem = psutil.Process().memory_info().rss / 1e9
    return {"step": s.state.step, "samples_seen": s.state.samples_seen, "loss": loss,
            "lr": _schedule_lr(s), "grad_norm": None if grad_norm is None else float(grad_norm),
            "img_per_s": s.global_batch * steps / seconds, "tflops_per_device": flops_per_s / 1e12,
            "mfu": mfu(flops_per_s, gpu), "mem_gb": mem, "time": elapsed,
            "skipped_steps": s.state.skipped_steps, **{f"data/{k}": int(v) for k, v in data.items()}}


def run_hparams(s: Session) -> dict[str, Any]:
    """What a sweep's runs differ in, for TensorBoard's HParams table (metrics.py) and W&B's run config."""
    cfg = s.cfg
    return {"model": cfg.model.name, "params": encoder_params(s.spec), "stage": cfg.stage, "recipe": _recipe(cfg),
            "samples": cfg.total_samples, "lr": peak_lr(cfg.optim.base_lr, cfg.optim.lr, s.global_batch),
            "batch": s.global_batch, "micro_batch": cfg.batch.micro_batch, "seed": cfg.seed,
            "precision": cfg.deepspeed.precision, "world_size": s.dist.world_size, "init_from": cfg.init_from}


def _data_counts(s: Session, summed: list[float]) -> dict[str, float]:
    """Data counters of all ranks: the rank-local ones summed, the dataset's own (empty shards in the
    manifest, the same on every rank) once."""
    dataset = s.streams.dataset_stats()
    return {k: v + dataset.get(k, 0) for k, v in zip(KINDS, summed)}


def train(cfg: TrainConfig) -> dict[str, Any]:
    dist = setup(cfg.dist.timeout_minutes)
    done = complete_summary(cfg, dist.world_size)
    if done is not None:  # a requeued or resubmitted job on a finished run: train nothing, write nothing
        teardown()
        return {**done, "already_complete": True}
    preempt = PreemptionFlag()  # before the set-up: a signal that comes while it runs stops the first step
    s = build_session(cfg, dist)
    start_step = s.state.step
    if dist.is_main and start_step:
        log.info("resumed from step %d (%d samples) of %s", start_step, s.state.samples_seen, cfg.run_dir)
    total_steps = math.ceil(cfg.total_samples / s.global_batch)
    validator = build_validator(cfg, dist, s, total_steps)  # None without data.val
    every = max(cfg.checkpoint_every // s.global_batch, 1) if cfg.checkpoint_every else 0
    logger = MetricsLogger(s.run_dir, dist.is_main, total_steps, s.state.step, f"{cfg.stage} {cfg.model.name}",
                           hparams=run_hparams(s), wandb=cfg.logging, wandb_id=s.state.wandb_id)
    s.state.wandb_id = logger.wandb_id  # saved with every checkpoint from here on
    loss, stop = float("nan"), 0.0
    clock = _Clock(s.state.elapsed_s, s.state.step)
    micro_batches = dist.world_size * len(s.streams.ids)
    try:
        while s.state.step < total_steps:
            loss_sum = _step(s)
            s.state.step += 1
            s.state.samples_seen += s.global_batch
            local = s.streams.stats()
            # The step's one host sync: loss, preemption flag and data counters of every rank.
            loss_total, stop, *data = all_reduce_sum([loss_sum, preempt.raised, *(local[k] for k in KINDS)],
                                                     dist.device)
            loss = loss_total / micro_batches
            if s.engine.was_step_applied():
                s.state.bad_in_a_row = 0
            else:
                _count_skip(s, math.isfinite(loss_total))
            logger.advance()
            steps, seconds = clock.window(s.state.step)  # taken before validation: its time is not throughput
            val = validator.maybe(s.state.step, s.engine) if validator else {}  # every rank
            if val or s.state.step % cfg.log_every == 0 or s.state.step == total_steps:
                logger.log({**_record(s, loss, steps, seconds, clock.elapsed(), _data_counts(s, data)), **val})
                clock.restart_window(s.state.step)
            if stop:
                _save(s, clock)
                break
            if every and s.state.step % every == 0 and s.state.step < total_steps:
                _save(s, clock)
        else:
            if s.state.step > start_step:  # resumed at the final step: its complete checkpoint is not saved again
                _save(s, clock)
    finally:
        logger.close()
        s.streams.close()
    if s.state.step == start_step and dist.is_main:  # no step ran here: the loss is the one logged at this step
        loss = last_logged_loss(s.run_dir, start_step)
    summary = {"run": s.run_dir.name, "stage": cfg.stage, "model": cfg.model.name, "recipe": _recipe(cfg),
               "params": encoder_params(s.spec), "samples_seen": s.state.samples_seen,
               **summary_flops(s.flops_per_sample * s.state.samples_seen, cfg.init_from, s.init_from_flops),
               "loss": loss, "steps": s.state.step,
               "skipped_steps": s.state.skipped_steps, "world_size": dist.world_size,
               "preempted": bool(stop) and s.state.step < total_steps,
               "eval": validator.summary_eval() if validator else {}}
    if dist.is_main:
        write_json(s.run_dir / "summary.json", summary)
    teardown(s.engine)
    return summary


def _recipe(cfg: TrainConfig) -> str:
    if cfg.stage == "mae":
        return "mae"
    return f"mae_{cfg.stage}" if cfg.init_from else cfg.stage
