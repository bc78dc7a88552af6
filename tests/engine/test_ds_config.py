import json

import pytest

from scaling.config import ConfigError
from scaling.engine.ds_config import build_ds_config, check_with_deepspeed, load_policy
from scaling.resources import ds_config_names

POLICIES = ds_config_names()


def test_the_four_policies_exist():
    assert {
        "zero3_bf16.json",
        "zero3_offload_optimizer.json",
        "zero3_offload_param_nvme.json",
        "zero2_bf16.json",
    } <= set(POLICIES)


@pytest.mark.parametrize("name", POLICIES)
@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_every_policy_gets_the_run_numbers(name, precision):
    """The numbers the run config owns are written in (starting each policy for real: test_offload_policies)."""
    cfg = build_ds_config(
        load_policy(name),
        micro_batch=4,
        grad_accum=2,
        world_size=1,
        precision=precision,
        clip_grad=0.5,
        width=768,
    )
    check_with_deepspeed(cfg)  # raises on invalid sections
    assert cfg["train_batch_size"] == 8 and cfg["gradient_clipping"] == 0.5
    assert cfg["bf16"]["enabled"] == (precision == "bf16")
    if cfg["zero_optimization"]["stage"] == 3:
        assert cfg["zero_optimization"]["reduce_bucket_size"] == 768 * 768
        assert cfg["zero_optimization"]["stage3_param_persistence_threshold"] == 7680


def test_zero3_keeps_torchs_linear():
    """zero.Init reads this flag through DeepSpeed's config class; True would patch F.linear process-wide."""
    from deepspeed.runtime.config import DeepSpeedConfig

    cfg = build_ds_config(load_policy("zero3_bf16.json"), micro_batch=4, grad_accum=1, world_size=1,
                          precision="bf16", clip_grad=1.0, width=64)
    assert DeepSpeedConfig(cfg).zero_config.memory_efficient_linear is False
    policy = load_policy("zero3_bf16.json")
    policy["zero_optimization"]["memory_efficient_linear"] = True  # a policy file may still ask for it
    cfg = build_ds_config(policy, micro_batch=4, grad_accum=1, world_size=1, precision="bf16", clip_grad=1.0,
                          width=64)
    assert DeepSpeedConfig(cfg).zero_config.memory_efficient_linear is True


def test_deepspeed_rejects_a_bad_section():
    cfg = build_ds_config(
        load_policy("zero3_bf16.json"),
        micro_batch=4,
        grad_accum=1,
        world_size=1,
        precision="bf16",
        clip_grad=1.0,
        width=64,
    )
    cfg["zero_optimization"]["stage3_prefetch_bucket_sise"] = 5  # typo inside a section
    with pytest.raises(Exception, match="stage3_prefetch_bucket_sise"):
        check_with_deepspeed(cfg)


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"zero_optimisation": {"stage": 3}}, "Did you mean 'zero_optimization'"),
        ({"zero_optimization": {"stage": 3, "reduce_bucket_size": "auto"}}, "'auto'"),
        ({"train_batch_size": 64}, "set from the run config"),
        ({"zero_optimization": {"stage": 4}}, "stage must be 0-3"),
    ],
)
def test_policy_validation(tmp_path, policy, message):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(policy))
    with pytest.raises(ConfigError, match=message):
        load_policy(str(path))


def test_missing_policy_lists_available():
    with pytest.raises(ConfigError, match="zero3_bf16.json"):
        load_policy("zero7.json")
