"""Our encoder and timm's VisionTransformer load each other's state dicts strictly and agree."""

import pytest
import timm.models.vision_transformer as timm_vit
import torch

from scaling.models import create_model, set_kernels


def _timm_twin(name: str, num_classes: int, **overrides):
    ours = create_model(name, num_classes=num_classes, **overrides).eval()
    s = ours.spec
    theirs = timm_vit.VisionTransformer(
        img_size=s.img_size,
        patch_size=s.patch_size,
        in_chans=s.in_chans,
        num_classes=num_classes,
        embed_dim=s.width,
        depth=s.depth,
        num_heads=s.heads,
        mlp_ratio=s.mlp_dim / s.width,
        qkv_bias=True,
        global_pool="token",
        class_token=True,
    ).eval()
    return ours, theirs


@pytest.mark.parametrize("num_classes", [0, 10])
@pytest.mark.parametrize("kernels", ["sdpa", "reference"])
def test_timm_loads_ours_strict_and_matches(num_classes, kernels):
    set_kernels(kernels)
    torch.manual_seed(0)
    ours, theirs = _timm_twin("vit_micro_patch4", num_classes)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        diff = (ours(x) - theirs(x)).abs().max().item()
    set_kernels("auto")
    assert diff < 1e-5


def test_ours_loads_timm_strict_and_matches():
    torch.manual_seed(1)
    ours, theirs = _timm_twin("vit_tiny_patch16", 5, img_size=64)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (ours(x) - theirs(x)).abs().max().item() < 1e-5


def test_key_names_are_timms():
    ours, theirs = _timm_twin("vit_nano_patch4", 3)
    assert list(ours.state_dict()) == list(theirs.state_dict())
