"""A tiny slurm sweep under a real one-node Slurm 22.05 (tools/slurm_one_node.sh): submit.sh refused part-way then
run again, stage 1 cancelled, `sweep status` at each state, submit.sh once more completing the sweep with no duplicate
and no orphan job, a preempted run requeued, a finished run submitted again and left byte-identical, and
`results collect` over the result. 3 runs of 2 CPU ranks; each job takes the node's 2 CPUs, so they run one at a time.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from sweep_helpers import REPO, write_spec

from scaling.laws.results import collect
from scaling.sweep.spec import load_spec
from scaling.sweep.status import recorded_jobs, sweep_status
from scaling.sweep.write import read_runs, write_sweep

sys.path.insert(0, str(REPO / "tests" / "jobs"))
from slurm_real import (  # noqa: E402
    job,
    job_env,
    metrics,
    release_requeued,
    slurm_fixture,  # noqa: F401 (the `slurm` fixture)
    tree_state,
    wait_ended,
    wait_for,
)

pytestmark = pytest.mark.slow

# sbatch that refuses the job named in REFUSE (as a QOS limit would) and passes every other call to the real one
REFUSING_SBATCH = """#!/usr/bin/env bash
echo "$*" >> "$SBATCH_LOG"
[[ -n ${REFUSE:-} && $* == *"$REFUSE"* ]] && { echo "sbatch: error: Batch job submission failed: Job violates \
accounting/QOS policy (job submit limit, user's size and/or time limits)" >&2; exit 1; }
exec /usr/bin/sbatch "$@"
"""


def _submit(out: Path, tmp: Path, refuse: str = "") -> subprocess.CompletedProcess:
    env = job_env(PATH=f"{tmp / 'bin'}:{Path(sys.executable).parent}:/usr/bin:/bin", SBATCH_LOG=str(tmp / "sbatch.log"),
                  REFUSE=refuse)
    env.pop("MASTER_PORT")  # each job takes 29500 + its id
    return subprocess.run(["bash", str(out / "submit.sh")], env=env, capture_output=True, text=True, timeout=120)


def _status(out: Path) -> dict[str, tuple[str, str]]:
    return {name: (state, detail) for name, state, detail in sweep_status(out)}


def _sweep_jobs(prefix: str) -> list[tuple[str, str, str]]:
    """(id, name, state) of this sweep's jobs that Slurm will still run."""
    text = subprocess.run(["squeue", "--me", "-h", "--format=%i|%j|%T"], capture_output=True, text=True).stdout
    return [tuple(ln.split("|")) for ln in text.splitlines() if ln.split("|")[1].startswith(prefix)]


def test_cancelled_stage1_resubmitted_preempted_run_and_a_finished_run_again(slurm, tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "sbatch").write_text(REFUSING_SBATCH)
    (tmp_path / "bin" / "sbatch").chmod(0o755)
    spec = write_spec(tmp_path / "spec.yaml", name="ts", scheduler="slurm", gpus=2, models=["vit_nano_patch4"],
                      samples=[960], stage1_samples=64, slurm={"gpus_per_node": 2, "cpus_per_task": 2,
                                                               "time": "00:20:00"},
                      overrides=["data.train=synthetic", "batch.micro_batch=16", "batch.grad_accum=1",
                                 "deepspeed.precision=fp32", "log_every=1"])
    out = tmp_path / "sweep"
    write_sweep(load_spec(spec), out)
    stage1, mae_wsp, wsp = (r["run"] for r in read_runs(out))
    assert list(_status(out).values()) == [("new", "")] * 3

    # 1. sbatch refuses the third job: two are submitted and recorded, the error says what is left
    first = _submit(out, tmp_path, refuse=f"jobs/{wsp}.sh")
    assert first.returncode == 1 and "2 runs submitted and recorded before it, 1 left" in first.stderr, first.stderr
    j1, j2 = recorded_jobs(out, stage1)[0], recorded_jobs(out, mae_wsp)[0]
    status = _status(out)
    assert status[mae_wsp][0] == "queued" and f"waits for stage 1 {stage1}" in status[mae_wsp][1], status
    assert status[stage1][0] in ("queued", "running") and status[wsp] == ("new", "")

    # 2. stage 1 is cancelled: it says so; its dependant would wait forever and says that too
    subprocess.run(["scancel", j1], check=True)
    status = wait_for(lambda: (s := _status(out))[mae_wsp][0] == "blocked" and s, 120, "mae_wsp never blocked")
    assert status[stage1][0] == "cancelled" and f"job {j1} cancelled" in status[stage1][1], status
    assert "never start" in status[mae_wsp][1] and status[wsp][0] == "new"

    # 3. submit.sh again: stage 1 and its dependant submitted again (the orphan cancelled), wsp for the first time
    second = _submit(out, tmp_path)
    assert second.returncode == 0, second.stderr
    assert f"{mae_wsp}: cancelled job {j2} (its stage 1 was submitted again)" in second.stdout, second.stdout
    j3, j4, j5 = recorded_jobs(out, stage1)[1], recorded_jobs(out, mae_wsp)[1], recorded_jobs(out, wsp)[0]
    assert job(j2)["JobState"] == "CANCELLED"
    assert sorted(j for j, _, _ in _sweep_jobs("ts-")) == sorted([j3, j4, j5])  # one job per run, no orphan

    # 4. a third submit while they queue or run duplicates nothing
    calls = (tmp_path / "sbatch.log").read_text().count("\n")
    third = _submit(out, tmp_path)
    assert third.returncode == 0 and "0 submitted, 3 already queued or running" in third.stdout, third.stdout
    assert (tmp_path / "sbatch.log").read_text().count("\n") == calls

    # 5. the jobs run one at a time (each takes both CPUs): status follows them; wsp is preempted (USR1 to its batch
    # shell) once it trains, shows requeued, and is released at once
    run = out / "runs" / wsp
    seen: dict[str, set[str]] = {n: set() for n in (stage1, mae_wsp, wsp)}
    deadline, preempted = time.monotonic() + 900, False
    while True:
        status = _status(out)
        for name, (state, _) in status.items():
            seen[name].add(state)
        if all(state == "done" for state, _ in status.values()):
            break
        assert time.monotonic() < deadline and not {"failed", "blocked", "cancelled"} & set().union(*seen.values()), \
            status
        if not preempted and len(metrics(run)) >= 3:
            subprocess.run(["scancel", "--signal=USR1", "--batch", j5], check=True)
            wait_for(lambda: _status(out)[wsp][0] == "requeued", 120, f"{wsp} never requeued: {_status(out)[wsp]}")
            seen[wsp].add("requeued")
            release_requeued(j5)
            preempted = True
        time.sleep(0.5)
    assert {"queued", "running"} <= seen[mae_wsp] and {"queued", "running", "requeued"} <= seen[wsp], seen
    # summary.json is written before the ranks tear down: the last job ends a few seconds after its run is done
    wait_for(lambda: not _sweep_jobs("ts-"), 120, f"jobs left in the queue: {_sweep_jobs('ts-')}")
    assert [m["step"] for m in metrics(run)] == list(range(1, 31))  # one line per step through the requeue
    assert {j: wait_ended(j)["JobState"] for j in (j3, j4, j5)} == dict.fromkeys((j3, j4, j5), "COMPLETED")

    # 6. submit.sh on a finished sweep submits nothing; a finished run's job submitted by hand changes nothing
    again = _submit(out, tmp_path)
    assert again.returncode == 0 and "0 submitted, 0 already queued or running, 3 done" in again.stdout
    assert (tmp_path / "sbatch.log").read_text().count("\n") == calls
    before = tree_state(out / "runs")
    proc = subprocess.run(["sbatch", "--parsable", f"jobs/{stage1}.sh"], cwd=out, env=job_env(), capture_output=True,
                          text=True, check=True)
    rerun = proc.stdout.strip()
    assert wait_ended(rerun)["JobState"] == "COMPLETED"
    assert "already complete" in (out / "logs" / f"{stage1}-{rerun}.out").read_text()
    assert tree_state(out / "runs") == before

    # 7. results collect takes the three finished runs
    rows = collect([out])
    assert {r["run"] for r in rows} == {stage1, mae_wsp, wsp}
