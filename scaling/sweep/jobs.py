"""The text of each run's job script and of submit.sh, for the slurm and local schedulers.

A slurm job is jobs/slurm_train.sh itself (the template) with the run's #SBATCH lines and its config: the
batch shell must be the template's, since SLURM's B:USR1 goes to the batch shell. A local job runs the
config through jobs/single_node.sh (the DeepSpeed launcher), or plain `scaling.train` for one process.
Jobs run in the folder `scaling sweep` was run in, so relative paths in the spec mean what they meant there
(the templates come from the installed package: scaling.resources).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from scaling.resources import job_script
from scaling.sweep.grid import Run
from scaling.sweep.spec import SweepSpec

TEMPLATE = job_script("slurm_train.sh")
SINGLE_NODE = job_script("single_node.sh")


def _template_body() -> str:
    """slurm_train.sh from `set -euo pipefail` on (its own header and #SBATCH lines are replaced)."""
    text = TEMPLATE.read_text()
    return text[text.index("set -euo pipefail\n"):]


def slurm_job(spec: SweepSpec, run: Run, out: Path) -> str:
    """The run's batch script: #SBATCH lines from the spec's slurm block, the venv's interpreter pinned (a
    submit from a shell without the venv still runs the right Python), then jobs/slurm_train.sh's body."""
    s = spec.slurm
    nodes, per_node = s.layout(spec.gpus)
    cpus = s.cpus_per_task or per_node * (run.config.data.workers + 1)  # a core per rank and per data worker
    lines = ["#!/usr/bin/env bash", f"# {run.name}: {run.recipe} {run.model}, {run.samples} samples, seed {run.seed} "
             f"(sweep {spec.name}; made by `scaling sweep`, from jobs/slurm_train.sh)",
             f"#SBATCH --job-name={job_name(spec.name, run.name)}", f"#SBATCH --nodes={nodes}",
             "#SBATCH --ntasks-per-node=1"]
    lines += [f"#SBATCH --gpus-per-node={per_node}"] * bool(s.gpus_per_node)
    lines += [f"#SBATCH --cpus-per-task={cpus}", f"#SBATCH --time={s.time}",
              f"#SBATCH --signal=B:USR1@{s.signal_seconds}", "#SBATCH --requeue", "#SBATCH --open-mode=append",
              f"#SBATCH --output={out / 'logs' / run.name}-%j.out"]
    lines += [f"#SBATCH --partition={s.partition}"] * bool(s.partition)
    lines += [f"#SBATCH --account={s.account}"] * bool(s.account)
    lines += [f"cd {shlex.quote(str(Path.cwd()))}", f"export GPUS_PER_NODE={per_node}  # ranks per node (CPU ranks on "
              "CPU-only nodes)", f"export PYTHON={shlex.quote(sys.executable)}  # the environment of `scaling sweep`",
              f"export SCALING_EXIT_FILE={shlex.quote(str(out / 'logs' / (run.name + '.exit')))}",
              f"set -- {shlex.quote(str(out / 'configs' / (run.name + '.yaml')))}"]
    return "\n".join(lines) + "\n" + _template_body()


def job_name(sweep: str, run_name: str) -> str:
    """A run's Slurm job name: the sweep's name, then the run's (submit finds unrecorded jobs by it)."""
    return f"{sweep}-{run_name}"


def local_job(spec: SweepSpec, run: Run, out: Path) -> str:
    config = shlex.quote(str(out / "configs" / (run.name + ".yaml")))
    if spec.gpus == 1:
        command = f'exec "$PYTHON" -m scaling.train --config {config}'
    else:
        command = f"exec bash {shlex.quote(str(SINGLE_NODE))} {spec.gpus} {config}"
    return "\n".join([
        "#!/usr/bin/env bash",
        f"# {run.name}: {run.recipe} {run.model}, {run.samples} samples, seed {run.seed} (sweep {spec.name}; made by "
        "`scaling sweep`; `scaling sweep run DIR` runs it and skips it once done)",
        "set -euo pipefail", f"cd {shlex.quote(str(Path.cwd()))}",
        f'export PYTHON="${{PYTHON:-{sys.executable}}}"  # the environment of `scaling sweep`', command]) + "\n"


def submit_script(spec: SweepSpec, runs: list[Run]) -> str:
    """submit.sh: `scaling sweep submit` (slurm) or `scaling sweep run` (local) on this folder, with the
    interpreter of `scaling sweep` (a login shell without the venv runs it just the same)."""
    command = "submit" if spec.scheduler == "slurm" else "run"
    what = ("sbatches every run that is not done and has no job pending, running or requeued (job ids in "
            "logs/RUN.jobs), each stage 1 before its dependants" if command == "submit" else
            "runs here every run not yet done, each stage 1 before its dependants")
    return "\n".join([
        "#!/usr/bin/env bash",
        f"# Sweep {spec.name}: {len(runs)} runs, scheduler {spec.scheduler}. Made by `scaling sweep`; {what}.",
        "# Safe to run again at any time (after a failure, a cancel or a part-way refusal): it completes the sweep.",
        "set -euo pipefail",
        f'exec {shlex.quote(sys.executable)} -m scaling.sweep.cli {command} "$(dirname "$0")" "$@"']) + "\n"
