"""The report's own figure: stage-2 training loss against samples seen, per seed and recipe."""

from __future__ import annotations

from pathlib import Path

from scaling.demo.stats import plural

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


def sweep_figure(results: Path, fit_path: Path, path: Path, y_label: str) -> Path:
    """`scaling plot RESULTS --fit FIT`'s compute figure (scaling.laws.plots.compute_figure: both recipes,
    their fits solid over the fitted runs and dashed beyond, the bootstrap bands, held-out runs as black-edged
    crosses), with the accuracy axis held to 0-100%: a band extrapolated far below a recipe's cheapest run
    (its stage 1 puts MAE->WSP to the right) is cut at the axis instead of stretching it."""
    from scaling.laws.plots import compute_figure, save
    from scaling.laws.report import load_fit
    from scaling.laws.results import select
    from scaling.laws.table import read_table

    fit, draws, report = load_fit(fit_path)
    sel = select(read_table(results), fit.law, [report["x"]], report["y"], report.get("where") or [],
                 report.get("group_by"), report.get("y_kind"))
    widen = max(((report.get("bootstrap") or {}).get("interval_widening") or {"": 1.0}).values())
    held = tuple(h["run"] for h in report.get("holdout", []))
    fig = compute_figure(sel, fit, draws, "none", held, report.get("level", 0.9), widen=widen)
    ax = fig.axes[0]
    ax.set_ylim(0, 1)
    ax.set_ylabel(y_label)
    ax.set_title(f"Sweep: fit without the crossed runs, {report.get('level', 0.9):.0%} bands", fontsize=10)
    return save(fig, path)
