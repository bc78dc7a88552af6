"""One plan: the numbers of `scaling plan` for a model, stage and GPU allocation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from scaling.config import ConfigError
from scaling.flops import encoder_params, stage_flops
from scaling.models.registry import get_spec
from scaling.plan.memory import Policy, max_micro_batch, memory, model_params, repo_policies, usable_gb
from scaling.plan.throughput import RESULTS_DIR, choose_mfu, gpu_hours, peak_flops

STAGES = ("mae", "wsp", "finetune")


@dataclass
class Plan:
    model: str
    stage: str
    gpus: int
    gpu: str
    params: int  # encoder parameters without head (the FLOPs module's; what summary.json reports)
    model_params: int  # everything sharded: MAE's decoder, the classifier head
    train_flops_per_sample: float
    micro_batch: int
    activation_checkpointing: bool
    policy: str
    gpu_memory_gb: float  # usable: the GPU's memory less a reserve (memory.RESERVE_FRACTION)
    memory_gb: dict[str, dict] = field(default_factory=dict)  # policy -> model_states, activations, total, ...
    max_micro_batch: int = 0  # under `policy`
    samples: int = 0
    mfu: float = 0.0
    mfu_source: str = ""
    gpu_hours: float = 0.0
    hours: float = 0.0  # wall-clock on `gpus` GPUs

    def as_dict(self) -> dict:
        return asdict(self)


def ready_config(model: str, stage: str):
    """The ready config for this model and stage (configs/STAGE/MODEL.yaml), or None."""
    from scaling.engine.config import load_config
    from scaling.resources import ready_config as ready_path

    path = ready_path(stage, model)
    return load_config(path) if path else None


def make_plan(model: str, stage: str, gpus: int, gpu: str, *, micro_batch: int | None = None,
              activation_checkpointing: bool | str | None = None, ds_config: str | None = None,
              samples: int | None = None, mfu: float | None = None, num_classes: int | None = None,
              results_dir: Path = RESULTS_DIR) -> Plan:
    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}; choose one of {', '.join(STAGES)}.")
    if gpus < 1:
        raise ConfigError(f"--gpus must be at least 1, got {gpus}.")
    spec = get_spec(model)  # unknown names: an error listing the valid ones
    peak_flops(gpu)
    gpu_gb = usable_gb(gpu)
    cfg = ready_config(model, stage)
    if num_classes is None:
        num_classes = 0 if stage == "mae" or cfg is None else (cfg.model.num_classes or cfg.data.num_classes)
    if activation_checkpointing is None:
        activation_checkpointing = cfg.model.activation_checkpointing if cfg else False
    # a config's mode is a string (none | full | selective): "none" is off, selective counted as on
    checkpointing = activation_checkpointing not in (False, "none")
    chosen = ds_config or (cfg.deepspeed.config if cfg else "zero3_bf16.json")
    policies = {name: Policy.load(name) for name in [*repo_policies(), chosen]}
    policy = policies[chosen]
    names = list(dict.fromkeys([*repo_policies(), chosen]))
    largest = {n: max_micro_batch(policies[n], spec, stage, gpus, checkpointing, num_classes, gpu_gb) for n in names}
    if largest[chosen] == 0:
        raise ConfigError(f"{model} {stage} does not fit on {gpus} x {gpu} under {policy.name} even at micro batch 1; "
                          "use more GPUs, --activation-checkpointing on, or an offload policy "
                          "(--ds-config zero3_offload_optimizer.json).")
    micro = micro_batch or (cfg.batch.micro_batch if cfg else largest[chosen])
    plan_memory = {}
    for n in names:
        m = memory(policies[n], spec, stage, micro, gpus, checkpointing, num_classes)
        plan_memory[n] = {**m.as_dict(), "max_micro_batch": largest[n], "fits": m.total <= gpu_gb}
    if not plan_memory[chosen]["fits"]:
        raise ConfigError(
            f"micro batch {micro} needs {plan_memory[chosen]['total']:.1f} GB per GPU for {model} {stage} under "
            f"{policy.name}, but a {gpu} has {gpu_gb:.1f} GB usable; use --micro-batch {largest[chosen]} (the "
            "largest that fits; grad_accum makes up the global batch), --activation-checkpointing on, or more GPUs.")
    per_sample = stage_flops(spec, stage, num_classes=num_classes).train
    samples = samples if samples is not None else (cfg.total_samples if cfg else 0)
    if samples < 0:
        raise ConfigError(f"--samples must be >= 0, got {samples}.")
    chosen_mfu, source = choose_mfu(model, stage, mfu, results_dir)
    hours = gpu_hours(samples, per_sample, chosen_mfu, gpu)
    return Plan(model=model, stage=stage, gpus=gpus, gpu=gpu, params=encoder_params(spec),
                model_params=model_params(spec, stage, num_classes), train_flops_per_sample=per_sample,
                micro_batch=micro, activation_checkpointing=checkpointing, policy=policy.name,
                gpu_memory_gb=round(gpu_gb, 3), memory_gb=plan_memory, max_micro_batch=largest[chosen],
                samples=samples, mfu=chosen_mfu, mfu_source=source, gpu_hours=hours, hours=hours / gpus)
