"""The sweep spec (SPEC.yaml): which models, budgets, recipes and seeds, on what hardware and scheduler."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from scaling.config import ConfigError, from_dict, load_yaml
from scaling.models.registry import MODELS

RECIPES = ("mae", "wsp", "mae_wsp")  # MAE only, WSP only (random init), MAE -> WSP


_TIME = re.compile(r"(?:(\d+)-)?(\d+)(?::(\d{2}))?(?::(\d{2}))?")
_NAME = re.compile(r"[A-Za-z0-9_.,+-]*")  # partition/account: they go into #SBATCH lines as they are


def time_seconds(text: str) -> int:
    """Slurm's --time as seconds: HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS (a bare number is refused, see below)."""
    m = _TIME.fullmatch(text.strip())
    if not m or text.strip().isdigit() or (m.group(1) is None and m.group(4) is None):
        raise ConfigError(f"slurm.time: {text!r} is not a Slurm time limit; write it in quotes as \"HH:MM:SS\" or "
                         "\"D-HH:MM:SS\", e.g. time: \"72:00:00\" (unquoted, YAML reads 72:00:00 as the number "
                         "259200).")
    days, hours, minutes, seconds = (int(g or 0) for g in m.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


@dataclass
class SlurmSpec:
    """The `slurm:` block of a sweep spec (scheduler: slurm): what each run's job asks for."""

    time: str = "24:00:00"  # the time limit; signal_seconds before it the job checkpoints and requeues itself
    partition: str = ""
    account: str = ""
    gpus_per_node: int = 8  # 0: CPU-only nodes; a run's `gpus` are then CPU ranks on one node
    cpus_per_task: int = 0  # CPUs per node; 0: ranks per node x (data.workers + 1), one core per process
    signal_seconds: int = 300  # USR1 this long before the time limit: the checkpoint's time (jobs/slurm_train.sh)

    def __post_init__(self) -> None:
        limit = time_seconds(str(self.time))
        if self.gpus_per_node < 0:
            raise ConfigError(f"slurm.gpus_per_node must be 0 (CPU-only nodes) or more, got {self.gpus_per_node}.")
        if self.cpus_per_task < 0:
            raise ConfigError(f"slurm.cpus_per_task must be 0 (ranks x (data.workers + 1)) or more, got "
                             f"{self.cpus_per_task}.")
        if not 30 <= self.signal_seconds <= limit - 60:
            raise ConfigError(f"slurm.signal_seconds must leave the checkpoint at least 30 s and the job at least "
                             f"60 s of its {self.time} limit, got {self.signal_seconds}.")
        for key in ("partition", "account"):
            if not _NAME.fullmatch(getattr(self, key)):
                raise ConfigError(f"slurm.{key}: {getattr(self, key)!r} is not a Slurm {key} name (letters, digits, "
                                 "_ . , + -).")

    def layout(self, gpus: int) -> tuple[int, int]:
        """(nodes, ranks per node) of a run of `gpus` ranks."""
        if self.gpus_per_node == 0 or gpus <= self.gpus_per_node:
            return 1, gpus
        return gpus // self.gpus_per_node, self.gpus_per_node


@dataclass
class SweepSpec:
    name: str = "sweep"
    models: list[str] = field(default_factory=list)
    recipes: list[str] = field(default_factory=lambda: ["mae_wsp", "wsp"])
    samples: list[int] = field(default_factory=list)  # samples seen by each stage-2 (or single-stage) run
    flops: list[float] = field(default_factory=list)  # isoFLOP budgets (total FLOPs, stage 1 included) instead
    stage1_samples: int = 0  # MAE samples of the stage-1 run that mae_wsp runs of a model share
    # A sweep folder whose finished stage-1 runs (same model, stage1_samples, seed) the mae_wsp runs start from,
    # instead of training their own: more stage-2 runs for a sweep (e.g. `scaling advise --sweep-spec`) without
    # paying for stage 1 again. Its compute still counts in each run's total_flops.
    stage1_from: str = ""
    seeds: list[int] = field(default_factory=lambda: [0])
    gpu: str = "h100"  # for the GPU-hours column (scaling plan's numbers)
    gpus: int = 8  # per run: ranks of the job (local: on this machine)
    scheduler: Literal["slurm", "local"] = "slurm"  # slurm: submit.sh sbatches each run; local: `sweep run` here
    configs: dict[str, str] = field(default_factory=dict)  # stage -> base config ({model} is replaced)
    overrides: list[str] = field(default_factory=list)  # key=value for every run
    model_overrides: dict[str, list[str]] = field(default_factory=dict)  # model -> key=value for its runs
    slurm: SlurmSpec = field(default_factory=SlurmSpec)

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("models: list at least one model, e.g. models: [vit_base_patch16].")
        unknown = [m for m in self.models if m not in MODELS]
        if unknown:
            raise ValueError(f"models: unknown model {unknown[0]!r}. Valid names: {', '.join(MODELS)}.")
        bad = [r for r in self.recipes if r not in RECIPES]
        if bad or not self.recipes:
            raise ValueError(f"recipes: {bad[0] if bad else 'none'!r} is not a recipe; choose from "
                             f"{', '.join(RECIPES)}.")
        if bool(self.samples) == bool(self.flops):
            raise ValueError("give either samples: [N, ...] (sample budgets) or flops: [C, ...] (isoFLOP budgets).")
        if any(n <= 0 for n in self.samples) or any(c <= 0 for c in self.flops):
            raise ValueError("samples and flops budgets must be positive.")
        if "mae_wsp" in self.recipes and self.stage1_samples <= 0:
            raise ValueError("recipe mae_wsp needs its stage 1: set stage1_samples: N (the MAE samples of the "
                             "stage-1 run each model's mae_wsp runs start from), or drop mae_wsp from recipes.")
        if self.stage1_from and "mae_wsp" not in self.recipes:
            raise ValueError("stage1_from: only mae_wsp runs start from a stage-1 run; add mae_wsp to recipes or "
                             "drop stage1_from.")
        stray = sorted(set(self.model_overrides) - set(self.models))
        if stray:
            raise ValueError(f"model_overrides: {stray[0]!r} is not in models; add it there or remove its overrides.")
        if self.gpus < 1:
            raise ValueError(f"gpus must be at least 1, got {self.gpus}.")
        per_node = self.slurm.gpus_per_node
        if self.scheduler == "slurm" and per_node and self.gpus > per_node and self.gpus % per_node:
            raise ValueError(f"gpus: {self.gpus} ranks do not fill whole nodes of slurm.gpus_per_node: {per_node}; "
                             f"use a multiple of {per_node} (or up to {per_node} on one node).")
        bad_stage = sorted(set(self.configs) - {"mae", "wsp"})
        if bad_stage:
            raise ValueError(f"configs: {bad_stage[0]!r} is not a stage; give configs for mae and/or wsp.")

    def base_config(self, stage: str, model: str) -> str:
        return self.configs.get(stage, "configs/{stage}/{model}.yaml").format(stage=stage, model=model)


def load_spec(path: str | Path) -> SweepSpec:
    """A spec file, or a packaged one by name (`tiny_cpu`, `jobs/sweeps/paper_grid.yaml`: scaling.resources)."""
    from scaling.resources import find_sweep_spec

    try:
        return from_dict(SweepSpec, load_yaml(find_sweep_spec(path)))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from e
