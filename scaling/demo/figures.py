"""The report's own figure: stage-2 training loss against samples seen, per seed and recipe."""

from __future__ import annotations

from pathlib import Path

from scaling.demo.report import plural

LABELS = {"mae_wsp": "WSP from MAE (stage 1 + 2)", "wsp": "WSP from random init"}
COLORS = {"mae_wsp": "tab:blue", "wsp": "tab:orange"}


def convergence_figure(curves: dict[str, list[tuple[list[int], list[float]]]], path: Path) -> Path:
    """curves: recipe -> one (samples, smoothed loss) per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for recipe, runs in curves.items():
        label = f"{LABELS.get(recipe, recipe)} ({plural(len(runs), 'seed')})"
        for i, (x, y) in enumerate(runs):
            ax.plot(x, y, color=COLORS.get(recipe), alpha=0.8, lw=1.2, label=label if i == 0 else None)
    ax.set_xlabel("stage-2 samples seen")
    ax.set_ylabel("training loss (trailing mean)")
    ax.set_title("Stage-2 convergence")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
