"""Resume compares the checkpoint's config with the new one: a key that changes the run's math is refused (one
line naming each key and both values) unless listed in allow_changes; paths and logging keys change freely."""

from __future__ import annotations

import pytest

from scaling.config import ConfigError, to_dict
from scaling.engine.config import TrainConfig, load_config
from scaling.engine.config_diff import check_resume_config


def _saved(**kw) -> tuple[dict, int]:
    cfg = load_config(None, [f"{k}={v}" for k, v in kw.items()])
    return to_dict(cfg), cfg.batch.micro_batch * cfg.batch.grad_accum


def _check(saved: tuple[dict, int], overrides: list[str], world: int = 1):
    cfg = load_config(None, overrides)
    global_batch, _ = cfg.batch.resolve(world)
    return check_resume_config(saved[0], saved[1], cfg, global_batch, "step_000000004")


def test_total_samples_moves_the_cosine_horizon_and_is_refused():
    with pytest.raises(ConfigError) as e:
        _check(_saved(total_samples=4096), ["total_samples=8192"])
    msg = str(e.value)
    assert "total_samples: 4096 -> 8192" in msg and "allow_changes=total_samples" in msg and "\n" not in msg


def test_each_changed_key_is_named_with_both_values():
    with pytest.raises(ConfigError) as e:
        _check(_saved(seed=0, **{"optim.lr": 0.001, "model.mask_ratio": 0.75}),
               ["seed=1", "optim.lr=0.002", "model.mask_ratio=0.5"])
    msg = str(e.value)
    for part in ("seed: 0 -> 1", "optim.lr: 0.001 -> 0.002", "model.mask_ratio: 0.75 -> 0.5"):
        assert part in msg


def test_allow_changes_accepts_the_listed_keys_only():
    saved = _saved(total_samples=4096, seed=0)
    changes = _check(saved, ["total_samples=8192", "allow_changes=total_samples"])
    assert changes == [("total_samples", 4096, 8192)]
    with pytest.raises(ConfigError, match="seed: 0 -> 1"):
        _check(saved, ["total_samples=8192", "seed=1", "allow_changes=total_samples"])
    assert _check(_saved(**{"optim.lr": 0.1}), ["optim.lr=0.2", "allow_changes=optim"])  # a whole section


def test_paths_logging_and_cadence_change_freely():
    saved = _saved(run_dir="/a", log_every=1, checkpoint_every=64, **{"data.train": "/old/shards"})
    assert _check(saved, ["run_dir=/b", "log_every=10", "checkpoint_every=128", "keep_checkpoints=1",
                          "data.train=/new/shards", "model.kernels=sdpa", "dist.timeout_minutes=30"]) == []


def test_batch_layout_is_compared_as_resolved_numbers():
    """A resize keeps the global batch (grad_accum changes with the world size): allowed. A different micro
    batch or global batch changes the math."""
    saved = _saved(**{"batch.micro_batch": 8, "batch.grad_accum": 4})  # global 32 on 1 rank
    assert _check(saved, ["batch.micro_batch=8", "batch.grad_accum=2"], world=2) == []
    with pytest.raises(ConfigError, match="batch.micro_batch: 8 -> 16"):
        _check(saved, ["batch.micro_batch=16", "batch.grad_accum=2"])
    with pytest.raises(ConfigError, match="batch.global_batch: 32 -> 64"):
        _check(saved, ["batch.micro_batch=8", "batch.grad_accum=8"])


def test_allow_changes_names_real_keys():
    with pytest.raises(ConfigError, match="Did you mean 'total_samples'"):
        load_config(None, ["allow_changes=total_sample"])
    assert TrainConfig(allow_changes=["optim.lr", "batch"]).allow_changes == ["optim.lr", "batch"]
