"""The run config: one dataclass per concern, defaults -> YAML -> `key.sub=value` overrides.

Schedules count *samples seen*: both stages are single passes over (billions of) images, so a run is
`total_samples` long and warmup, checkpoints and logging are in samples too. lr = base_lr x global batch
/ 256 (MAE's rule) with `optim.lr: auto` (the default), or an absolute `optim.lr`. Every numeric key has its
valid range in its class's RANGES, checked at load (scaling.config.check_ranges).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from scaling.config import ConfigError, Range, apply_overrides, check_ranges, from_dict, load_yaml, to_dict
from scaling.data import DataConfig
from scaling.data.augment import AugmentConfig
from scaling.engine.distributed import DistConfig
from scaling.engine.validation import EvalConfig
from scaling.engine.wandb_run import LoggingConfig
from scaling.models import MODELS
from scaling.models.attention import POLICIES

Stage = Literal["mae", "wsp", "finetune"]
AC_MODES = ("none", "full", "selective")


@dataclass
class ModelConfig:
    name: str = "vit_micro_patch4"
    img_size: int = 0  # 0: the registry's size for this model
    # auto: MAE keeps MAE's fixed sin-cos table (models/mae.py, as facebookresearch/mae does); wsp and finetune
    # learn theirs (starting from the sin-cos table), as create_model does. `sincos` freezes it there too.
    pos_embed: Literal["auto", "learned", "sincos"] = "auto"
    kernels: str = "auto"  # auto | fused | sdpa | reference (scaling.models.attention)
    mask_ratio: float = 0.75  # MAE
    norm_pix_loss: bool = True  # MAE
    decoder_width: int = 0  # 0: registry default (512 for paper sizes)
    decoder_depth: int = 0
    decoder_heads: int = 0
    num_classes: int = 0  # WSP/finetune head; 0 = take data.num_classes
    # Recompute blocks in backward instead of keeping their activations: none | full (every block) |
    # selective (every k-th block, k = activation_checkpointing_every: memory for speed, in between).
    # true/false (older configs) mean full/none.
    activation_checkpointing: Literal["none", "full", "selective"] | bool = "none"
    activation_checkpointing_every: int = 2
    # none | blocks: torch.compile each transformer block's forward (torchtitan's regional compile: one
    # compile serves every block of a width, module hooks and state-dict names unchanged).
    compile: Literal["none", "blocks"] = "none"
    # Fine-tuning (MAE's recipe): stochastic depth of the last block (0.1 for B, 0.2 for L/H), and the pooling
    # of the classifier: `token` (cls token, WSP) or `avg` (mean of patch tokens + fc_norm, MAE fine-tuning).
    drop_path: float = 0.0
    global_pool: Literal["token", "avg"] = "token"

    RANGES: ClassVar[dict[str, Range]] = {
        "img_size": Range(0, note="pixels; 0 takes the registry's size"),
        "mask_ratio": Range(0, 1, hi_open=True, note="MAE: 0.75"),
        "decoder_width": Range(0, note="0 takes the registry's"),
        "decoder_depth": Range(0, note="0 takes the registry's"),
        "decoder_heads": Range(0, note="0 takes the registry's"),
        "num_classes": Range(0, note="0 takes data.num_classes"),
        "activation_checkpointing_every": Range(1, note="1 checkpoints every block"),
        "drop_path": Range(0, 1, hi_open=True, note="MAE fine-tuning: 0.1 to 0.3"),
    }

    def __post_init__(self) -> None:
        check_ranges(self, "model")
        if self.name not in MODELS:
            raise ValueError(f"unknown model {self.name!r}. Valid names: {', '.join(MODELS)}.")
        if self.kernels not in POLICIES:
            raise ValueError(f"kernels must be one of {', '.join(POLICIES)}, got {self.kernels!r}.")
        if isinstance(self.activation_checkpointing, bool):
            self.activation_checkpointing = "full" if self.activation_checkpointing else "none"
        if self.activation_checkpointing not in AC_MODES:
            raise ValueError(f"model.activation_checkpointing must be one of {', '.join(AC_MODES)} (or true/false), "
                             f"got {self.activation_checkpointing!r}.")
        if self.compile not in ("none", "blocks"):
            raise ValueError(f"model.compile must be none or blocks, got {self.compile!r}.")

    def spec_overrides(self) -> dict[str, int]:
        keys = ("img_size", "decoder_width", "decoder_depth", "decoder_heads")
        return {k: getattr(self, k) for k in keys if getattr(self, k)}


@dataclass
class OptimConfig:
    impl: Literal["auto", "torch", "deepspeed", "apex"] = (
        "auto"  # auto: DeepSpeed FusedAdam on GPU, torch on CPU
    )
    base_lr: float = 1.5e-4  # per 256 samples of global batch; used when lr is auto
    # The peak lr: auto = base_lr x global batch / 256 (MAE's scaling rule), or an absolute number > 0.
    # (Older configs wrote 0 for auto; 0 is still read as auto, a negative lr is an error.)
    lr: float | Literal["auto"] = "auto"
    min_lr: float = 0.0  # cosine floor
    warmup_samples: int = 0
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    clip_grad: float = 1.0  # 0 disables clipping
    layer_decay: float = 1.0  # finetune: lr x layer_decay^(depth - layer)

    RANGES: ClassVar[dict[str, Range]] = {
        "base_lr": Range(0, lo_open=True, note="per 256 samples of global batch; MAE: 1.5e-4"),
        "lr": Range(0, lo_open=True, note="an absolute peak lr; or auto: base_lr x global batch / 256"),
        "min_lr": Range(0, note="the cosine floor"),
        "warmup_samples": Range(0),
        "weight_decay": Range(0),
        "betas": Range(0, 1, hi_open=True, note="MAE: 0.9, 0.95"),
        "eps": Range(0, lo_open=True),
        "clip_grad": Range(0, note="0 disables clipping"),
        "layer_decay": Range(0, 1, lo_open=True, note="1 is no decay"),
    }

    def __post_init__(self) -> None:
        if self.lr == 0:
            self.lr = "auto"
        check_ranges(self, "optim")


@dataclass
class BatchConfig:
    micro_batch: int = 8  # per rank per forward
    grad_accum: int = 1  # 0 = derive from global_batch / (micro_batch x world size)
    global_batch: int = 0  # 0 = micro_batch x grad_accum x world size; else checked against it

    RANGES: ClassVar[dict[str, Range]] = {
        "micro_batch": Range(1, note="samples per rank per forward"),
        "grad_accum": Range(0, note="0 derives it from batch.global_batch"),
        "global_batch": Range(0, note="0 is micro_batch x grad_accum x world size"),
    }

    def __post_init__(self) -> None:
        check_ranges(self, "batch")
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
    config: str = "zero3_bf16.json"  # a packaged policy (ds_configs/) by name, or a path
    precision: Literal["bf16", "fp16", "fp32"] = "bf16"
    nvme_path: str = ""  # NVMe offload policies: a local NVMe folder; "" keeps the policy file's nvme_path


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
    # FLOPs spent to produce init_from (its whole chain), for summary.json's total_flops; 0 = read it from the
    # stage-1 run's summary/checkpoint or the .safetensors metadata (`scaling export` writes it).
    init_from_flops: float = 0.0
    # Keys a resume may change although they change the run's math (total_samples,optim.lr,...); see
    # scaling/engine/config_diff.py for the keys that may always change (paths, logging).
    allow_changes: list[str] = field(default_factory=list)
    max_bad_steps: int = 5  # optimizer steps skipped in a row (non-finite loss or grad norm) before the run stops
    # Start even when scaling plan's memory estimate says the run does not fit this host or GPU
    # (scaling/plan/fits.py; checked before the model is built).
    force_memory: bool = False
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    deepspeed: DeepSpeedConfig = field(default_factory=DeepSpeedConfig)
    dist: DistConfig = field(default_factory=DistConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)  # validation on data.val during training
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # finetune: RandAugment, mixup, erasing
    logging: LoggingConfig = field(default_factory=LoggingConfig)  # logging.wandb=PROJECT: W&B as well

    RANGES: ClassVar[dict[str, Range]] = {
        "seed": Range(0, 2**32 - 1, note="MAE's masks hash its low 32 bits"),
        "total_samples": Range(1),
        "checkpoint_every": Range(0, note="samples; 0 saves only at the end"),
        "keep_checkpoints": Range(1),
        "log_every": Range(1, note="optimizer steps"),
        "init_from_flops": Range(0, note="0 reads it from init_from"),
        "max_bad_steps": Range(1),
    }

    def __post_init__(self) -> None:
        check_ranges(self)
        self._check_allow_changes()
        if self.model.pos_embed == "auto":
            self.model.pos_embed = "sincos" if self.stage == "mae" else "learned"
        elif self.stage == "mae" and self.model.pos_embed == "learned":
            raise ValueError(
                "model.pos_embed=learned with stage mae: the MAE stage keeps MAE's fixed sin-cos table; "
                "learned position embeddings are for wsp/finetune. Leave model.pos_embed at auto."
            )
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

    def _check_allow_changes(self) -> None:
        import difflib

        from scaling.engine.config_diff import flatten

        keys = set()
        for key in flatten(to_dict(self)):
            parts = key.split(".")
            keys.update(".".join(parts[: i + 1]) for i in range(len(parts)))
        for name in self.allow_changes:
            if name not in keys:
                close = difflib.get_close_matches(name, sorted(keys), n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"allow_changes: {name!r} is not a config key.{hint}")


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Defaults, then the YAML file (if any: a path or a ready recipe's name, `tiny/mae`), then `key.sub=value`
    overrides, validated."""
    from scaling.resources import find_config

    data = load_yaml(find_config(path)) if path else {}
    return from_dict(TrainConfig, apply_overrides(data, overrides or []))
