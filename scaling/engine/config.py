"""The run config: one dataclass per concern, defaults -> YAML -> `key.sub=value` overrides.

Schedules count *samples seen*: both stages are single passes over (billions of) images, so a run is
`total_samples` long and warmup, checkpoints and logging are in samples too. lr = base_lr x global batch
/ 256 (MAE's rule) unless an absolute `lr` is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from scaling.config import ConfigError, apply_overrides, from_dict, load_yaml
from scaling.data import DataConfig
from scaling.data.augment import AugmentConfig
from scaling.engine.validation import EvalConfig
from scaling.models import MODELS
from scaling.models.attention import POLICIES

Stage = Literal["mae", "wsp", "finetune"]


@dataclass
class ModelConfig:
    name: str = "vit_micro_patch4"
    img_size: int = 0  # 0: the registry's size for this model
    pos_embed: Literal["learned", "sincos"] = "sincos"
    kernels: str = "auto"  # auto | fused | sdpa | reference (scaling.models.attention)
    mask_ratio: float = 0.75  # MAE
    norm_pix_loss: bool = True  # MAE
    decoder_width: int = 0  # 0: registry default (512 for paper sizes)
    decoder_depth: int = 0
    decoder_heads: int = 0
    num_classes: int = 0  # WSP/finetune head; 0 = take data.num_classes
    activation_checkpointing: bool = False  # per-block recompute in backward
    # Fine-tuning (MAE's recipe): stochastic depth of the last block (0.1 for B, 0.2 for L/H), and the pooling
    # of the classifier: `token` (cls token, WSP) or `avg` (mean of patch tokens + fc_norm, MAE fine-tuning).
    drop_path: float = 0.0
    global_pool: Literal["token", "avg"] = "token"

    def __post_init__(self) -> None:
        if self.name not in MODELS:
            raise ValueError(f"unknown model {self.name!r}. Valid names: {', '.join(MODELS)}.")
        if self.kernels not in POLICIES:
            raise ValueError(f"kernels must be one of {', '.join(POLICIES)}, got {self.kernels!r}.")
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {self.mask_ratio}.")
        if not 0.0 <= self.drop_path < 1.0:
            raise ValueError(f"model.drop_path must be in [0, 1) (MAE fine-tuning: 0.1 to 0.3), got {self.drop_path}.")

    def spec_overrides(self) -> dict[str, int]:
        keys = ("img_size", "decoder_width", "decoder_depth", "decoder_heads")
        return {k: getattr(self, k) for k in keys if getattr(self, k)}


@dataclass
class OptimConfig:
    impl: Literal["auto", "torch", "deepspeed", "apex"] = (
        "auto"  # auto: DeepSpeed FusedAdam on GPU, torch on CPU
    )
    base_lr: float = 1.5e-4  # per 256 samples of global batch
    lr: float = 0.0  # absolute lr; 0 = base_lr * global_batch / 256
    min_lr: float = 0.0  # cosine floor
    warmup_samples: int = 0
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    clip_grad: float = 1.0  # 0 disables clipping
    layer_decay: float = 1.0  # finetune: lr x layer_decay^(depth - layer)

    def __post_init__(self) -> None:
        if self.base_lr <= 0 and self.lr <= 0:
            raise ValueError(
                "set optim.base_lr (per 256 samples) or optim.lr (absolute) to a positive number."
            )
        if not 0 < self.layer_decay <= 1:
            raise ValueError(f"optim.layer_decay must be in (0, 1], got {self.layer_decay}.")
        if self.clip_grad < 0 or self.weight_decay < 0 or self.warmup_samples < 0:
            raise ValueError("optim.clip_grad, optim.weight_decay and optim.warmup_samples must be >= 0.")


@dataclass
class BatchConfig:
    micro_batch: int = 8  # per rank per forward
    grad_accum: int = 1  # 0 = derive from global_batch / (micro_batch x world size)
    global_batch: int = 0  # 0 = micro_batch x grad_accum x world size; else checked against it

    def __post_init__(self) -> None:
        if self.micro_batch <= 0 or self.grad_accum < 0 or self.global_batch < 0:
            raise ValueError(
                "batch.micro_batch must be positive and batch.grad_accum, batch.global_batch >= 0."
            )
        if self.grad_accum == 0 and self.global_batch == 0:
            raise ValueError("batch.grad_accum=0 (derive it) needs batch.global_batch.")

    def resolve(self, world_size: int) -> tuple[int, int]:
        """(global batch, grad_accum) for `world_size` ranks, or a ConfigError naming the numbers."""
        per_step = self.micro_batch * world_size
        if self.grad_accum == 0:
            if self.global_batch % per_step:
                raise ConfigError(
                    f"batch.global_batch={self.global_batch} is not divisible by micro_batch "
                    f"{self.micro_batch} x "
                    f"world size {world_size} = {per_step}; change batch.micro_batch, the number of GPUs, or "
                    f"batch.global_batch."
                )
            return self.global_batch, self.global_batch // per_step
        product = per_step * self.grad_accum
        if self.global_batch and self.global_batch != product:
            hint = ""
            if self.global_batch % per_step == 0:
                hint = f" Use batch.grad_accum={self.global_batch // per_step} (or 0 to derive it)."
            raise ConfigError(
                f"batch.global_batch={self.global_batch} != micro_batch {self.micro_batch} x grad_accum "
                f"{self.grad_accum} x world size {world_size} = {product}.{hint}"
            )
        return product, self.grad_accum


@dataclass
class DeepSpeedConfig:
    config: str = "zero3_bf16.json"  # a file in ds_configs/ or a path
    precision: Literal["bf16", "fp16", "fp32"] = "bf16"


@dataclass
class DebugConfig:
    """Fault injection for tests of the failure paths (never set in real runs)."""

    nan_loss_at_steps: list[int] = field(default_factory=list)  # poison the loss at these optimizer steps


@dataclass
class TrainConfig:
    stage: Stage = "mae"
    run_dir: str = "runs/default"
    seed: int = 0
    total_samples: int = 1024
    checkpoint_every: int = 0  # samples; 0 = only at the end (and on SIGTERM/SIGUSR1)
    keep_checkpoints: int = 3  # complete checkpoints kept; older ones are deleted
    log_every: int = 1  # optimizer steps
    resume: str = "none"  # none | auto | PATH to a checkpoint tag directory
    overwrite: bool = False  # allow a new run in a run_dir that already holds one
    init_from: str = ""  # wsp/finetune: a stage-1 run dir or an exported .safetensors encoder
    max_bad_steps: int = 5  # consecutive non-finite losses before the run stops
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    deepspeed: DeepSpeedConfig = field(default_factory=DeepSpeedConfig)
    debug: DebugConfig = field(default_factory=DebugConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)  # validation on data.val during training
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # finetune: RandAugment, mixup, erasing

    def __post_init__(self) -> None:
        if self.total_samples <= 0:
            raise ValueError(f"total_samples must be positive, got {self.total_samples}.")
        if self.checkpoint_every < 0 or self.keep_checkpoints < 1 or self.log_every < 1:
            raise ValueError("checkpoint_every >= 0, keep_checkpoints >= 1 and log_every >= 1 are required.")
        if (
            self.model.num_classes
            and self.data.num_classes
            and self.model.num_classes != self.data.num_classes
        ):
            raise ValueError(
                f"model.num_classes={self.model.num_classes} != data.num_classes="
                f"{self.data.num_classes}: the head must match the targets; set one of them."
            )
        if self.stage != "finetune" and AugmentConfig() != self.augment:
            raise ValueError(f"augment.* applies to stage finetune only (this run is stage {self.stage}).")


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Defaults, then the YAML file (if any), then `key.sub=value` overrides, validated."""
    data = load_yaml(path) if path else {}
    return from_dict(TrainConfig, apply_overrides(data, overrides or []))
