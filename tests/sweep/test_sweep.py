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
])
def test_bad_specs_are_one_line_errors_and_write_nothing(tmp_path, capsys, changes, words):
    out = tmp_path / "sweep"
    assert main([str(write_spec(tmp_path / "spec.yaml", **changes)), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    for w in words:
        assert w in err, err
    assert not out.exists() or not any(out.iterdir())


def test_status_done_failed_missing(tmp_path, capsys):
    out = tmp_path / "sweep"
    write_sweep(load_spec(write_spec(tmp_path / "spec.yaml", models=["vit_nano_patch4"], samples=[256])), out)
    names = [r["run"] for r in _rows(out)]  # stage 1, mae_wsp, wsp
    done, failed, missing = names
    (out / "runs" / done).mkdir(parents=True)
    (out / "runs" / done / "summary.json").write_text(json.dumps({"preempted": False, "samples_seen": 512,
                                                                  "loss": 0.5}))
    (out / "logs" / f"{failed}.log").write_text("step 1\nscaling train: config error: init_from 'x' not found\n"
                                                "exiting\n")
    (out / "logs" / f"{failed}.exit").write_text("2\n")
    status = {name: (state, detail) for name, state, detail in sweep_status(out)}
    assert status[done][0] == "done"
    assert status[failed] == ("failed", "exit 2: scaling train: config error: init_from 'x' not found")
    assert status[missing][0] == "missing"
    assert main(["status", str(out)]) == 0
    assert "1 done, 1 failed, 1 missing" in capsys.readouterr().out


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
    if scheduler == "slurm":
        submit = (out / "submit.sh").read_text()
        assert "--dependency=afterok:" in submit and submit.count("sbatch --parsable") == 3


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


def test_a_generated_slurm_job_runs_under_stub_slurm(tmp_path):
    """The job script `scaling sweep` writes is the SLURM template with the run's config: run it under the stub
    srun/scontrol with the stand-in launcher of tests/jobs (the real 2-rank run of the template is there)."""
    from jobs_helpers import FAKE_LAUNCHER, slurm_env

    out = tmp_path / "sweep"
    write_sweep(load_spec(write_spec(tmp_path / "spec.yaml", scheduler="slurm", gpus=2, models=["vit_nano_patch4"],
                                     samples=[256])), out)
    name = _rows(out)[0]["run"]
    fake = tmp_path / "fake_python"
    fake.write_text(FAKE_LAUNCHER)
    fake.chmod(0o755)
    env = slurm_env(tmp_path, PYTHON=str(fake), RANK_SECONDS="0")
    proc = subprocess.run(["bash", str(out / "jobs" / f"{name}.sh")], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    args = (tmp_path / "launcher.args").read_text().split("\0")[:-1]
    assert args[-3:] == ["--config", str(out.resolve() / "configs" / f"{name}.yaml"), "resume=auto"]
    assert "--world_info=" + "eyJsb2NhbGhvc3QiOiBbMCwgMV19" in args  # {"localhost": [0, 1]}: GPUS_PER_NODE=2
    assert (out / "logs" / f"{name}.exit").read_text().strip() == "0"


def test_sweep_run_refuses_a_slurm_sweep(tmp_path, capsys):
    out = tmp_path / "sweep"
    write_sweep(load_spec(write_spec(tmp_path / "spec.yaml", scheduler="slurm", models=["vit_nano_patch4"],
                                     samples=[256])), out)
    assert main(["run", str(out)]) == 2
    err = capsys.readouterr().err
    assert "slurm sweep" in err and "submit.sh" in err
    assert not list((out / "logs").iterdir())  # nothing ran


def test_submit_sh_submits_in_dependency_order(tmp_path):
    """submit.sh under a stub sbatch (prints `ID;cluster` as --parsable does on federated clusters)."""
    out = tmp_path / "sweep"
    write_sweep(load_spec(write_spec(tmp_path / "spec.yaml", scheduler="slurm", models=["vit_nano_patch4"],
                                     samples=[256, 512])), out)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text('#!/usr/bin/env bash\nn=$(( $(wc -l < "$LOG" 2>/dev/null || echo 0) + 100 ))\n'
                                    'echo "$*" >> "$LOG"\necho "$n;cluster"\n')
    (bin_dir / "sbatch").chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "LOG": str(tmp_path / "sbatch.log")}
    assert subprocess.run(["bash", str(out / "submit.sh")], env=env, capture_output=True).returncode == 0
    calls = (tmp_path / "sbatch.log").read_text().splitlines()
    names = [r["run"] for r in _rows(out)]  # stage 1, then mae_wsp/wsp per budget
    assert len(calls) == 5 and calls[0] == f"--parsable jobs/{names[0]}.sh"
    for call, row in zip(calls[1:], _rows(out)[1:]):
        dep = "--dependency=afterok:100 " if row["depends_on"] else ""
        assert call == f"--parsable {dep}jobs/{row['run']}.sh"
    # stage 1 done: not submitted again, and its dependants no longer wait for it
    (out / "runs" / names[0]).mkdir(parents=True)
    (out / "runs" / names[0] / "summary.json").write_text('{\n  "preempted": false\n}\n')
    (tmp_path / "sbatch.log").unlink()
    assert subprocess.run(["bash", str(out / "submit.sh")], env=env, capture_output=True).returncode == 0
    calls = (tmp_path / "sbatch.log").read_text().splitlines()
    assert len(calls) == 4 and not any("dependency" in c for c in calls)
