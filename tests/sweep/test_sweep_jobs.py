"""`scaling sweep run DIR --jobs N`: the scheduler. Each run's job script is replaced by a short bash stand-in
that records when it ran and the environment it got, then writes the summary.json of a finished run; the slow
tests (tests/sweep/test_sweep_run.py, tests/demo/test_demo_quick.py) run the real job scripts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sweep_helpers import write_spec

from scaling.config import ConfigError
from scaling.sweep.cli import main
from scaling.sweep.run import run_sweep
from scaling.sweep.spec import load_spec
from scaling.sweep.write import read_runs, write_sweep

STAND_IN = """#!/usr/bin/env bash
set -euo pipefail
t0=$(date +%s.%N)
sleep {sleep}
{fail}
mkdir -p {run_dir}
echo '{{"samples_seen": 64, "loss": 1.0, "preempted": false}}' > {run_dir}/summary.json
env_seen="${{MASTER_PORT:--}} ${{OMP_NUM_THREADS:--}} ${{CUDA_VISIBLE_DEVICES:--}}"
echo "$t0 $(date +%s.%N) $env_seen" > {out}/times/{name}.txt
"""


def _sweep(tmp: Path, gpus: int = 1, fail: str = "", sleep: float = 0.4) -> Path:
    out = tmp / "sweep"
    write_sweep(load_spec(write_spec(tmp / "spec.yaml", models=["vit_nano_patch4"], samples=[64, 128], gpus=gpus)),
                out)
    (out / "times").mkdir()
    for r in read_runs(out):
        script = STAND_IN.format(sleep=sleep, run_dir=out / r["run_dir"], out=out, name=r["run"],
                                 fail="echo 'config error: made to fail' >&2; exit 3" if r["stage"] == fail else "")
        (out / "jobs" / f"{r['run']}.sh").write_text(script)
    return out


def _times(out: Path) -> dict[str, dict]:
    """Per run: when it started and ended, and its MASTER_PORT, OMP_NUM_THREADS, CUDA_VISIBLE_DEVICES ("-": unset)."""
    got = {}
    for p in (out / "times").glob("*.txt"):
        start, end, port, omp, gpu = p.read_text().split()
        got[p.stem] = {"start": float(start), "end": float(end), "port": port, "omp": omp, "gpu": gpu}
    return got


def _overlap(t: dict[str, dict]) -> list[tuple[str, str]]:
    return [(a, b) for a in t for b in t if a < b and t[a]["start"] < t[b]["end"] and t[b]["start"] < t[a]["end"]]


def test_two_at_once_in_dependency_order_each_with_its_own_port(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr("scaling.sweep.run.gpu_ids", lambda: [])  # a CPU machine, whatever runs the test
    out = _sweep(tmp_path)
    outcomes = run_sweep(out, jobs=2, report=lambda *a: None, started=None)
    assert sorted(o.state for o in outcomes) == ["done"] * 5
    t, rows = _times(out), read_runs(out)
    assert len(t) == 5
    stage1 = next(r["run"] for r in rows if r["stage"] == "mae")
    for r in rows:
        if r["depends_on"]:
            assert t[r["run"]]["start"] >= t[stage1]["end"]  # MAE -> WSP starts from a finished stage 1
    spans = sorted((v["start"], v["end"]) for v in t.values())
    most = max(sum(s <= a < e for s, e in spans) for a, _ in spans)
    assert most == 2  # two at a time, never three
    overlapping = _overlap(t)
    assert overlapping and all(t[a]["port"] != t[b]["port"] for a, b in overlapping)
    assert {v["omp"] for v in t.values()} == {str(max(1, len(os.sched_getaffinity(0)) // 2))}
    assert all((out / "logs" / f"{name}.exit").read_text() == "0\n" for name in t)


def test_one_at_a_time_keeps_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MASTER_PORT", "29777")
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    out = _sweep(tmp_path, sleep=0)
    run_sweep(out, jobs=1, report=lambda *a: None, started=None)
    t = _times(out)
    spans = sorted((v["start"], v["end"]) for v in t.values())
    assert all(e <= s2 for (_, e), (s2, _) in zip(spans, spans[1:]))
    assert {(v["port"], v["omp"]) for v in t.values()} == {("29777", "3")}


def test_a_failed_stage1_skips_its_dependants_and_the_rest_run(tmp_path, capsys):
    out = _sweep(tmp_path, fail="mae", sleep=0)
    stage1 = next(r["run"] for r in read_runs(out) if r["stage"] == "mae")
    assert main(["run", str(out), "--jobs", "2"]) == 1
    printed = capsys.readouterr().out
    assert f"{stage1}: failed exit 3: config error: made to fail" in printed
    assert printed.count(f"skipped, its stage 1 {stage1} failed") == 2
    assert "3 runs did not finish" in printed
    assert sorted(_times(out)) == sorted(r["run"] for r in read_runs(out) if r["recipe"] == "wsp")
    capsys.readouterr()
    assert main(["run", str(out)]) == 1  # a retry runs only what is not done: the stage 1 fails again
    assert capsys.readouterr().out.count("done, skipped") == 2


def test_a_stage_alone_skips_runs_whose_stage1_is_not_done(tmp_path):
    out = _sweep(tmp_path, sleep=0)
    said = []
    run_sweep(out, stages=("wsp",), report=lambda i, n, o: said.append((o.name, o.state, o.detail)), started=None)
    mae_wsp = [s for s in said if s[0].startswith("mae_wsp")]
    assert len(mae_wsp) == 2 and all(s[1] == "skipped" and "is not done" in s[2] for s in mae_wsp)
    assert sorted(_times(out)) == sorted(r["run"] for r in read_runs(out) if r["recipe"] == "wsp")


def test_one_gpu_each_on_a_gpu_machine(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    out = _sweep(tmp_path)
    run_sweep(out, jobs=2, report=lambda *a: None, started=None)
    t = _times(out)
    assert {v["gpu"] for v in t.values()} == {"4", "6"}
    assert _overlap(t) and all(t[a]["gpu"] != t[b]["gpu"] for a, b in _overlap(t))


@pytest.mark.parametrize(("visible", "gpus", "jobs", "message"), [
    ("0,1", 2, 2, "--num_gpus ignores CUDA_VISIBLE_DEVICES"),
    ("0,1", 1, 3, "--jobs 3 needs one GPU per run and 2 are visible"),
    ("", 1, 0, "--jobs 0: give 1 or more"),
])
def test_jobs_that_would_share_devices_are_refused_before_anything_runs(tmp_path, monkeypatch, visible, gpus, jobs,
                                                                        message):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    out = _sweep(tmp_path, gpus=gpus, sleep=0)
    with pytest.raises(ConfigError, match=message):
        run_sweep(out, jobs=jobs)
    assert not _times(out) and not list((out / "logs").glob("*.log"))


@pytest.mark.parametrize(("gpus", "threads"), [(1, "8"), (2, "4")])
def test_each_process_gets_its_share_of_the_cores(tmp_path, monkeypatch, gpus, threads):
    """16 cores, 2 runs at once: 8 threads per one-process run, 4 per rank of a 2-rank CPU run."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("scaling.sweep.run.gpu_ids", lambda: [])
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    out = _sweep(tmp_path, gpus=gpus, sleep=0)
    run_sweep(out, jobs=2, report=lambda *a: None, started=None)
    assert {v["omp"] for v in _times(out).values()} == {threads}
