"""`scaling sweep`: the grid, its dependencies and FLOPs, isoFLOP mode, idempotence, refusal to overwrite
another sweep, `sweep status`, bad specs, and generated jobs that pass bash -n and shellcheck."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sweep_helpers import REPO, write_spec

from scaling.flops import stage_flops
from scaling.models.registry import get_spec
from scaling.sweep.cli import main
from scaling.sweep.spec import load_spec
from scaling.sweep.status import sweep_status
from scaling.sweep.write import COLUMNS, write_sweep

sys.path.insert(0, str(REPO / "tests" / "jobs"))
from jobs_helpers import shellcheck  # noqa: E402


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "sweep.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grid")
    out = tmp / "sweep"
    runs, _ = write_sweep(load_spec(write_spec(tmp / "spec.yaml")), out)
    return out, runs


def test_three_models_three_budgets_two_recipes(grid):
    out, runs = grid
    rows = _rows(out)
    assert list(rows[0]) == COLUMNS
    stage1 = [r for r in rows if r["run"].startswith("mae1-")]
    second = [r for r in rows if not r["run"].startswith("mae1-")]
    assert len(second) == 18 and len(stage1) == 3
    names = [r["run"] for r in rows]
    for r in rows:
        cfg = yaml.safe_load((out / "configs" / f"{r['run']}.yaml").read_text())
        assert cfg["run_dir"] == str(out.resolve() / r["run_dir"]) and cfg["resume"] == "auto"
        if r["recipe"] == "mae_wsp":
            parent = next(p for p in stage1 if p["model"] == r["model"] and p["seed"] == r["seed"])
            assert r["depends_on"] == parent["run"] and names.index(parent["run"]) < names.index(r["run"])
            assert cfg["init_from"] == str(out.resolve() / parent["run_dir"]) and cfg["stage"] == "wsp"
            assert float(r["total_flops"]) == pytest.approx(float(r["flops"]) + float(parent["flops"]), rel=1e-6)
        else:
            assert r["depends_on"] == "" and cfg["init_from"] == ""
            assert float(r["total_flops"]) == pytest.approx(float(r["flops"]), rel=1e-6)


def test_flops_are_the_flops_modules(grid):
    out, runs = grid
    for r in runs:
        spec = get_spec(r.model, **r.config.model.spec_overrides())
        classes = 0 if r.stage == "mae" else 10  # synthetic data: 10 classes
        per_sample = stage_flops(spec, r.stage, num_classes=classes).train
        assert r.flops == pytest.approx(per_sample * r.samples, rel=1e-12)
    rows = _rows(out)
    total = sum(float(r["flops"]) for r in rows)
    assert total == pytest.approx(sum(r.flops for r in runs), rel=1e-6)
    # the tiny ViT's override reaches the config and the params column
    tiny = next(r for r in rows if r["model"] == "vit_tiny_patch16")
    assert int(tiny["params"]) != int(next(r for r in rows if r["model"] == "vit_micro_patch4")["params"])


def test_rerun_is_idempotent(tmp_path):
    spec = load_spec(write_spec(tmp_path / "spec.yaml", models=["vit_nano_patch4"]))
    out = tmp_path / "sweep"
    _, changed = write_sweep(spec, out)
    assert changed > 0
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()}
    _, changed = write_sweep(spec, out)
    assert changed == 0
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()}
    assert after == before


def test_a_different_sweep_is_refused_unless_force(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main([str(write_spec(tmp_path / "a.yaml", models=["vit_nano_patch4"])), "--out", str(out)]) == 0
    other = write_spec(tmp_path / "b.yaml", models=["vit_nano_patch4"], seeds=[1])
    capsys.readouterr()
    assert main([str(other), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "different sweep" in err and "--force" in err and err.count("\n") == 1
    assert main([str(other), "--out", str(out), "--force"]) == 0
    assert {r["seed"] for r in _rows(out)} == {"1"}
    stranger = tmp_path / "notes"
    stranger.mkdir()
    (stranger / "mine.txt").write_text("keep me")
    assert main([str(other), "--out", str(stranger)]) == 2
    assert [p.name for p in stranger.iterdir()] == ["mine.txt"]


def test_isoflop_runs_are_within_one_percent_of_their_budget(tmp_path):
    spec = load_spec(write_spec(tmp_path / "spec.yaml", samples=None, flops=[5e12, 1e13], stage1_samples=256,
                                models=["vit_micro_patch4", "vit_tiny_patch16"]))
    runs, _ = write_sweep(spec, tmp_path / "sweep")
    second = [r for r in runs if r.name.startswith(("mae_wsp", "wsp"))]
    assert len(second) == 2 * 2 * 2
    for r in second:
        budget = 5e12 if "C5e12" in r.name else 1e13
        assert abs(r.total_flops - budget) / budget <= 0.01, (r.name, r.total_flops)
    # an isoFLOP line: smaller models see more samples
    line = {r.model: r.samples for r in second if "C1e13" in r.name and r.recipe == "wsp"}
    assert line["vit_micro_patch4"] > line["vit_tiny_patch16"]


@pytest.mark.parametrize("changes,words", [
    ({"models": ["vit_gigantic"]}, ["vit_gigantic", "Valid names"]),
    ({"samples": [16]}, ["less than one global batch", "32"]),
    ({"stage1_samples": 0}, ["mae_wsp", "stage1_samples"]),
    ({"recipes": ["mae_clip"]}, ["mae_clip", "mae_wsp"]),
    ({"samples": None, "flops": [1e5]}, ["isoFLOP budget", "stage1_samples"]),
    ({"gpu": "v100"}, ["v100", "h100"]),
    ({"scheduler": "slurm", "slurm": {"gpus_per_node": -1}}, ["slurm.gpus_per_node", "-1", "CPU-only"]),
    ({"scheduler": "slurm", "slurm": {"cpus_per_task": -4}}, ["slurm.cpus_per_task", "-4"]),
    ({"scheduler": "slurm", "slurm": {"time": 259200}}, ["slurm.time", "259200", '"72:00:00"']),
    ({"scheduler": "slurm", "slurm": {"time": "1:00:00", "signal_seconds": 3590}}, ["signal_seconds", "3590"]),
    ({"scheduler": "slurm", "slurm": {"partition": "gpu; rm -rf"}}, ["slurm.partition", "gpu; rm -rf"]),
    ({"scheduler": "slurm", "gpus": 12, "slurm": {"gpus_per_node": 8}}, ["gpus: 12", "multiple of 8"]),
    ({"scheduler": "slurm", "slurm": {"gpus": 8}}, ["slurm.gpus", "gpus_per_node"]),
])
def test_bad_specs_are_one_line_errors_and_write_nothing(tmp_path, capsys, changes, words):
    out = tmp_path / "sweep"
    assert main([str(write_spec(tmp_path / "spec.yaml", **changes)), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    for w in words:
        assert w in err, err
    assert not out.exists() or not any(out.iterdir())


def test_status_done_failed_new(tmp_path, capsys):
    out = tmp_path / "sweep"
    write_sweep(load_spec(write_spec(tmp_path / "spec.yaml", models=["vit_nano_patch4"], samples=[256])), out)
    names = [r["run"] for r in _rows(out)]  # stage 1, mae_wsp, wsp
    done, failed, new = names
    (out / "runs" / done).mkdir(parents=True)
    (out / "runs" / done / "summary.json").write_text(json.dumps({"preempted": False, "samples_seen": 512,
                                                                  "loss": 0.5}))
    (out / "logs" / f"{failed}.log").write_text("step 1\nscaling train: config error: init_from 'x' not found\n"
                                                "exiting\n")
    (out / "logs" / f"{failed}.exit").write_text("2\n")
    status = {name: (state, detail) for name, state, detail in sweep_status(out)}
    assert status[done][0] == "done"
    assert status[failed] == ("failed", "exit 2: scaling train: config error: init_from 'x' not found")
    assert status[new][0] == "new"
    capsys.readouterr()
    assert main(["status", str(out)]) == 0
    assert "1 done, 1 failed, 1 new" in capsys.readouterr().out


@pytest.mark.parametrize("scheduler", ["local", "slurm"])
def test_generated_jobs_pass_bash_n_and_shellcheck(tmp_path, scheduler):
    out = tmp_path / "sweep"
    write_sweep(load_spec(write_spec(tmp_path / "spec.yaml", scheduler=scheduler, gpus=2, models=["vit_nano_patch4"],
                                     samples=[256])), out)
    scripts = [out / "submit.sh", *sorted((out / "jobs").glob("*.sh"))]
    assert len(scripts) == 4
    for script in scripts:
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0, script
    binary = shellcheck()
    if binary is None:
        pytest.skip("shellcheck is not installed: apt-get install shellcheck, or pip install -e '.[dev]'")
    proc = subprocess.run([binary, "-s", "bash", *map(str, scripts)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
    submit = (out / "submit.sh").read_text()
    command = "submit" if scheduler == "slurm" else "run"
    assert f"exec {sys.executable} -m scaling.sweep.cli {command} " in submit  # the venv's interpreter, pinned


@pytest.mark.parametrize("name", ["tiny_cpu", "paper_grid"])
def test_ready_specs_expand(tmp_path, name):
    spec = load_spec(REPO / "jobs" / "sweeps" / f"{name}.yaml")
    runs, _ = write_sweep(spec, tmp_path / name)
    recipes = {r.recipe for r in runs}
    assert {"mae_wsp", "wsp"} <= recipes
    if name == "paper_grid":
        assert recipes == {"mae", "wsp", "mae_wsp"} and {r.model for r in runs} >= {"vit_base_patch16",
                                                                                    "vit_6.5b_patch14"}
        assert all(r.gpu_hours > 0 for r in runs)
    else:
        assert len([r for r in runs if r.depends_on or r.recipe == "wsp"]) == 18


def test_generated_slurm_jobs_take_their_resources_from_the_spec(tmp_path):
    """GPU nodes: whole nodes of gpus_per_node, a core per rank and per data worker, the signal lead; CPU-only
    nodes (gpus_per_node: 0): no GPU request, the run's ranks as CPU ranks on one node; the interpreter pinned."""
    gpu = _job_text(tmp_path / "gpu", gpus=16, slurm={"gpus_per_node": 8, "signal_seconds": 600},
                    overrides=["data.train=synthetic", "data.workers=3", "batch.micro_batch=2", "batch.grad_accum=1"])
    for line in ("#SBATCH --nodes=2", "#SBATCH --gpus-per-node=8", "#SBATCH --cpus-per-task=32",
                 "#SBATCH --signal=B:USR1@600", "export GPUS_PER_NODE=8", f"export PYTHON={sys.executable}"):
        assert line + "\n" in gpu or line + "  #" in gpu, line
    cpu = _job_text(tmp_path / "cpu", gpus=2, slurm={"gpus_per_node": 0, "cpus_per_task": 6})
    assert "--gpus-per-node" not in cpu.split("set -euo pipefail")[0]
    for line in ("#SBATCH --nodes=1", "#SBATCH --cpus-per-task=6", "export GPUS_PER_NODE=2"):
        assert line + "\n" in cpu or line + "  #" in cpu, line


def _job_text(tmp: Path, **changes) -> str:
    out = tmp / "sweep"
    write_sweep(load_spec(write_spec(tmp.with_suffix(".yaml"), scheduler="slurm", models=["vit_nano_patch4"],
                                     samples=[256], **changes)), out)
    return (out / "jobs" / f"{_rows(out)[0]['run']}.sh").read_text()


def test_sweep_run_refuses_a_slurm_sweep(tmp_path, capsys):
    out = tmp_path / "sweep"
    write_sweep(load_spec(write_spec(tmp_path / "spec.yaml", scheduler="slurm", models=["vit_nano_patch4"],
                                     samples=[256])), out)
    assert main(["run", str(out)]) == 2
    err = capsys.readouterr().err
    assert "slurm sweep" in err and "submit.sh" in err
    assert not list((out / "logs").iterdir())  # nothing ran


def test_stage1_from_reuses_another_folders_finished_stage1(tmp_path, capsys):
    """More mae_wsp runs for a sweep whose stage 1 is done: no stage-1 run is written, the runs start from the
    other folder's run (no job dependency: it is finished) and their total FLOPs still count it. A stage-1 run
    that is not finished there is refused in one line, before anything is written."""
    first = tmp_path / "first"
    assert main([str(write_spec(tmp_path / "a.yaml", models=["vit_nano_patch4"], samples=[256])),
                 "--out", str(first)]) == 0
    stage1 = next(r for r in _rows(first) if r["stage"] == "mae")
    spec = write_spec(tmp_path / "b.yaml", models=["vit_nano_patch4"], samples=[1024], recipes=["mae_wsp"],
                      stage1_from=str(first))
    assert main([str(spec), "--out", str(tmp_path / "more")]) == 2
    assert "no finished stage-1 run" in capsys.readouterr().err and not (tmp_path / "more").exists()

    (first / stage1["run_dir"]).mkdir(parents=True)
    summary = first / stage1["run_dir"] / "summary.json"
    summary.write_text(json.dumps({"run": stage1["run"], "preempted": True}))  # cut short: not a stage 1 to use
    assert main([str(spec), "--out", str(tmp_path / "more")]) == 2
    assert "no finished stage-1 run" in capsys.readouterr().err and not (tmp_path / "more").exists()
    summary.write_text(json.dumps({"run": stage1["run"], "preempted": False}))  # finished there
    assert main([str(spec), "--out", str(tmp_path / "more")]) == 0
    rows = _rows(tmp_path / "more")
    assert [(r["stage"], r["depends_on"]) for r in rows] == [("wsp", "")]
    config = yaml.safe_load((tmp_path / "more" / "configs" / f"{rows[0]['run']}.yaml").read_text())
    assert config["init_from"] == str(first / stage1["run_dir"])
    assert float(rows[0]["total_flops"]) == pytest.approx(float(rows[0]["flops"]) + float(stage1["flops"]), rel=1e-5)
