"""The demo's six steps, each a function of the demo folder that returns its one-line summary. A step whose
outputs exist is skipped (its runs, evals and tables are reused), so a re-run resumes where the last stopped.

Every step goes through the commands a user runs: `scaling data write`, the sweep folders' job scripts
(`scaling sweep`; the DeepSpeed launcher for 2 ranks), `scaling eval`, `scaling results collect`,
`scaling fit`, `scaling advise`; their own output goes to DIR/logs/ (and to the terminal with --verbose). The
sweep's figure is `scaling plot`'s compute figure with its accuracy axis held to 0-100% (figures.sweep_figure).
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scaling.config import ConfigError
from scaling.demo.launch import run_jobs
from scaling.demo.settings import DemoSettings
from scaling.demo.specs import compare_spec, sweep_spec, write_spec
from scaling.demo.stats import plural
from scaling.demo.sweep_report import FIGURE, METRIC, METRIC_NAME, largest_runs

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "fashion_mnist"
PROTOCOLS = ("linear", "knn", "lowshot")
# Shorter weight-decay grids and fewer low-shot splits than `scaling eval`'s defaults: the full grids cost more
# than training at this size (the chosen decay sits inside these grids here; each EVAL.json lists its own).
EVAL_ARGS = {"linear": ["--grid", "1e-6,1e-5,1e-4,1e-3"], "knn": [],
             "lowshot": ["--grid", "1e-4,1e-2", "--splits", "3"]}
# Whole images, as the runs train and validate on them (configs/demo: min_scale 1, eval.center_fraction 1).
EVAL_VIEW = ["--center-fraction", "1.0"]


@dataclass
class Demo:
    out: Path
    settings: DemoSettings
    echo: Callable[[str], None] = print
    verbose: bool = False
    jobs: int = 1  # runs at once (2 when 2 cores are free)

    @property
    def shards(self) -> Path:
        return self.out / "shards"

    def call(self, main: Callable[[list[str]], int], argv: list[str], log: str) -> None:
        """A command's main(argv) in this process (no second torch start-up); its printout to DIR/logs/LOG
        unless --verbose. A non-zero exit raises with the command and the log to read."""
        path = self.out / "logs" / log
        path.parent.mkdir(parents=True, exist_ok=True)
        buf, start = io.StringIO(), time.perf_counter()
        if self.verbose:
            code = main(argv)
        else:
            with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
                code = main(argv)
        with path.open("a") as f:
            f.write(f"$ scaling {' '.join(argv)}\n{buf.getvalue()}exit {code} ({time.perf_counter() - start:.1f} s)\n")
        if code:
            tail = [ln for ln in buf.getvalue().splitlines() if ln.strip()][-1:] or ["(see the log)"]
            raise ConfigError(f"`scaling {' '.join(argv[:2])} ...` failed: {tail[0]} (log: {path})")


def step_shards(d: Demo) -> str:
    from scaling.data.cli import main as data_main

    done = []
    for split, size in (("train", 2500), ("val", 1000)):
        target = d.shards / split
        if not (target / "shards.json").is_file():  # a write cut short left shards without a manifest
            d.call(data_main, ["write", str(ASSETS / split), str(target), "--shard-size", str(size), "--workers",
                               "1", "--quiet", "--overwrite"], "shards.log")
        manifest = json.loads((target / "shards.json").read_text())
        done.append(f"{split} {manifest['num_samples']:,} images in {manifest['num_shards']} shards")
    return f"{', '.join(done)}, {manifest['num_classes']} classes -> {d.shards}"


def _make_sweep(d: Demo, name: str, spec: dict) -> Path:
    from scaling.sweep.cli import main as sweep_main

    path = write_spec(spec, d.out / "specs" / f"{name}.yaml")
    d.call(sweep_main, [str(path), "--out", str(d.out / name)], f"{name}.log")
    return d.out / name


def _span(values: list[float]) -> str:
    return f"{min(values):.4f}" if min(values) == max(values) else f"{min(values):.4f}-{max(values):.4f}"


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def step_stage1(d: Demo) -> str:
    folder = _make_sweep(d, "compare", compare_spec(d.settings, d.shards))
    how = "2 ranks (DeepSpeed launcher)" if d.settings.ranks == 2 else "1 process"
    names = run_jobs(folder, "mae", d.echo, d.verbose, d.jobs)
    losses = [_summary(folder / "runs" / n)["loss"] for n in names]
    return (f"{plural(len(names), 'MAE run')} of {d.settings.model}, {d.settings.stage1_samples:,} "
            f"samples each, {how}; "
            f"final loss {_span(losses)} -> {folder / 'runs'}")


def step_stage2(d: Demo) -> str:
    folder = d.out / "compare"
    names = run_jobs(folder, "wsp", d.echo, d.verbose, d.jobs)
    by = {"mae_wsp": [], "wsp": []}
    for n in names:
        s = _summary(folder / "runs" / n)
        by[s["recipe"]].append(s["loss"])
    mean = {k: sum(v) / len(v) for k, v in by.items() if v}
    return (f"{len(names)} WSP runs ({d.settings.stage2_samples:,} samples each): final loss from MAE "
            f"{mean['mae_wsp']:.4f}, from random init {mean['wsp']:.4f} (mean of "
            f"{plural(d.settings.seeds, 'seed')})")


def _stage2_runs(folder: Path) -> list[str]:
    from scaling.sweep.write import read_runs

    return [r["run"] for r in read_runs(folder) if r["stage"] == "wsp"]


def _evaluate(d: Demo, folder: Path, protocols: tuple[str, ...], extra: list[str]) -> int:
    from scaling.eval.cli import main as eval_main

    done = 0
    for run in _stage2_runs(folder):
        for protocol in protocols:
            target = d.out / "eval" / folder.name / run / f"{protocol}.json"
            if target.is_file():
                continue
            d.call(eval_main, ["--weights", str(folder / "runs" / run), "--protocol", protocol, "--train",
                               str(d.shards / "train"), "--val", str(d.shards / "val"), "--out", str(target),
                               "--cache-dir", str(d.out / "cache" / "features"), *EVAL_ARGS[protocol], *EVAL_VIEW,
                               *extra],
                   "eval.log")
            done += 1
    return done


def step_eval(d: Demo) -> str:
    folder = d.out / "compare"
    n = _evaluate(d, folder, PROTOCOLS, ["--train-samples", str(d.settings.eval_train_samples)])
    acc = {"mae_wsp": [], "wsp": []}
    for run in _stage2_runs(folder):
        s = _summary(folder / "runs" / run)
        acc[s["recipe"]].append(s["eval"]["linear_top1"])
    mean = {k: 100 * sum(v) / len(v) for k, v in acc.items()}
    return (f"{n} evaluations ({', '.join(PROTOCOLS)}) of {len(_stage2_runs(folder))} runs: linear probe top-1 "
            f"from MAE {mean['mae_wsp']:.1f}%, from random init {mean['wsp']:.1f}% -> {d.out / 'eval' / 'compare'}")


def step_sweep(d: Demo) -> str:
    from scaling.demo.figures import sweep_figure
    from scaling.laws.cli import main as laws_main

    s = d.settings
    folder = _make_sweep(d, "sweep", sweep_spec(s, d.shards))
    for stage in ("mae", "wsp"):
        run_jobs(folder, stage, d.echo, d.verbose, d.jobs)
    results, fit, figure = folder / "results.csv", folder / "FIT.json", d.out / FIGURE
    figure.parent.mkdir(parents=True, exist_ok=True)
    d.call(laws_main, ["results", "collect", str(folder), "--out", str(results)], "sweep_fit.log")
    # The prediction to check: the largest-compute run of each recipe is left out of the fit. The fit and
    # figure count stage-1 compute: x = total_flops (MAE pre-pretraining included for mae_wsp).
    held = largest_runs(results)
    d.call(laws_main, ["fit", str(results), "--law", "power", "--x", "total_flops", "--y", METRIC, "--y-kind",
                       "accuracy", "--group-by", "recipe", "--holdout-where", "run=" + ",".join(held.values()),
                       "--out", str(fit)], "sweep_fit.log")
    sweep_figure(results, fit, figure, f"{METRIC_NAME}: the classifier's top-1 on the validation images")
    advice = _advise_next(d, results)
    runs = len(_stage2_runs(folder))
    models = len(s.sweep_models)
    return (f"{runs} stage-2 runs ({plural(models, 'model')} x {len(s.sweep_samples)} budgets x 2 recipes) + "
            f"{plural(models, 'stage-1 run')}; {results.name}, {fit.name} (held out: {', '.join(held.values())}) -> "
            f"{folder}; figure {figure}; {advice}")


def _advise_next(d: Demo, results: Path) -> str:
    """`scaling advise` on the sweep (next_runs.py); a sweep it cannot advise on is said in the report, not a
    failed demo. Returns the summary's words on it."""
    from scaling.advise.cli import main as advise_main
    from scaling.demo.next_runs import ADVICE, FAILED, advise_argvs

    failed = d.out / FAILED
    failed.unlink(missing_ok=True)
    grid, advise = advise_argvs(d.out, d.settings.sweep_samples)
    try:
        d.call(advise_main, grid, "sweep_advise.log")
        d.call(advise_main, advise, "sweep_advise.log")
    except ConfigError as e:
        failed.write_text(f"{e}\n")
        return "advise: could not advise (see report.md)"
    a = json.loads((d.out / ADVICE).read_text())
    return f"advise on the next {plural(len(a['chosen']), 'run')}: {a['stop']['verdict']} ({ADVICE})"


def step_report(d: Demo) -> str:
    from scaling.demo.report import write_report

    path, headline = write_report(d.out)
    return f"{headline} -> {path}"


STEPS: list[tuple[str, str, Callable[[Demo], str]]] = [
    ("shards", "shards from the bundled Fashion-MNIST subset", step_shards),
    ("stage1", "stage 1: MAE pre-pretraining", step_stage1),
    ("stage2", "stage 2: WSP from the MAE encoder and from random init", step_stage2),
    ("eval", "evaluation: linear probe, kNN, low-shot", step_eval),
    ("sweep", "sweep: sizes x budgets x recipes, results, fit, figure, advice", step_sweep),
    ("report", "report", step_report),
]
