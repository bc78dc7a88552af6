"""The sweep's report section from made-up run outputs through the real `scaling results collect`, `fit`
and `plot`: the largest-compute run of each recipe is held out, and the held-out verdict follows the run's
own summary.json."""

from __future__ import annotations

import json
import math

from demo_fixtures import finish_runs, finish_sweep, make_folder

from scaling.demo.report import build_report
from scaling.demo.settings import demo_settings
from scaling.demo.steps import Demo, step_sweep
from scaling.demo.sweep_report import FIGURE, held_out, largest_runs, read_csv


def _top1(wobble: float):
    """Error falling as a power of total compute, with a run-to-run wobble of up to `wobble` (from the name)."""
    return lambda row: (1 - 0.5 * (float(row["total_flops"]) / 4e9) ** -0.15
                        + wobble * ((sum(map(ord, row["run"])) % 7) - 3) / 3)


def _sweep(tmp_path, wobble: float = 0.01):
    out = make_folder(tmp_path / "demo")
    finish_runs(out, {"mae_wsp": [0.80, 0.82, 0.81], "wsp": [0.70, 0.71, 0.72]})
    folder = finish_sweep(out, _top1(wobble))
    said: list[str] = []
    step_sweep(Demo(out, demo_settings(False, None, 1), echo=said.append))
    assert len(said) == 18 and all("done before, skipped" in s for s in said)  # nothing trained
    return out, folder


def _set_top1(folder, run: str, value: float) -> None:
    row = next(r for r in read_csv(folder / "sweep.csv") if r["run"] == run)
    path = folder / row["run_dir"] / "summary.json"
    summary = json.loads(path.read_text())
    summary["eval"]["val_top1"] = value
    path.write_text(json.dumps(summary))


def test_the_largest_run_of_each_recipe_is_held_out_and_checked(tmp_path):
    out, folder = _sweep(tmp_path)
    results = read_csv(folder / "results.csv")
    held = largest_runs(folder / "results.csv")
    for recipe, run in held.items():
        top = max((r for r in results if r["recipe"] == recipe and r["metric"] == "val_top1"),
                  key=lambda r: float(r["total_flops"]))
        assert top["run"] == run and "vit_micro_patch4" in run
    fit = json.loads((folder / "FIT.json").read_text())
    assert sorted(h["run"] for h in fit["holdout"]) == sorted(held.values())
    assert fit["n_runs"] == 14  # 16 stage-2 runs less the 2 held out
    assert (out / FIGURE).read_bytes()[:4] == b"\x89PNG"

    text, headline = build_report(out)
    rows, level = held_out(folder)
    assert level == 0.9 and len(rows) == 2
    for r in rows:
        h = next(h for h in fit["holdout"] if h["run"] == r.run)
        assert math.isclose(r.predicted, 1 - h["predicted"]) and math.isclose(r.lo, 1 - h["hi"])
        assert r.covered  # the runs follow the law the fit finds
        line = next(ln for ln in text.splitlines() if ln.startswith(f"| {r.recipe} | {r.run} |"))
        assert f"| {100 * r.predicted:.1f} | [{100 * r.lo:.1f}, {100 * r.hi:.1f}] | {100 * r.measured:.1f} | yes |" \
            in line
    assert "covered the measured val top-1 of 2 of 2 held-out runs" in headline
    assert "## Held-out prediction" in text and "![compute vs val top-1](figures/compute_vs_val_top1.png)" in text

    # The measured value comes from the run's own summary.json: change it and the verdict follows.
    _set_top1(folder, held["wsp"], 0.15)
    text2, headline2 = build_report(out)
    assert "covered the measured val top-1 of 1 of 2 held-out runs" in headline2
    assert f"| wsp | {held['wsp']} |" in text2 and "| 15.0 | no |" in text2


def test_sweep_section_states_span_and_monotone_steps(tmp_path):
    out, folder = _sweep(tmp_path, wobble=0.0)
    text, _ = build_report(out)
    values = [float(r["value"]) for r in read_csv(folder / "results.csv") if r["metric"] == "val_top1"]
    assert f"spans {100 * min(values):.1f}-{100 * max(values):.1f}% over the sweep" in text
    assert "rose with compute in 12 of 12 steps" in text  # 2 models x 2 recipes x 3 steps between 4 budgets

    _set_top1(folder, "wsp-vit_nano_patch4-n4096-seed0", 0.30)  # below its 2,048-sample neighbour
    step_sweep(Demo(out, demo_settings(False, None, 1), echo=lambda s: None))  # results.csv collected again
    text, _ = build_report(out)
    assert "rose with compute in 11 of 12 steps" in text and "spans 30.0-" in text


def test_the_report_ends_with_advise_picks_and_the_command_to_run_them(tmp_path):
    """`scaling advise` ran on the sweep (decision: mae_wsp's val top-1 at 4x the largest total compute); the
    report's last section shows its two picks as ADVICE.json has them, and the specs it names are ones
    `scaling sweep` writes a folder from."""
    from scaling.demo.next_runs import ADVICE, FAILED, NEXT_SPEC, next_lines
    from scaling.sweep.cli import main as sweep_main

    out, folder = _sweep(tmp_path)
    advice = json.loads((out / ADVICE).read_text())
    biggest = max(float(r["total_flops"]) for r in read_csv(folder / "results.csv") if r["metric"] == "val_top1")
    assert math.isclose(float(advice["decision"]["spec"].split("=")[-1]), 4 * biggest, rel_tol=1e-3)
    trained = {r["run"] for r in read_csv(folder / "sweep.csv")}
    chosen = advice["chosen"]
    assert len(chosen) == 2 and all(c["recipe"] == "mae_wsp" and c["run"] not in trained for c in chosen)

    text, _ = build_report(out)
    section = text.split("## What to run next")[1]
    assert "## " not in section  # the report ends with it
    for i, c in enumerate(chosen, 1):
        assert f"| {i} | {c['run']} | {c['model']} | {int(c['samples']):,} |" in section
    specs = advice["sweep_specs"]
    assert specs and str(out / NEXT_SPEC) == specs[0]
    for spec in specs:
        assert f"scaling sweep {spec} --out" in section
        assert sweep_main([spec, "--out", str(tmp_path / "next" / spec.rsplit("/", 1)[-1])]) == 0
    written = [r["run"] for s in specs for r in read_csv(tmp_path / "next" / s.rsplit("/", 1)[-1] / "sweep.csv")]
    assert {c["run"] for c in chosen} <= set(written)
    # The new folders train no stage 1: their mae_wsp runs start from the sweep's own (stage1_from), so the
    # collect command can take the folders whole (a stage-1 run of the same name in both was refused).
    collect = next(ln for ln in section.splitlines() if ln.startswith("scaling results collect"))
    for s in specs:
        folder_name = s.rsplit("/", 1)[-1]
        rows = read_csv(tmp_path / "next" / folder_name / "sweep.csv")
        assert rows and all(r["stage"] == "wsp" and r["depends_on"] == "" for r in rows)
        assert f" {out / folder_name.removesuffix('.yaml')} " in collect
        stage1_samples = demo_settings(False, None, 1).sweep_stage1_samples
        for r in rows:
            config = (tmp_path / "next" / folder_name / "configs" / f"{r['run']}.yaml").read_text()
            stage1 = folder / "runs" / f"mae1-{r['model']}-n{stage1_samples}-seed0"
            assert f"init_from: {stage1}" in config, config
    (out / FAILED).write_text("every candidate is already in the results\n")
    assert "could not advise on this sweep: every candidate is already" in next_lines(out)[0]
