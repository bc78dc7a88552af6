"""`submit.sh` (scaling sweep submit) bookkeeping, against an in-memory scheduler (sweep_helpers.FakeSlurm): a
second submit duplicates nothing; a resubmitted stage 1 takes its dependants along (no orphans); a part-way
refusal then a retry completes the sweep without duplicates; a job whose id was never recorded is adopted; O(1)
scheduler calls per run at 1,024 GPUs. The same under a real Slurm: tests/sweep/test_sweep_slurm.py."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from sweep_helpers import FakeSlurm, write_spec

from scaling.config import ConfigError
from scaling.sweep.slurm import SchedulerError
from scaling.sweep.spec import load_spec
from scaling.sweep.status import recorded_jobs, sweep_status
from scaling.sweep.submit import _lock, submit_sweep
from scaling.sweep.write import read_runs, write_sweep


def _sweep(tmp_path, **changes):
    out = tmp_path / "sweep"
    spec = {"scheduler": "slurm", "gpus": 2, "models": ["vit_nano_patch4"], "samples": [256, 512], **changes}
    write_sweep(load_spec(write_spec(tmp_path / "spec.yaml", **spec)), out)
    names = [r["run"] for r in read_runs(out)]  # stage 1, then (mae_wsp, wsp) per budget
    return out, names


def _quiet(*_):
    pass


def test_a_second_submit_keeps_every_live_job(tmp_path):
    out, names = _sweep(tmp_path)
    slurm = FakeSlurm("t")
    first = submit_sweep(out, slurm, say=_quiet)
    assert list(first.submitted) == names and slurm.calls == ["squeue"] + ["sbatch"] * 5
    stage1 = first.submitted[names[0]]
    assert [slurm.after[first.submitted[n]] for n in names] == ["", stage1, "", stage1, ""]
    slurm.start(stage1)
    slurm.calls.clear()
    second = submit_sweep(out, slurm, say=_quiet)
    assert not second.submitted and second.kept == first.submitted and slurm.calls == ["squeue"]
    assert all(recorded_jobs(out, n) == [first.submitted[n]] for n in names)


def test_a_resubmitted_stage1_takes_its_dependants_along(tmp_path):
    out, names = _sweep(tmp_path)
    slurm = FakeSlurm("t")
    first = submit_sweep(out, slurm, say=_quiet)
    slurm.cancel(first.submitted[names[0]])  # the user cancels stage 1: its dependants can never start
    status = {n: s for n, s, _ in sweep_status(out, slurm)}
    assert status == {names[0]: "cancelled", names[1]: "blocked", names[2]: "queued", names[3]: "blocked",
                      names[4]: "queued"}
    said = []
    second = submit_sweep(out, slurm, say=said.append)
    new_stage1 = second.submitted[names[0]]
    assert sorted(second.submitted) == sorted([names[0], names[1], names[3]])
    assert second.cancelled == {n: first.submitted[n] for n in (names[1], names[3])}
    assert all(slurm.after[second.submitted[n]] == new_stage1 for n in (names[1], names[3]))
    assert second.kept == {n: first.submitted[n] for n in (names[2], names[4])}
    alive = slurm.alive()
    assert len(alive) == 5 and len({name for name, _ in alive}) == 5  # one live job per run: no duplicate, no orphan
    assert sum("cancelled job" in line for line in said) == 2
    assert recorded_jobs(out, names[1]) == [first.submitted[names[1]], second.submitted[names[1]]]


def test_a_part_way_refusal_then_a_retry_completes_without_duplicates(tmp_path):
    out, names = _sweep(tmp_path)
    slurm = FakeSlurm("t", refuse=(names[2],))
    with pytest.raises(SchedulerError, match=r"QOS.*2 runs submitted and recorded before it, 3 left.*submit.sh again"):
        submit_sweep(out, slurm, say=_quiet)
    assert [n for n in names if recorded_jobs(out, n)] == names[:2]
    slurm.refuse.clear()
    retry = submit_sweep(out, slurm, say=_quiet)
    assert list(retry.kept) == names[:2] and list(retry.submitted) == names[2:]
    assert slurm.after[retry.submitted[names[3]]] == retry.kept[names[0]]  # the kept stage 1's job
    assert len(slurm.alive()) == 5 == len({n for n, _ in slurm.alive()})


def test_done_runs_are_skipped_and_their_dependants_need_no_dependency(tmp_path):
    out, names = _sweep(tmp_path)
    (out / "runs" / names[0]).mkdir(parents=True)
    (out / "runs" / names[0] / "summary.json").write_text(json.dumps({"preempted": False, "steps": 8}))
    slurm = FakeSlurm("t")
    plan = submit_sweep(out, slurm, say=_quiet)
    assert plan.done == [names[0]] and list(plan.submitted) == names[1:]
    assert not any(slurm.after[j] for j in plan.submitted.values())


def test_a_job_whose_id_was_never_recorded_is_adopted_not_duplicated(tmp_path):
    out, names = _sweep(tmp_path)
    slurm = FakeSlurm("t")
    slurm.add("77", f"t-{names[0]}", "RUNNING", "None")  # sbatch succeeded, then submit.sh died before the record
    plan = submit_sweep(out, slurm, say=_quiet)
    assert plan.kept == {names[0]: "77"} and recorded_jobs(out, names[0]) == ["77"]
    assert slurm.after[plan.submitted[names[1]]] == "77"


def test_one_submit_at_a_time(tmp_path):
    out, _ = _sweep(tmp_path)
    with _lock(out), pytest.raises(ConfigError, match="another submit.sh is running"):
        submit_sweep(out, FakeSlurm("t"), say=_quiet)


def test_submit_at_1024_gpus_makes_one_sbatch_per_run(tmp_path):
    """128 nodes x 8 GPUs per run: the scheduler calls depend on the number of runs only."""
    out, names = _sweep(tmp_path, gpus=1024, overrides=["data.train=synthetic", "batch.micro_batch=1",
                                                        "batch.grad_accum=1"],
                        slurm={"gpus_per_node": 8}, samples=[1024, 2048], stage1_samples=1024)
    slurm = FakeSlurm("t")
    submit_sweep(out, slurm, say=_quiet)
    assert slurm.calls == ["squeue"] + ["sbatch"] * len(names)
    assert "#SBATCH --nodes=128" in (out / "jobs" / f"{names[0]}.sh").read_text()


def test_submit_sh_runs_the_pinned_interpreter_from_any_shell(tmp_path):
    """submit.sh from a login shell without the venv (a PATH with bash and dirname only) still runs the sweep's
    Python: here it gets as far as looking for squeue, which this PATH lacks."""
    out, _ = _sweep(tmp_path)
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("bash", "dirname"):
        (bare / tool).symlink_to(shutil.which(tool))
    proc = subprocess.run([str(bare / "bash"), str(out / "submit.sh")], env={"PATH": str(bare)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "squeue/sbatch not found" in proc.stderr, proc.stdout + proc.stderr
