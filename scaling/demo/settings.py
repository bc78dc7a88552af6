"""What `scaling demo` runs in each mode: the main comparison (one model, N seeds) and the small sweep.

Measured on an idle 2-core box: the default in 5 min 39 s to 6 min 32 s, --quick in 79-99 s (targets: 10 and 2
minutes; benchmarks/demo_timing.py). Process start-up (importing torch and DeepSpeed, ~5 s) costs more than a
tiny run trains, so --quick saves mostly by starting fewer runs, and the demo runs 2 at once when 2 cores are
free.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from scaling.models.registry import MODELS

# vit_tiny_patch16 at 32 px has 2x2 patches: a 5.5M-parameter encoder that still trains in seconds on a CPU.
TINY_AT_32 = ["model.img_size=32", "model.decoder_width=32", "model.decoder_depth=2", "model.decoder_heads=4"]


@dataclass
class DemoSettings:
    quick: bool = False
    seeds: int = 3  # seeds of the main comparison (intervals need at least 2; the claim is read at 3)
    model: str = "vit_micro_patch4"  # the main comparison's model
    stage1_samples: int = 4096  # MAE pre-pretraining samples (0.4 epochs of the 10k training images)
    stage2_samples: int = 2048  # WSP samples, for both recipes
    global_batch: int = 64
    log_every: int = 1  # stage-2 loss curves are the convergence measurement: log every step
    sweep_models: list[str] = field(default_factory=lambda: ["vit_nano_patch4", "vit_micro_patch4",
                                                             "vit_tiny_patch16"])
    sweep_samples: list[int] = field(default_factory=lambda: [256, 512, 1024])
    sweep_stage1_samples: int = 1024
    eval_train_samples: int = 0  # training images for the comparison's probes (0: all 10,000; all 2,000 val)
    sweep_eval_samples: int = 1000  # training images for the sweep's linear probes (all 2,000 val images)
    ranks: int = 1  # ranks of each main-comparison run (2: the DeepSpeed launcher); chosen once per folder

    def __post_init__(self) -> None:
        if self.seeds < 1:
            raise ValueError(f"--seeds {self.seeds}: give at least 1 (3 or more for intervals worth reading).")
        unknown = [m for m in [self.model, *self.sweep_models] if m not in MODELS]
        if unknown:
            raise ValueError(f"unknown model {unknown[0]!r}; valid names: {', '.join(MODELS)}.")
        if self.ranks not in (1, 2):
            raise ValueError(f"ranks must be 1 or 2, got {self.ranks}.")
        if min(self.stage1_samples, self.stage2_samples, *self.sweep_samples) < self.global_batch:
            raise ValueError(f"every sample budget must be at least one global batch ({self.global_batch}).")

    def as_dict(self) -> dict:
        return asdict(self)


def demo_settings(quick: bool, seeds: int | None, ranks: int) -> DemoSettings:
    """--quick shrinks: 1 seed (unless --seeds), half the stage-1/2 samples, a sweep of 1 model x 3 budgets
    (7 runs instead of 21), probes on 2,000 training images. Every stage still runs."""
    if not quick:
        return DemoSettings(seeds=3 if seeds is None else seeds, ranks=ranks)
    return DemoSettings(quick=True, seeds=1 if seeds is None else seeds, stage1_samples=2048, stage2_samples=1024,
                        sweep_models=["vit_nano_patch4"], sweep_samples=[128, 256, 512], sweep_stage1_samples=512,
                        eval_train_samples=2000, ranks=ranks)


def sweep_overrides(model: str) -> list[str]:
    return TINY_AT_32 if model == "vit_tiny_patch16" else []
