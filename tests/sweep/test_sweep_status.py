"""`scaling sweep status`: each state from a run's files and its job as Slurm reports it (pure logic, no Slurm),
the first meaningful error line of real job logs, squeue/sacct parsing, and O(1) scheduler calls per sweep at
1,024 GPUs on 128 nodes. The same states under a real Slurm: tests/sweep/test_sweep_slurm.py."""

from __future__ import annotations

import json

import pytest
import yaml
from sweep_helpers import REPO, FakeSlurm

from scaling.sweep.cli import main
from scaling.sweep.slurm import Job, parse_sacct, parse_squeue
from scaling.sweep.spec import load_spec
from scaling.sweep.status import RunFacts, classify, first_error, sweep_status
from scaling.sweep.write import read_runs, write_sweep

PREEMPTED = {"preempted": True, "steps": 7, "samples_seen": 224, "loss": 0.9}
DONE = {"preempted": False, "steps": 40, "samples_seen": 1280, "loss": 0.5}


def _facts(summary=None, job_id="12", exit_status=None, parent="mae1-x", started=True, log=None) -> RunFacts:
    return RunFacts("mae_wsp-x", parent, summary, job_id, exit_status, log, started)


@pytest.mark.parametrize(("facts", "job", "state", "words"), [
    (_facts(DONE), None, "done", ["1280 samples", "loss 0.5"]),
    (_facts(DONE, exit_status=1), Job("12", "n", "FAILED"), "done", []),  # a finished run is done, whatever came after
    (_facts(started=False), Job("12", "n", "PENDING", "Priority"), "queued", ["job 12", "Priority"]),
    (_facts(started=False), Job("12", "n", "PENDING", "Dependency"), "queued", ["waits for stage 1 mae1-x"]),
    (_facts(started=False), Job("12", "n", "PENDING", "DependencyNeverSatisfied"), "blocked",
     ["mae1-x", "never start", "submit.sh"]),
    (_facts(), Job("12", "n", "RUNNING", "None"), "running", ["job 12"]),
    (_facts(exit_status=1), Job("12", "n", "RUNNING", "None"), "running", []),  # a resubmitted job runs: not failed
    (_facts(PREEMPTED, exit_status=0), Job("12", "n", "PENDING", "BeginTime"), "requeued", ["step 7", "2-3 minutes"]),
    (_facts(PREEMPTED), Job("12", "n", "REQUEUE_HOLD"), "requeued", []),
    (_facts(PREEMPTED), Job("12", "n", "PENDING", "None", restarts=1), "requeued", []),  # before BeginTime is set
    (_facts(PREEMPTED), Job("12", "n", "CANCELLED"), "cancelled", ["step 7", "submit.sh"]),
    (_facts(PREEMPTED, job_id="", started=True), None, "cancelled", ["not requeued"]),  # a cut run, gone
    (_facts(), Job("12", "n", "TIMEOUT"), "failed", ["time limit", "signal_seconds"]),
    (_facts(), Job("12", "n", "OUT_OF_MEMORY", exit_code="0:125"), "failed", ["out_of_memory"]),
    (_facts(exit_status=2), None, "failed", ["exit 2"]),
    (_facts(job_id="", started=False), None, "new", []),
    (_facts(job_id="", started=True), None, "running", []),  # a local run under way
])
def test_states(facts, job, state, words):
    got, detail = classify(facts, job)
    assert got == state, detail
    for w in words:
        assert w in detail, detail


def test_the_log_tells_cancelled_and_time_limit_when_slurm_forgot_the_job(tmp_path):
    log = tmp_path / "run-12.out"
    log.write_text("mae vit: step 3/40 (8%), loss 1.2\nslurmstepd: error: *** JOB 12 ON vm CANCELLED AT "
                   "2026-12-07T14:40:00 ***\n")
    assert classify(_facts(PREEMPTED, log=log), None)[0] == "cancelled"
    log.write_text("slurmstepd: error: *** JOB 12 ON vm CANCELLED AT 2026-12-07T14:40:00 DUE TO TIME LIMIT ***\n")
    assert classify(_facts(log=log), None)[0] == "failed"
    # another job's line (an earlier job of this run whose log was appended to) says nothing about job 12
    log.write_text("slurmstepd: error: *** JOB 11 ON vm CANCELLED AT 2026-12-07T14:40:00 ***\n")
    assert classify(_facts(log=log), None)[0] == "failed"  # ended, unknown to Slurm, not finished


# Logs as real jobs wrote them (the interpreter without deepspeed; a config error under the launcher).
NO_DEEPSPEED = """/usr/bin/python3: Error while finding module specification for 'deepspeed.launcher.launch' \
(ModuleNotFoundError: No module named 'deepspeed')
srun: error: vm: task 0: Exited with exit code 1
srun: launch/slurm: _step_signal: Terminating StepId=4.0
"""
TRACEBACK = """[2026-12-07 14:02:11,020] [INFO] [launch.py:256:main] process 812 spawned with command: [...]
Traceback (most recent call last):
  File "/work/scaling/train.py", line 104, in main
    import deepspeed
ModuleNotFoundError: No module named 'deepspeed'
[2026-12-07 14:02:13,101] [ERROR] [launch.py:325:sigkill_handler] ['python', '-u', '-m', 'scaling.train'] exits \
with return code = 1
srun: error: vm: task 0: Exited with exit code 1
"""
CONFIG = """mae vit_micro_patch4: step 0/4 (0%)
scaling train: config error: data.train: no shards match '/data/x/{000..009}.tar'; check the path
srun: error: vm: task 0: Exited with exit code 2
"""


@pytest.mark.parametrize(("text", "line"), [
    (NO_DEEPSPEED, "/usr/bin/python3: Error while finding module specification for 'deepspeed.launcher.launch' "
                   "(ModuleNotFoundError: No module named 'deepspeed')"),
    (TRACEBACK, "ModuleNotFoundError: No module named 'deepspeed'"),
    (CONFIG, "scaling train: config error: data.train: no shards match '/data/x/{000..009}.tar'; check the path"),
    ("srun: error: vm: task 0: Exited with exit code 9\n", "srun: error: vm: task 0: Exited with exit code 9"),
])
def test_first_meaningful_error_line(tmp_path, text, line):
    log = tmp_path / "x.out"
    log.write_text(text)
    assert first_error(log) == line


def test_squeue_and_sacct_answers_are_parsed():
    # as squeue -O "JobID:|,Name:|,State:|,Reason:|,RestartCnt:" prints them (22.05)
    jobs = parse_squeue("17|t-mae1-a|PENDING|BeginTime|1|\n18|t-wsp-b|RUNNING|None|0|\nnoise\n")
    assert jobs["17"] == Job("17", "t-mae1-a", "PENDING", "BeginTime", restarts=1) and jobs["18"].alive
    acct = parse_sacct("17|t-mae1-a|CANCELLED by 0|0:15\n17|t-mae1-a|COMPLETED|0:0\n19|t-x|FAILED|2:0\n")
    assert acct["17"].state == "COMPLETED" and acct["19"] == Job("19", "t-x", "FAILED", "", "2:0")


def test_status_at_1024_gpus_asks_slurm_once_per_sweep(tmp_path, capsys):
    """paper_grid at 1,024 GPUs (128 nodes of 8): 50 runs, one squeue and one sacct for the whole sweep, and
    each run's state as the scheduler and the files say."""
    grid = yaml.safe_load((REPO / "jobs" / "sweeps" / "paper_grid.yaml").read_text())
    grid.update(gpus=1024, overrides=[*grid["overrides"], "batch.micro_batch=4"])  # 4096 = 4 x 1024 ranks
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(grid))
    spec = load_spec(tmp_path / "grid.yaml")
    out = tmp_path / "grid"
    write_sweep(spec, out)
    rows = read_runs(out)
    slurm = FakeSlurm(spec.name)
    for i, r in enumerate(rows):
        (out / "logs" / f"{r['run']}.jobs").write_text(f"{1000 + i}\n")
    slurm.add("1000", f"{spec.name}-{rows[0]['run']}", "RUNNING", "None")
    slurm.add("1001", f"{spec.name}-{rows[1]['run']}", "PENDING", "Dependency")
    (out / rows[2]["run_dir"]).mkdir(parents=True)
    (out / rows[2]["run_dir"] / "summary.json").write_text(json.dumps(DONE))
    status = sweep_status(out, slurm)
    assert slurm.calls == ["squeue", "sacct"]  # not per run, not per rank
    assert [s for _, s, _ in status[:3]] == ["running", "queued", "done"]
    assert {s for _, s, _ in status[3:]} == {"failed"}  # recorded jobs Slurm has forgotten, with no trace: failed
    assert len(rows) == 50 and "#SBATCH --nodes=128" in (out / "jobs" / f"{rows[0]['run']}.sh").read_text()


def test_status_command_prints_one_line_per_run_and_the_counts(tmp_path, capsys):
    spec = load_spec(REPO / "jobs" / "sweeps" / "tiny_cpu.yaml")
    out = tmp_path / "tiny"
    write_sweep(spec, out)
    capsys.readouterr()
    assert main(["status", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(read_runs(out)) + 1 and lines[-1] == "21 new"
