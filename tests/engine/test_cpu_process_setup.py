"""CPU process set-up: no JIT build of DeepSpeed's shared-memory comm op (30 s on 2 cores before a fresh clone's
first step; training never uses it), and ranks on one machine split its cores instead of each taking all."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch
from train_helpers import REPO

PROBE = """
import json, torch
import deepspeed.comm.comm as comm
from scaling.engine import distributed
info = distributed.setup()
x = torch.ones(3)
distributed.all_reduce_sum([x.sum()], info.device)
print(json.dumps({"shm_op": comm.cdb.shm_comm_op is not None, "threads": torch.get_num_threads()}))
"""


def _probe(tmp_path, **env) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_SIZE",
                                                             "OMP_NUM_THREADS", "MASTER_PORT")}
    run = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={**base, "TORCH_EXTENSIONS_DIR": str(tmp_path / "ext"), **env})
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_no_shm_comm_op_is_built(tmp_path):
    got = _probe(tmp_path)
    assert got["shm_op"] is False
    assert not (tmp_path / "ext").exists() or not any((tmp_path / "ext").iterdir())


def test_two_local_ranks_split_the_cores_and_a_set_value_is_kept(tmp_path):
    cores = min(torch.get_num_threads(), len(os.sched_getaffinity(0)))
    assert _probe(tmp_path, LOCAL_SIZE="2")["threads"] == max(1, cores // 2)
    assert _probe(tmp_path, LOCAL_SIZE="2", OMP_NUM_THREADS="2")["threads"] == 2  # halving would give 1 on 2 cores
    assert _probe(tmp_path)["threads"] == torch.get_num_threads()  # one process keeps torch's default
