import time

import pytest
import torch

from scaling.flops import encoder_params
from scaling.models import MODELS, create_mae, create_model, get_spec

# DESIGN.md: params without head at 224 px
PUBLISHED = {
    "vit_base_patch16": 85.8e6,
    "vit_large_patch16": 303.3e6,
    "vit_huge_patch14": 630.8e6,
    "vit_2b_patch14": 1.890e9,
    "vit_6.5b_patch14": 6.448e9,
}


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_meta_param_count_matches_design(name):
    with torch.device("meta"):
        model = create_model(name)
    n = sum(p.numel() for p in model.parameters())
    assert abs(n - PUBLISHED[name]) / PUBLISHED[name] < 1e-3
    assert n == encoder_params(get_spec(name))  # the analytic count is exact
    assert all(p.device.type == "meta" for p in model.parameters())


def test_6_5b_on_meta_is_fast_and_allocates_nothing():
    import psutil

    rss_before = psutil.Process().memory_info().rss
    start = time.perf_counter()
    with torch.device("meta"):
        model = create_mae("vit_6.5b_patch14")
    elapsed = time.perf_counter() - start
    grown = psutil.Process().memory_info().rss - rss_before
    assert elapsed < 30  # "seconds", with a wide margin for a loaded 2-core box
    assert grown < 200e6  # 6.5B fp32 parameters would be 26 GB
    assert sum(p.numel() for p in model.encoder.parameters()) > 6.4e9


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError) as e:
        create_model("vit_gigantic")
    for name in MODELS:
        assert name in str(e.value)


def test_image_size_not_divisible_by_patch_is_clear():
    with pytest.raises(ValueError, match="not divisible by patch_size 16"):
        create_model("vit_tiny_patch16", img_size=100)


def test_unknown_override_is_named():
    with pytest.raises(ValueError, match="widht"):
        create_model("vit_tiny_patch16", widht=3)


def test_wrong_input_size_names_the_fix():
    model = create_model("vit_nano_patch4")
    with pytest.raises(ValueError, match="img_size=32"):
        model(torch.randn(1, 3, 32, 32))
