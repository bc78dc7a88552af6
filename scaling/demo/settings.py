"""What `scaling demo` runs in each mode: the main comparison (one model, N seeds) and the small sweep.

The recipes are configs/demo/{mae,wsp}.yaml: 16-px images (16 tokens), one process per run, ZeRO-2 without
overlap_comm, whole images (flip only). Where the time went before (`benchmarks/demo_timing.py` and single
runs, 2-core box): 4-6 s of process start per run, ZeRO-3's per-parameter hooks (2.4x per step at this size),
32-px images (64 tokens, 4x the work of 16 px) and the DeepSpeed launcher's own processes for 2 ranks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from scaling.models.registry import MODELS

PASS = 10_240  # about one pass over the bundled subset's 10,000 training images, in whole batches of 64


@dataclass
class DemoSettings:
    quick: bool = False
    seeds: int = 3  # seeds of the main comparison (intervals need at least 2; the claim is read at 3)
    model: str = "vit_micro_patch4"  # the main comparison's model
    stage1_samples: int = 4 * PASS  # MAE pre-pretraining: 4 passes over the training images
    stage2_samples: int = 16_384  # classifier samples (256 steps of 64), for both recipes
    sweep_models: list[str] = field(default_factory=lambda: ["vit_nano_patch4", "vit_micro_patch4"])
    sweep_samples: list[int] = field(default_factory=lambda: [2048, 4096, 8192, 16_384])
    sweep_stage1_samples: int = 2 * PASS  # the stage-1 run each sweep model's MAE->WSP runs share
    eval_train_samples: int = 0  # training images for the comparison's probes (0: all 10,000; all 2,000 val)
    ranks: int = 1  # ranks of each main-comparison run (2: the DeepSpeed launcher); chosen once per folder

    def __post_init__(self) -> None:
        if self.seeds < 1:
            raise ValueError(f"--seeds {self.seeds}: give at least 1 (3 or more for intervals worth reading).")
        unknown = [m for m in [self.model, *self.sweep_models] if m not in MODELS]
        if unknown:
            raise ValueError(f"unknown model {unknown[0]!r}; valid names: {', '.join(MODELS)}.")
        if self.ranks not in (1, 2):
            raise ValueError(f"ranks must be 1 or 2, got {self.ranks}.")

    def as_dict(self) -> dict:
        return asdict(self)


def demo_settings(quick: bool, seeds: int | None, ranks: int) -> DemoSettings:
    """--quick shrinks: 1 seed (unless --seeds), 1 pass of stage 1, half the stage-2 samples, a sweep of the
    smaller model x 5 budgets (10 stage-2 runs instead of 16), probes on 2,000 training images. Every stage still
    runs; each recipe keeps 4 runs to fit and 1 to predict."""
    if not quick:
        return DemoSettings(seeds=3 if seeds is None else seeds, ranks=ranks)
    return DemoSettings(quick=True, seeds=1 if seeds is None else seeds, stage1_samples=PASS, stage2_samples=8192,
                        sweep_models=["vit_nano_patch4"], sweep_samples=[1024, 2048, 3072, 4096, 6144],
                        sweep_stage1_samples=PASS, eval_train_samples=2000, ranks=ranks)
