"""Small sweep specs for the sweep tests (tiny models, synthetic data)."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
BASE = {"name": "t", "scheduler": "local", "gpu": "h100", "gpus": 1,
        "models": ["vit_nano_patch4", "vit_micro_patch4", "vit_tiny_patch16"],
        "model_overrides": {"vit_tiny_patch16": ["model.img_size=64"]},
        "samples": [256, 512, 1024], "recipes": ["mae_wsp", "wsp"], "stage1_samples": 512, "seeds": [0],
        "configs": {"mae": "configs/tiny/mae.yaml", "wsp": "configs/tiny/wsp.yaml"},
        "overrides": ["data.train=synthetic", "batch.micro_batch=32", "batch.grad_accum=1"]}


def write_spec(path: Path, **changes) -> Path:
    spec = {**BASE, **changes}
    spec = {k: v for k, v in spec.items() if v is not None}
    spec["model_overrides"] = {m: o for m, o in spec.get("model_overrides", {}).items() if m in spec["models"]}
    path.write_text(yaml.safe_dump(spec))
    return path


class FakeSlurm:
    """An in-memory scheduler with scaling.sweep.slurm.Slurm's interface, for the bookkeeping logic (what is
    submitted, kept, cancelled; how many scheduler calls). A cancelled or failed job leaves its pending dependants
    DependencyNeverSatisfied, as Slurm does. The real Slurm runs in tests/sweep/test_sweep_slurm.py."""

    def __init__(self, sweep_name: str, refuse: tuple[str, ...] = ()) -> None:
        from scaling.sweep.slurm import Job

        self.Job, self.prefix, self.refuse = Job, sweep_name, set(refuse)
        self.jobs: dict = {}
        self.after: dict[str, str] = {}
        self.calls: list[str] = []
        self.next_id = 100

    def add(self, job_id: str, name: str, state: str, reason: str = "") -> None:
        self.jobs[job_id] = self.Job(job_id, name, state, reason)

    def queue(self) -> dict:
        self.calls.append("squeue")
        return dict(self.jobs)

    def accounting(self, job_ids: list[str]) -> dict:
        self.calls.append("sacct")
        return {}

    def submit(self, script: Path, cwd: Path, after: str = "") -> str:
        from scaling.sweep.slurm import SchedulerError

        self.calls.append("sbatch")
        if script.stem in self.refuse:
            raise SchedulerError(f"sbatch {script.name}: Batch job submission failed: Job violates accounting/QOS "
                                 "policy (job submit limit, user's size and/or time limits)")
        job_id = str(self.next_id)
        self.next_id += 1
        reason = "Dependency" if after and self.jobs[after].alive else "Priority"
        self.add(job_id, f"{self.prefix}-{script.stem}", "PENDING", reason)
        self.after[job_id] = after
        return job_id

    def start(self, job_id: str) -> None:
        self.add(job_id, self.jobs[job_id].name, "RUNNING", "None")

    def end(self, job_id: str, state: str) -> None:
        """The job ends in `state`; its pending dependants never start unless it COMPLETED."""
        old = self.jobs[job_id]
        self.jobs[job_id] = self.Job(job_id, old.name, state, "")
        for child, parent in self.after.items():
            if parent == job_id and self.jobs[child].state == "PENDING":
                reason = "None" if state == "COMPLETED" else "DependencyNeverSatisfied"
                self.add(child, self.jobs[child].name, "PENDING", reason)

    def cancel(self, job_id: str) -> None:
        self.calls.append("scancel")
        self.end(job_id, "CANCELLED")

    def alive(self) -> list:
        return sorted((j.name, j.id) for j in self.jobs.values() if j.alive)
