"""`scaling plan`: numbers from the FLOPs module and DeepSpeed's estimator, memory that behaves as ZeRO says,
a comparison with the GPU's measured peaks, and bad inputs as one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs

from scaling.flops import encoder_params, stage_flops
from scaling.models import create_mae, create_model, get_spec
from scaling.plan import make_plan
from scaling.plan.cli import main
from scaling.plan.memory import (
    GPU_MEMORY_GB,
    Policy,
    largest_layer_params,
    max_micro_batch,
    measured_peaks,
    memory,
    model_params,
)
from scaling.plan.throughput import RESULTS_DIR

PAPER = ["vit_base_patch16", "vit_large_patch16", "vit_huge_patch14", "vit_2b_patch14", "vit_6.5b_patch14"]


def _meta_model(name: str, stage: str, num_classes: int):
    with torch.device("meta"):
        return create_mae(name) if stage == "mae" else create_model(name, num_classes=num_classes)


def _counts(model) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())
    return total, largest


@pytest.mark.parametrize("model", PAPER)
@pytest.mark.parametrize("stage", ["mae", "wsp"])
def test_params_and_flops_are_the_flops_modules(model, stage):
    plan = make_plan(model, stage, 64, "h100", micro_batch=1, samples=10**9)
    spec = get_spec(model)
    classes = 27000 if stage == "wsp" else 0  # the ready WSP configs' head
    assert plan.params == encoder_params(spec)
    assert plan.train_flops_per_sample == stage_flops(spec, stage, num_classes=classes).train


@pytest.mark.parametrize("model,stage,classes", [("vit_micro_patch4", "mae", 0), ("vit_micro_patch4", "wsp", 10),
                                                 ("vit_base_patch16", "mae", 0), ("vit_base_patch16", "wsp", 27000),
                                                 ("vit_2b_patch14", "mae", 0)])
def test_sizes_equal_the_built_model(model, stage, classes):
    total, largest = _counts(_meta_model(model, stage, classes))
    spec = get_spec(model)
    assert model_params(spec, stage, classes) == total
    assert largest_layer_params(spec, stage, classes) == largest


@pytest.mark.parametrize("gpus", [1, 8, 64, 1024])
def test_zero3_model_states_equal_deepspeeds_estimator(gpus):
    total, largest = _counts(_meta_model("vit_huge_patch14", "mae", 0))
    expected = estimate_zero3_model_states_mem_needs(total, largest, num_gpus_per_node=min(gpus, 8),
                                                     num_nodes=max(1, gpus // 8), cpu_offload=False,
                                                     cpu_offload_params=False, zero_init=True)[1]
    plan = make_plan("vit_huge_patch14", "mae", gpus, "h200", ds_config="zero3_bf16.json", micro_batch=8)
    assert plan.memory_gb["zero3_bf16.json"]["model_states"] == pytest.approx(expected / 1e9, abs=1e-3)


def test_memory_falls_with_world_size_as_zero3_says():
    spec, pol = get_spec("vit_2b_patch14"), Policy.load("zero3_bf16.json")
    params, largest = model_params(spec, "wsp", 0), largest_layer_params(spec, "wsp", 0)
    states = {n: memory(pol, spec, "wsp", 8, n, False, 0).model_states for n in (1, 8, 64, 512)}
    assert states[1] > states[8] > states[64] > states[512]
    for n, gb in states.items():  # 18 bytes per parameter sharded over n, plus 4 bytes per gathered-layer parameter
        assert gb * 1e9 == pytest.approx(18 * params / n + 4 * largest, rel=1e-6)
    # activations do not shard: equal at every world size
    assert len({memory(pol, spec, "wsp", 8, n, False, 0).activations for n in (1, 512)}) == 1


@pytest.mark.parametrize("checkpointing", [False, True])
def test_largest_micro_batch_is_monotone_in_gpu_memory(checkpointing):
    spec, pol = get_spec("vit_large_patch16"), Policy.load("zero3_bf16.json")
    sizes = [max_micro_batch(pol, spec, "mae", 8, checkpointing, 0, gb) for gb in (10, 20, 40, 80, 150)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    for gb, b in zip((10, 20, 40, 80, 150), sizes):  # the largest: b fits, b + 1 does not
        assert memory(pol, spec, "mae", b, 8, checkpointing, 0).total <= gb
        assert memory(pol, spec, "mae", b + 1, 8, checkpointing, 0).total > gb
    no_ckpt = [max_micro_batch(pol, spec, "mae", 8, False, 0, gb) for gb in (40, 80)]
    with_ckpt = [max_micro_batch(pol, spec, "mae", 8, True, 0, gb) for gb in (40, 80)]
    assert all(a < b for a, b in zip(no_ckpt, with_ckpt))


def test_plan_against_the_measured_gpu_peaks():
    """benchmarks/results/train_bench_h200_*.json: our engine on one H200 (ZeRO-3, bf16, no activation
    checkpointing, 1000 classes). The first case of each file ran in a fresh process: there the plan is within
    5% (observed: +2.3% and +3.1%). Each later case ran in the same process after other cases and measured
    more than the plan by about what the cases before it left allocated (ViT-H MAE: +30.8 GB = 16 bytes x the
    1.92B parameters of the ViT-2B MAE case before it), so those peaks are upper bounds only: plan <= measured.
    A re-measurement with one process per case would make them comparable."""
    pol = Policy.load("zero3_bf16.json")
    peaks = measured_peaks(RESULTS_DIR)
    assert peaks, "no measured peaks in benchmarks/results/"
    firsts = set()
    for r in peaks:
        m = memory(pol, get_spec(r["model"]), r["stage"], r["micro_batch"], 1, False, 1000)
        if r["file"] not in firsts:
            firsts.add(r["file"])
            assert abs(m.total / r["peak_mem_gb"] - 1) <= 0.05, (r["file"], r["model"], m, r["peak_mem_gb"])
        else:
            assert m.total <= r["peak_mem_gb"], (r["file"], r["model"], m, r["peak_mem_gb"])
    assert len(firsts) >= 2


def test_mfu_comes_from_the_measurement_or_says_it_is_assumed():
    measured = make_plan("vit_2b_patch14", "wsp", 8, "h200", micro_batch=8, samples=10**6)
    best = max(r["mfu"] for r in measured_peaks(RESULTS_DIR) if r["model"] == "vit_2b_patch14" and r["stage"] == "wsp")
    assert measured.mfu == best and "train_bench_h200" in measured.mfu_source
    assumed = make_plan("vit_base_patch16", "mae", 8, "h100", micro_batch=8, samples=10**6)
    assert assumed.mfu_source.startswith("assumed")
    # GPU-hours: samples x FLOPs per sample / (MFU x peak)
    assert assumed.gpu_hours == pytest.approx(1e6 * assumed.train_flops_per_sample / (assumed.mfu * 989e12) / 3600)
    assert assumed.hours == pytest.approx(assumed.gpu_hours / 8)


def test_cli_json_keys(capsys):
    assert main(["--model", "vit_large_patch16", "--stage", "mae", "--gpus", "16", "--gpu", "a100",
                 "--samples", "1e8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"params", "train_flops_per_sample", "memory_gb", "max_micro_batch", "gpu_hours", "mfu_source"} <= set(out)
    repo_policies = {p.name for p in (Path(__file__).resolve().parents[2] / "ds_configs").glob("*.json")}
    assert set(out["memory_gb"]) == repo_policies
    for policy in out["memory_gb"].values():
        assert {"model_states", "activations", "total"} <= set(policy)
        assert policy["total"] >= policy["model_states"] + policy["activations"]


@pytest.mark.parametrize("args,words", [
    (["--model", "vit_gigantic", "--stage", "mae", "--gpus", "8", "--gpu", "h100"], ["vit_gigantic", "Valid names"]),
    (["--model", "vit_base_patch16", "--stage", "mae", "--gpus", "8", "--gpu", "v100"], ["v100", "h100"]),
    (["--model", "vit_base_patch16", "--stage", "pretrain", "--gpus", "8", "--gpu", "h100"], ["pretrain", "mae"]),
    (["--model", "vit_6.5b_patch14", "--stage", "wsp", "--gpus", "8", "--gpu", "h100", "--micro-batch", "4096",
      "--ds-config", "zero3_bf16.json"], ["micro batch 4096", "--micro-batch", "activation-checkpointing"]),
])
def test_bad_inputs_are_one_line_errors(capsys, args, words):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    for w in words:
        assert w in err, err


def test_gpu_memory_table_covers_the_known_peaks():
    from scaling.flops import PEAK_BF16_FLOPS

    assert set(GPU_MEMORY_GB) == set(PEAK_BF16_FLOPS)
