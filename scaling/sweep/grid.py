"""A spec -> its runs: resolved configs, FLOPs (the FLOPs module's), GPU-hours (scaling plan's), dependencies.

Sample counts are whole global batches (the trainer runs ceil(total_samples / global batch) steps), so each
run's FLOPs are exactly what it will train. In isoFLOP mode each (model, budget) gets the number of samples
whose total FLOPs, stage 1 included for mae_wsp, is nearest the budget; a run more than 1% off is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaling.config import ConfigError
from scaling.engine.finished import finished, read_summary
from scaling.flops import encoder_params, stage_flops
from scaling.models.registry import get_spec
from scaling.sweep.spec import SweepSpec

ISOFLOP_TOLERANCE = 0.01


@dataclass
class Run:
    name: str
    stage: str  # mae | wsp
    model: str
    recipe: str  # mae | wsp | mae_wsp (a stage-1 run of mae_wsp is recipe mae)
    seed: int
    samples: int
    params: int
    flops: float  # this run
    total_flops: float  # with its stage 1
    gpu_hours: float
    depends_on: str  # run name of its stage-1 run, or ""
    config: Any  # the resolved TrainConfig

    def row(self, sweep_dir: Path) -> dict[str, Any]:
        return {"run": self.name, "run_dir": f"runs/{self.name}", "stage": self.stage, "model": self.model,
                "params": self.params, "samples": self.samples, "recipe": self.recipe, "seed": self.seed,
                "flops": f"{self.flops:.6e}", "total_flops": f"{self.total_flops:.6e}",
                "gpu_hours": f"{self.gpu_hours:.4g}", "depends_on": self.depends_on}


def _config_path(text: str) -> Path:
    """A path, or a ready recipe by name (`tiny/mae`, `configs/mae/vit_base_patch16.yaml`: scaling.resources)."""
    from scaling.resources import find_config

    try:
        return find_config(text).resolve()
    except ConfigError as e:
        raise ConfigError(f"base {e} Set configs: {{mae: FILE, wsp: FILE}} in the spec.") from e


def _num_classes(cfg) -> int:
    if cfg.stage == "mae":
        return 0
    if cfg.model.num_classes or cfg.data.num_classes:
        return cfg.model.num_classes or cfg.data.num_classes
    from scaling.data.source import SYNTHETIC_CLASSES

    if cfg.data.train.strip() == "synthetic":
        return SYNTHETIC_CLASSES
    from scaling.data.shards import list_shards

    return len(list_shards(cfg.data.train).classes)


class _Builder:
    def __init__(self, spec: SweepSpec, out: Path) -> None:
        self.spec, self.out = spec, out.resolve()
        # where stage-1 runs live: this sweep's folder, or the finished runs of another (spec.stage1_from)
        self.stage1_root = Path(spec.stage1_from).expanduser().resolve() if spec.stage1_from else self.out

    def config(self, stage: str, model: str, name: str, samples: int, seed: int, init_from: str = ""):
        from scaling.engine.config import load_config

        overrides = [*self.spec.overrides, f"model.name={model}", *self.spec.model_overrides.get(model, []),
                     f"seed={seed}", f"total_samples={samples}",
                     f"run_dir={self.out / 'runs' / name}", "resume=auto"]
        if stage == "wsp":
            overrides.append(f"init_from={init_from}")
        try:
            return load_config(_config_path(self.spec.base_config(stage, model)), overrides)
        except ConfigError as e:
            raise ConfigError(f"run {name}: {e}") from e

    def global_batch(self, cfg, name: str) -> int:
        try:
            return cfg.batch.resolve(self.spec.gpus)[0]
        except ConfigError as e:
            raise ConfigError(f"run {name} on {self.spec.gpus} GPUs: {e}") from e

    def per_sample(self, cfg) -> float:
        spec = get_spec(cfg.model.name, **cfg.model.spec_overrides())
        return stage_flops(spec, cfg.stage, cfg.model.mask_ratio, _num_classes(cfg)).train

    def gpu_hours(self, cfg, samples: int) -> float:
        from scaling.plan import make_plan

        plan = make_plan(cfg.model.name, cfg.stage, self.spec.gpus, self.spec.gpu, micro_batch=cfg.batch.micro_batch,
                         activation_checkpointing=cfg.model.activation_checkpointing,
                         ds_config=cfg.deepspeed.config, samples=samples, num_classes=_num_classes(cfg))
        return plan.gpu_hours

    def run(self, stage: str, model: str, recipe: str, seed: int, samples: int, label: str,
            stage1: Run | None = None, prefix: str = "") -> Run:
        name = f"{prefix or recipe}-{model}-{label}-seed{seed}"
        init_from = str(self.stage1_root / "runs" / stage1.name) if stage1 else ""
        probe = self.config(stage, model, name, max(samples, 1), seed, init_from)
        batch = self.global_batch(probe, name)
        steps = round(samples / batch)
        if steps < 1:
            raise ConfigError(f"run {name}: a budget of {samples} samples is less than one global batch of {batch}; "
                              f"raise the budget to at least {batch} samples or lower batch.global_batch.")
        samples = steps * batch
        cfg = self.config(stage, model, name, samples, seed, init_from)
        flops = self.per_sample(cfg) * samples
        total = flops + (stage1.total_flops if stage1 else 0.0)
        params = encoder_params(get_spec(model, **cfg.model.spec_overrides()))  # as summary.json counts them
        depends_on = stage1.name if stage1 and self.stage1_root == self.out else ""  # another folder's: finished
        return Run(name, stage, model, recipe, seed, samples, params, flops, total,
                   self.gpu_hours(cfg, samples), depends_on, cfg)


def _label(n: float, prefix: str) -> str:
    if float(n).is_integer() and n < 10**6:
        return f"{prefix}{int(n)}"
    return f"{prefix}{n:.3g}".replace("e+0", "e").replace("e+", "e")


def expand(spec: SweepSpec, out: Path) -> list[Run]:
    """Every run of the sweep, each stage-1 run before the runs that start from it."""
    b = _Builder(spec, out)
    runs: list[Run] = []
    for seed in spec.seeds:
        for model in spec.models:
            stage1 = None
            if "mae_wsp" in spec.recipes:
                stage1 = b.run("mae", model, "mae", seed, spec.stage1_samples, _label(spec.stage1_samples, "n"),
                               prefix="mae1")  # the stage 1 that this model's mae_wsp runs share
                if spec.stage1_from:
                    _check_finished(b.stage1_root, stage1.name)
                else:
                    runs.append(stage1)
            for budget in spec.samples or spec.flops:
                for recipe in spec.recipes:
                    stage = "mae" if recipe == "mae" else "wsp"
                    parent = stage1 if recipe == "mae_wsp" else None
                    if spec.samples:
                        runs.append(b.run(stage, model, recipe, seed, int(budget), _label(budget, "n"), parent))
                        continue
                    runs.append(_isoflop_run(b, stage, model, recipe, seed, float(budget), parent))
    return runs


def _check_finished(root: Path, name: str) -> None:
    # finished as the trainer and `sweep status` judge it: a preempted run also leaves a summary.json
    if not finished(read_summary(root / "runs" / name)):
        raise ConfigError(f"stage1_from: {root} has no finished stage-1 run {name} (runs/{name}/summary.json); "
                          "finish it there first, or drop stage1_from to train one in this sweep.")


def _isoflop_run(b: _Builder, stage: str, model: str, recipe: str, seed: int, budget: float,
                 stage1: Run | None) -> Run:
    label = _label(budget, "C")
    base = stage1.total_flops if stage1 else 0.0
    if budget <= base:
        raise ConfigError(f"isoFLOP budget {budget:.3g} for {recipe} {model} is not above its stage 1's "
                          f"{base:.3g} FLOPs; raise the budget or lower stage1_samples.")
    probe = b.config(stage, model, f"{recipe}-{model}-{label}", 1, seed, stage1.name if stage1 else "")
    samples = round((budget - base) / b.per_sample(probe))
    run = b.run(stage, model, recipe, seed, samples, label, stage1)
    off = abs(run.total_flops - budget) / budget
    if off > ISOFLOP_TOLERANCE:
        raise ConfigError(f"run {run.name}: {run.samples} samples (whole global batches) give {run.total_flops:.4g} "
                          f"FLOPs, {off:.1%} off the budget {budget:.4g}; raise the budget or use a smaller global "
                          f"batch for {model} (more than 1% off).")
    return run
