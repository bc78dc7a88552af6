"""The text of each run's job script and of submit.sh, for the slurm and local schedulers.

A slurm job is jobs/slurm_train.sh itself (the template) with the run's #SBATCH lines and its config: the
batch shell must be the template's, since SLURM's B:USR1 goes to the batch shell. A local job runs the
config through jobs/single_node.sh (the DeepSpeed launcher), or plain `scaling.train` for one process.
Jobs run in the folder `scaling sweep` was run in, so relative paths in the spec mean what they meant there
(the templates come from the installed package: scaling.resources).
"""

from __future__ import annotations

import shlex
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
    s = spec.slurm
    nodes = max(1, -(-spec.gpus // s.gpus_per_node))
    per_node = min(spec.gpus, s.gpus_per_node)
    lines = ["#!/usr/bin/env bash", f"# {run.name}: {run.recipe} {run.model}, {run.samples} samples, seed {run.seed} "
             f"(sweep {spec.name}; made by `scaling sweep`, from jobs/slurm_train.sh)",
             f"#SBATCH --job-name={spec.name}-{run.name}", f"#SBATCH --nodes={nodes}", "#SBATCH --ntasks-per-node=1",
             f"#SBATCH --gpus-per-node={per_node}", f"#SBATCH --time={s.time}", "#SBATCH --signal=B:USR1@120",
             "#SBATCH --requeue", "#SBATCH --open-mode=append", f"#SBATCH --output={out / 'logs' / run.name}-%j.out"]
    lines += [f"#SBATCH --partition={s.partition}"] * bool(s.partition)
    lines += [f"#SBATCH --account={s.account}"] * bool(s.account)
    lines += [f"#SBATCH --cpus-per-task={s.cpus_per_task}"] * bool(s.cpus_per_task)
    lines += [f"cd {shlex.quote(str(Path.cwd()))}", f"export GPUS_PER_NODE={per_node}",
              f"export SCALING_EXIT_FILE={shlex.quote(str(out / 'logs' / (run.name + '.exit')))}",
              f"set -- {shlex.quote(str(out / 'configs' / (run.name + '.yaml')))}"]
    return "\n".join(lines) + "\n" + _template_body()


def local_job(spec: SweepSpec, run: Run, out: Path) -> str:
    config = shlex.quote(str(out / "configs" / (run.name + ".yaml")))
    if spec.gpus == 1:
        command = f'exec "${{PYTHON:-python}}" -m scaling.train --config {config}'
    else:
        command = f"exec bash {shlex.quote(str(SINGLE_NODE))} {spec.gpus} {config}"
    return "\n".join([
        "#!/usr/bin/env bash",
        f"# {run.name}: {run.recipe} {run.model}, {run.samples} samples, seed {run.seed} (sweep {spec.name}; made by "
        "`scaling sweep`; `scaling sweep run DIR` runs it and skips it once done)",
        "set -euo pipefail", f"cd {shlex.quote(str(Path.cwd()))}", command]) + "\n"


def submit_script(spec: SweepSpec, runs: list[Run]) -> str:
    """Submits (slurm) or runs (local) every run not yet done, each stage-1 run before its dependants."""
    head = ["#!/usr/bin/env bash",
            f"# Sweep {spec.name}: {len(runs)} runs, scheduler {spec.scheduler}. Made by `scaling sweep`; runs whose",
            "# summary.json says they finished are skipped, so it is safe to run again.",
            "set -euo pipefail", 'cd "$(dirname "$0")"',
            "done_run() { [[ -f runs/$1/summary.json ]] && grep -q '\"preempted\": false' \"runs/$1/summary.json\"; }"]
    body: list[str] = []
    index = {r.name: i for i, r in enumerate(runs)}
    for i, r in enumerate(runs):
        job = shlex.quote(f"jobs/{r.name}.sh")
        if spec.scheduler == "local":
            body.append(f"done_run {r.name} || bash {job}")
            continue
        body.append(f'job_{i}=""')
        submit = "sbatch --parsable"
        if r.depends_on:
            parent = index[r.depends_on]
            submit += f' ${{job_{parent}:+--dependency=afterok:"$job_{parent}"}}'
        body.append(f"if ! done_run {r.name}; then job_{i}=$({submit} {job}); job_{i}=${{job_{i}%%;*}}; "
                    f'echo "{r.name}: job $job_{i}"; fi')
    return "\n".join(head + body) + "\n"
