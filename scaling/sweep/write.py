"""Write a sweep folder: sweep.yaml (the spec as resolved), configs/, jobs/, sweep.csv, submit.sh.

Idempotent: a file whose content would not change is not touched (its mtime stays), so re-running on the
same spec changes nothing. A folder that holds something else, or another sweep, is refused unless --force;
--force rewrites the sweep's own files and never deletes runs/.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import yaml

from scaling.config import ConfigError, to_dict
from scaling.sweep.grid import Run, expand
from scaling.sweep.jobs import local_job, slurm_job, submit_script
from scaling.sweep.spec import SweepSpec

COLUMNS = ["run", "run_dir", "stage", "model", "params", "samples", "recipe", "seed", "flops", "total_flops",
           "gpu_hours", "depends_on"]
SPEC_FILE = "sweep.yaml"


def _write(path: Path, text: str, mode: int = 0o644) -> bool:
    """Write `text` unless the file already holds it; True when something changed."""
    if path.is_file() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    os.replace(tmp, path)
    return True


def read_spec(out: Path) -> dict:
    """The sweep folder's sweep.yaml as written (a dict; {} when there is none)."""
    path = out / SPEC_FILE
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def spec_text(spec: SweepSpec) -> str:
    return "# The spec this sweep was made from (scaling sweep), resolved.\n" + yaml.safe_dump(to_dict(spec),
                                                                                               sort_keys=False)


def check_target(out: Path, spec: SweepSpec, force: bool) -> None:
    if not out.exists() or not any(out.iterdir()) or force:
        return
    existing = out / SPEC_FILE
    if not existing.is_file():
        raise ConfigError(f"{out} is not empty and holds no sweep; choose an empty or new --out folder, or pass "
                          "--force to write the sweep into it anyway.")
    if existing.read_text() != spec_text(spec):
        raise ConfigError(f"{out} holds a different sweep (its {SPEC_FILE} differs from this spec); use another "
                          "--out folder, or --force to rewrite its configs and jobs (runs/ is kept).")


def sweep_csv(runs: list[Run], out: Path) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in runs:
        writer.writerow(r.row(out))
    return buf.getvalue()


def write_sweep(spec: SweepSpec, out: Path, force: bool = False) -> tuple[list[Run], int]:
    """Write every file of the sweep; returns (runs, number of files changed). Nothing is written when the
    spec cannot be expanded (every run is resolved first)."""
    out = out.resolve()
    check_target(out, spec, force)
    runs = expand(spec, out)
    from scaling.config import dump_yaml

    changed = 0
    for r in runs:
        tmp = out / "configs" / f".{r.name}.yaml.new"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        dump_yaml(r.config, tmp)
        text = tmp.read_text()
        tmp.unlink()
        changed += _write(out / "configs" / f"{r.name}.yaml", text)
        job = slurm_job(spec, r, out) if spec.scheduler == "slurm" else local_job(spec, r, out)
        changed += _write(out / "jobs" / f"{r.name}.sh", job, 0o755)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    changed += _write(out / "sweep.csv", sweep_csv(runs, out))
    changed += _write(out / "submit.sh", submit_script(spec, runs), 0o755)
    changed += _write(out / SPEC_FILE, spec_text(spec))
    return runs, changed


def read_runs(out: Path) -> list[dict[str, str]]:
    path = out / "sweep.csv"
    if not path.is_file():
        raise ConfigError(f"{out} holds no sweep.csv; make the sweep first: scaling sweep SPEC.yaml --out {out}")
    with path.open() as f:
        return list(csv.DictReader(f))
