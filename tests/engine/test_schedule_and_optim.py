import pytest
import torch

from scaling.config import ConfigError
from scaling.engine.config import BatchConfig
from scaling.engine.optim import (
    ApexMissingError,
    build_optimizer,
    flat_buffer_offsets,
    nvidia_apex_available,
    param_groups,
)
from scaling.engine.schedule import lr_at, peak_lr
from scaling.models import create_mae, create_model


def test_warmup_then_cosine_to_floor():
    kw = dict(peak_lr=1.0, min_lr=0.1, warmup_samples=100, total_samples=1100)
    assert lr_at(0, **kw) == 0.0
    assert lr_at(50, **kw) == pytest.approx(0.5)
    assert lr_at(100, **kw) == pytest.approx(1.0)
    assert lr_at(600, **kw) == pytest.approx(0.55)  # half way through the cosine
    assert lr_at(1100, **kw) == pytest.approx(0.1)
    assert lr_at(5000, **kw) == pytest.approx(0.1)
    values = [lr_at(s, **kw) for s in range(100, 1101, 50)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_linear_scaling_rule():
    assert peak_lr(1.5e-4, "auto", 4096) == pytest.approx(2.4e-3)
    assert peak_lr(1.5e-4, 1e-3, 4096) == 1e-3


def test_batch_arithmetic_errors_name_the_numbers():
    assert BatchConfig(micro_batch=8, grad_accum=2).resolve(4) == (64, 2)
    assert BatchConfig(micro_batch=8, grad_accum=0, global_batch=64).resolve(2) == (64, 4)
    with pytest.raises(
        ConfigError, match=r"global_batch=100 != micro_batch 8 x grad_accum 2 x world size 4 = 64"
    ):
        BatchConfig(micro_batch=8, grad_accum=2, global_batch=100).resolve(4)
    with pytest.raises(ConfigError, match="not divisible by micro_batch 8 x world size 3 = 24"):
        BatchConfig(micro_batch=8, grad_accum=0, global_batch=64).resolve(3)
    with pytest.raises(ConfigError, match="grad_accum=4"):
        BatchConfig(micro_batch=8, grad_accum=2, global_batch=64).resolve(2)


def test_no_weight_decay_on_norms_biases_pos_embed_and_tokens():
    model = create_mae("vit_nano_patch4")
    groups = param_groups(model, weight_decay=0.05)
    no_decay = {n for g in groups if g["weight_decay"] == 0 for n in g["names"]}
    decay = {n for g in groups if g["weight_decay"] > 0 for n in g["names"]}
    assert "encoder.cls_token" in no_decay and "decoder.mask_token" in no_decay
    assert "encoder.blocks.0.norm1.weight" in no_decay and "encoder.blocks.0.attn.qkv.bias" in no_decay
    assert "encoder.blocks.0.attn.qkv.weight" in decay and "decoder.pred.weight" in decay
    # fixed sin-cos position embeddings are frozen and left out of the optimizer
    assert "encoder.pos_embed" not in no_decay | decay
    learned = create_model("vit_nano_patch4", pos_embed="learned")
    names = {n for g in param_groups(learned, 0.05) if g["weight_decay"] == 0 for n in g["names"]}
    assert "pos_embed" in names


def test_layer_decay_scales_lr_by_depth():
    model = create_model("vit_nano_patch4", num_classes=3)  # depth 2
    groups = param_groups(model, weight_decay=0.05, layer_decay=0.5, depth=2)
    scale = {n: g["lr_scale"] for g in groups for n in g["names"]}
    assert scale["head.weight"] == 1.0
    assert scale["blocks.1.mlp.fc1.weight"] == 0.5
    assert scale["blocks.0.mlp.fc1.weight"] == 0.25
    assert scale["patch_embed.proj.weight"] == 0.125
    opt = build_optimizer(groups, "torch", lr=1e-3, betas=(0.9, 0.95), eps=1e-8, device_type="cpu")
    assert sorted(g["lr"] for g in opt.param_groups)[0] == pytest.approx(1.25e-4)
    assert isinstance(opt, torch.optim.AdamW)


@pytest.mark.skipif(nvidia_apex_available(), reason="NVIDIA apex is installed here")
def test_apex_missing_is_a_clear_error():
    groups = param_groups(create_model("vit_nano_patch4"), 0.05)
    with pytest.raises(ApexMissingError, match="unrelated PyPI project"):
        build_optimizer(groups, "apex", lr=1e-3, betas=(0.9, 0.95), eps=1e-8, device_type="cpu")


@pytest.mark.parametrize("build", ["mae", "wsp_1001", "finetune"])
def test_every_multiple_of_8_tensor_starts_16_byte_aligned_in_zero3s_flat_buffer(build):
    """MAE's 588-element decoder_pred bias (14x14x3) and a 1001-class head bias must not shift the tensors
    packed after them: misaligned weights sent the ViT-2B MAE step's GEMMs to sm80 kernels on an H200."""
    with torch.device("meta"):  # real sizes, no memory
        if build == "mae":
            model, depth, decay = create_mae("vit_huge_patch14"), 0, 1.0
        else:
            model = create_model("vit_huge_patch14", num_classes=1001)
            depth, decay = (32, 0.75) if build == "finetune" else (0, 1.0)
    groups = param_groups(model, 0.05, layer_decay=decay, depth=depth)
    offsets = flat_buffer_offsets(groups)
    numel = {n: p.numel() for g in groups for n, p in zip(g["names"], g["params"])}
    odd = {n for n, k in numel.items() if k % 8}
    assert odd == ({"decoder.pred.bias"} if build == "mae" else {"head.bias"})
    misaligned = [n for n, at in offsets.items() if at % 8 and n not in odd]
    assert not misaligned, misaligned[:5]
    assert sorted(numel) == sorted(n for n, p in model.named_parameters() if p.requires_grad)
