"""MAE's initialisation, done by each layer in its own constructor (no model-wide apply that zero.Init would
turn into a gather and re-shard of every layer)."""

import math

import pytest
import torch

from scaling.models import create_mae, create_model
from scaling.models.pos_embed import sincos_2d


def _xavier_bound(w: torch.Tensor) -> float:
    fan_out, fan_in = w.shape[0], w[0].numel()
    return math.sqrt(6.0 / (fan_in + fan_out))


def test_mae_initialisation():
    torch.manual_seed(0)
    mae = create_mae("vit_base_patch16")
    sd = mae.state_dict()
    for name in ("encoder.blocks.3.mlp.fc1.weight", "encoder.blocks.0.attn.qkv.weight",
                 "encoder.patch_embed.proj.weight", "decoder.pred.weight", "decoder.embed.weight"):
        w, bound = sd[name], _xavier_bound(sd[name])
        assert w.abs().max() <= bound, name
        assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.03), name  # uniform(-b, b)
    for name in ("encoder.blocks.3.mlp.fc1.bias", "decoder.pred.bias", "encoder.patch_embed.proj.bias"):
        assert not sd[name].any(), name
    assert torch.equal(sd["encoder.blocks.0.norm1.weight"], torch.ones(768))
    assert sd["encoder.cls_token"].std().item() == pytest.approx(0.02, rel=0.1)
    assert sd["decoder.mask_token"].std().item() == pytest.approx(0.02, rel=0.15)
    grid = mae.spec.grid
    assert torch.allclose(sd["encoder.pos_embed"][0], sincos_2d(768, grid))
    assert torch.allclose(sd["decoder.pos_embed"][0], sincos_2d(mae.spec.decoder_width, grid))


@pytest.mark.parametrize("classes, std", [(1000, 0.01), (5000, 2e-5)])
def test_classifier_head_starts_small(classes, std):
    head = create_model("vit_tiny_patch16", num_classes=classes).head
    assert head.weight.std().item() == pytest.approx(std, rel=0.05)
    assert not head.bias.any()
