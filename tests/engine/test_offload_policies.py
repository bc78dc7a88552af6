"""Every DeepSpeed policy in ds_configs/ starts: deepspeed.initialize and one optimizer step of a real tiny run.

The offload policies need DeepSpeedCPUAdam (DeepSpeed refuses a client torch optimizer with offload) and, for
NVMe, DeepSpeed's async I/O op, which builds only where libaio is installed. Where it is not, the run must stop
before training with an error naming libaio and how to get it: that is checked, then the test is skipped with
the reason (so a machine without libaio never passes the NVMe policy silently).
"""

from __future__ import annotations

import json
import time

import pytest
from train_helpers import run_train

from scaling.config import ConfigError
from scaling.engine.ds_config import build_ds_config, check_offload, load_policy
from scaling.resources import ds_config_names

POLICIES = ds_config_names()
ONE_STEP = ["data.train=synthetic", "batch.micro_batch=16", "batch.grad_accum=2", "total_samples=32"]


def _aio_builds() -> bool:
    from deepspeed.ops.op_builder import AsyncIOBuilder

    return AsyncIOBuilder().is_compatible(verbose=False)


@pytest.mark.slow
@pytest.mark.parametrize("policy", POLICIES)
def test_every_policy_initializes_and_steps(tmp_path, tiny_wsp, policy):
    nvme = tmp_path / "nvme"
    nvme.mkdir()
    run = tmp_path / "run"
    args = [f"run_dir={run}", *ONE_STEP, f"deepspeed.config={policy}", f"deepspeed.nvme_path={nvme}"]
    uses_nvme = "nvme" in json.dumps(load_policy(policy))
    if uses_nvme and not _aio_builds():
        proc = run_train(tiny_wsp, args, check=False)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
        assert "libaio" in proc.stderr and "apt-get install libaio-dev" in proc.stderr
        assert not run.exists()  # stopped before anything was written
        pytest.skip(f"{policy}: DeepSpeed's async I/O op cannot build here (libaio missing: apt-get install "
                    "libaio-dev); checked that the run stops before training and says so")
    t0 = time.perf_counter()
    run_train(tiny_wsp, args)
    print(f"{policy}: started and stepped in {time.perf_counter() - t0:.0f} s")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 1 and summary["loss"] == summary["loss"]  # finite (NaN != NaN)
    ds = json.loads((run / "ds_config.json").read_text())
    for section in ("offload_optimizer", "offload_param"):
        if ds["zero_optimization"].get(section, {}).get("device") == "nvme":
            assert ds["zero_optimization"][section]["nvme_path"] == str(nvme)


def _cfg(policy: str, nvme_path: str = "") -> dict:
    return build_ds_config(load_policy(policy), micro_batch=4, grad_accum=1, world_size=1, precision="bf16",
                           clip_grad=1.0, width=64, nvme_path=nvme_path)


def test_offloaded_optimizer_needs_deepspeeds_cpu_adam():
    assert check_offload(_cfg("zero3_bf16.json"), "torch", "zero3_bf16.json") is False
    assert check_offload(_cfg("zero3_offload_optimizer.json"), "auto", "p") is True
    with pytest.raises(ConfigError, match="only DeepSpeedCPUAdam .* optim.impl=auto"):
        check_offload(_cfg("zero3_offload_optimizer.json"), "torch", "zero3_offload_optimizer.json")


def test_nvme_policy_names_what_is_missing(tmp_path):
    policy = "zero3_offload_param_nvme.json"
    if not _aio_builds():
        with pytest.raises(ConfigError, match="libaio.*apt-get install libaio-dev"):
            check_offload(_cfg(policy, str(tmp_path)), "auto", policy)
        return
    assert check_offload(_cfg(policy, str(tmp_path)), "auto", policy) is True
    with pytest.raises(ConfigError, match="deepspeed.nvme_path="):
        check_offload(_cfg(policy, str(tmp_path / "absent")), "auto", policy)
