"""The sweep spec (SPEC.yaml): which models, budgets, recipes and seeds, on what hardware and scheduler."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from scaling.config import ConfigError, from_dict, load_yaml
from scaling.models.registry import MODELS

RECIPES = ("mae", "wsp", "mae_wsp")  # MAE only, WSP only (random init), MAE -> WSP


@dataclass
class SlurmSpec:
    time: str = "24:00:00"
    partition: str = ""
    account: str = ""
    gpus_per_node: int = 8
    cpus_per_task: int = 0  # 0: leave it to the cluster's default


@dataclass
class SweepSpec:
    name: str = "sweep"
    models: list[str] = field(default_factory=list)
    recipes: list[str] = field(default_factory=lambda: ["mae_wsp", "wsp"])
    samples: list[int] = field(default_factory=list)  # samples seen by each stage-2 (or single-stage) run
    flops: list[float] = field(default_factory=list)  # isoFLOP budgets (total FLOPs, stage 1 included) instead
    stage1_samples: int = 0  # MAE samples of the stage-1 run that mae_wsp runs of a model share
    seeds: list[int] = field(default_factory=lambda: [0])
    gpu: str = "h100"  # for the GPU-hours column (scaling plan's numbers)
    gpus: int = 8  # per run: ranks of the job (local: on this machine)
    scheduler: Literal["slurm", "local"] = "slurm"
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
        stray = sorted(set(self.model_overrides) - set(self.models))
        if stray:
            raise ValueError(f"model_overrides: {stray[0]!r} is not in models; add it there or remove its overrides.")
        if self.gpus < 1:
            raise ValueError(f"gpus must be at least 1, got {self.gpus}.")
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
