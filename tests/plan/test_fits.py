"""A model too big for this host (CPU ranks) or GPU is refused before it is built, in seconds, with scaling plan's
numbers and what fits (scaling/plan/fits.py); force_memory=true skips the check."""

import subprocess
import sys
import time

import psutil
import pytest

from scaling.config import ConfigError
from scaling.engine.config import load_config
from scaling.models.registry import get_spec
from scaling.plan.fits import Budget, check_memory


def _check(overrides, budget, device="cpu", world=1, num_classes=0):
    cfg = load_config("tiny/mae", overrides)
    spec = get_spec(cfg.model.name, **cfg.model.spec_overrides())
    check_memory(cfg, spec, num_classes, world, device, budget)


def test_a_2b_model_on_a_24gb_host_is_refused_with_the_plan_numbers():
    with pytest.raises(ConfigError) as e:
        _check(["model.name=vit_2b_patch14"], Budget("host memory", 22.0, 1))
    message = str(e.value)
    assert "vit_2b_patch14 mae at micro batch 32 needs 45.8 GB per rank" in message
    assert "model states 34.6" in message and "22.0 GB of host memory available" in message
    assert "Not even micro batch 1 fits" in message and "force_memory=true" in message
    _check(["model.name=vit_2b_patch14", "force_memory=true"], Budget("host memory", 22.0, 1))  # accepted


def test_the_micro_batch_that_fits_is_named_and_ranks_share_the_host():
    budget = Budget("host memory", 8.0, 2)  # two CPU ranks on one 8 GB host: 4 GB each
    with pytest.raises(ConfigError, match=r"x 2 ranks = .* batch.micro_batch=(\d+) fits") as e:
        _check(["model.name=vit_base_patch16", "batch.micro_batch=256"], budget, world=2)
    fits = int(e.value.args[0].split("batch.micro_batch=")[1].split()[0])
    _check(["model.name=vit_base_patch16", f"batch.micro_batch={fits}"], budget, world=2)  # and it does fit
    with pytest.raises(ConfigError):
        _check(["model.name=vit_base_patch16", f"batch.micro_batch={fits + 1}"], budget, world=2)
    _check([], Budget("host memory", 1.0, 1))  # the tiny recipe fits anywhere


def test_on_a_gpu_a_micro_batch_or_another_policy_is_proposed():
    with pytest.raises(ConfigError, match=r"76.0 GB of GPU memory available. batch.micro_batch=\d+ fits"):
        _check(["model.name=vit_huge_patch14", "batch.micro_batch=2048", "deepspeed.precision=bf16"],
               Budget("GPU memory", 76.0, 1), device="cuda", world=8)
    with pytest.raises(ConfigError, match="deepspeed.config=zero3_offload"):
        _check(["model.name=vit_6.5b_patch14", "batch.micro_batch=1", "deepspeed.precision=bf16",
                "model.activation_checkpointing=full"], Budget("GPU memory", 76.0, 1), device="cuda", world=1)


@pytest.mark.skipif(psutil.virtual_memory().available > 40e9, reason="a 2B MAE run may fit this host")
def test_train_refuses_it_in_seconds_before_anything_is_written(tmp_path):
    run = tmp_path / "big"
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "scaling.train", "--config", "tiny/mae",
                           "model.name=vit_2b_patch14", f"run_dir={run}"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "config error: vit_2b_patch14 mae at micro batch 32 needs" in proc.stderr
    assert "Traceback" not in proc.stderr and time.monotonic() - start < 60
    assert not run.exists()


def test_plan_reads_activation_checkpointing_none_as_off():
    """A config's mode is a string: plan took the ready config's `none` (or false) for on."""
    from scaling.plan import make_plan

    assert make_plan("vit_base_patch16", "finetune", 8, "h100").activation_checkpointing is False
    assert make_plan("vit_huge_patch14", "finetune", 8, "h100").activation_checkpointing is True
