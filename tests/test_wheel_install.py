"""A normal install runs everything: the wheel (what `pip install .` and `pip install git+URL` build, not -e)
into a fresh venv, then `scaling train --config tiny/mae` and `scaling demo --quick` from a temporary folder.

Slow: pip installs the dependencies into the new venv (from the local indexes pip is configured with; about
3 minutes on the 2-core box), then the quick demo runs (about 2 minutes). The wheel is built from a copy of
the tracked files, so a stale build/ folder in the checkout cannot leak into it.
"""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _tracked_copy(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    for name in files:
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


def _run(cmd: list[str], cwd: Path, env: dict, timeout: int) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_runs_train_and_the_quick_demo_from_another_folder(tmp_path):
    source = _tracked_copy(tmp_path / "src")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # setuptools of this environment builds it (no download of a build environment)
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
          str(tmp_path / "dist"), str(source)], tmp_path, env, 600)
    wheel = next((tmp_path / "dist").glob("maws_scaling-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in ("scaling/configs/tiny/mae.yaml", "scaling/ds_configs/zero3_bf16.json",
                    "scaling/jobs/slurm_train.sh", "scaling/jobs/sweeps/tiny_cpu.yaml",
                    "scaling/assets/photos7/shards.json", "scaling/kernels/attention.py"):
        assert shipped in names

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path, env, 300)
    python, scaling = venv / "bin" / "python", venv / "bin" / "scaling"
    _run([str(python), "-m", "pip", "install", "-q", str(wheel)], tmp_path, env, 1800)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**env, "PATH": f"{venv / 'bin'}:{env.get('PATH', '')}"}
    where = _run([str(python), "-c", "import scaling; print(scaling.__file__)"], work, env, 60).stdout
    assert str(venv) in where  # the installed package, not the checkout

    _run([str(scaling), "train", "--config", "tiny/mae", "run_dir=runs/mae", "total_samples=256"], work, env, 600)
    summary = json.loads((work / "runs" / "mae" / "summary.json").read_text())
    assert summary["samples_seen"] == 256 and summary["stage"] == "mae"
    config = (work / "runs" / "mae" / "config.yaml").read_text()
    assert str(venv) in config  # data.train=bundled:photos7 read from the installed package

    demo = _run([str(scaling), "demo", "--quick", "--out", "demo"], work, env, 1200)
    assert (work / "demo" / "report.md").is_file(), demo.stdout[-3000:]
