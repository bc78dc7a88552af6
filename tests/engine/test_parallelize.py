"""Activation checkpointing modes and regional compilation (scaling/engine/parallelize.py)."""

import pytest
import torch
from train_helpers import losses, run_train

from scaling.config import ConfigError
from scaling.engine.config import load_config
from scaling.engine.parallelize import apply_activation_checkpointing, checkpointed_blocks
from scaling.models import create_mae
from scaling.models.layers import Block


def test_checkpointed_blocks_by_mode():
    assert checkpointed_blocks(6, "none") == []
    assert checkpointed_blocks(6, "full") == [0, 1, 2, 3, 4, 5]
    assert checkpointed_blocks(6, "selective", 2) == [1, 3, 5]
    assert checkpointed_blocks(7, "selective", 3) == [2, 5]
    assert checkpointed_blocks(4, "selective", 1) == [0, 1, 2, 3]


def test_old_boolean_configs_still_load():
    assert load_config(None, ["model.activation_checkpointing=true"]).model.activation_checkpointing == "full"
    assert load_config(None, ["model.activation_checkpointing=false"]).model.activation_checkpointing == "none"
    cfg = load_config(None, ["model.activation_checkpointing=selective", "model.activation_checkpointing_every=3"])
    assert (cfg.model.activation_checkpointing, cfg.model.activation_checkpointing_every) == ("selective", 3)
    with pytest.raises(ConfigError, match="activation_checkpointing"):
        load_config(None, ["model.activation_checkpointing=some"])
    with pytest.raises(ConfigError, match="activation_checkpointing_every"):
        load_config(None, ["model.activation_checkpointing_every=0"])
    with pytest.raises(ConfigError, match="compile"):
        load_config(None, ["model.compile=all"])


def _loss_and_grads(mode: str, every: int = 2):
    torch.manual_seed(0)
    model = create_mae("vit_micro_patch4")
    checkpointed = apply_activation_checkpointing(model, mode, every)
    blocks = [m for m in model.modules() if isinstance(m, Block)]
    calls = [0] * len(blocks)
    for i, block in enumerate(blocks):  # the MLP is entered again in backward only in a recomputed block
        block.mlp.register_forward_pre_hook(lambda *_, i=i: calls.__setitem__(i, calls[i] + 1))
    images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    seeds = torch.arange(4, dtype=torch.int64)
    loss = model(images, mask_ratio=0.75, seeds=seeds)[0]
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.item(), grads, checkpointed, calls


@pytest.mark.parametrize("mode,every", [("full", 2), ("selective", 2), ("selective", 3)])
def test_checkpointing_keeps_loss_and_gradients_and_recomputes_the_chosen_blocks(mode, every):
    ref_loss, ref_grads, none_count, none_calls = _loss_and_grads("none")
    loss, grads, count, calls = _loss_and_grads(mode, every)
    chosen = checkpointed_blocks(len(calls), mode, every)
    assert none_count == 0 and set(none_calls) == {1}
    assert count == len(chosen) > 0
    assert [i for i, c in enumerate(calls) if c == 2] == chosen  # recomputed exactly the chosen blocks
    assert all(c == 1 for i, c in enumerate(calls) if i not in chosen)
    assert abs(loss - ref_loss) <= 1e-6 * abs(ref_loss)
    assert grads.keys() == ref_grads.keys()
    for name, g in grads.items():
        torch.testing.assert_close(g, ref_grads[name], rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.slow
def test_compiled_blocks_train_like_eager_under_zero3(tmp_path, tiny_mae):
    """5 steps through `scaling train` (ZeRO-3, fp32): model.compile=blocks with selective checkpointing
    on top gives the eager run's losses to 1e-5 (ZeRO's hooks gather each block's parameters)."""
    common = ["data.train=synthetic", "total_samples=320", "batch.micro_batch=32", "batch.grad_accum=2"]
    run_train(tiny_mae, [f"run_dir={tmp_path / 'eager'}", *common])
    run_train(tiny_mae, [f"run_dir={tmp_path / 'compiled'}", *common, "model.compile=blocks",
                         "model.activation_checkpointing=selective"])
    a, b = losses(tmp_path / "eager"), losses(tmp_path / "compiled")
    assert len(a) == len(b) == 5
    for x, y in zip(a, b):
        assert abs(x - y) <= 1e-5 * abs(x), (a, b)
