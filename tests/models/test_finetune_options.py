"""Fine-tuning options of the encoder (global average pool + fc_norm, drop path) equal timm's, and the
fine-tune augmentation (scaling/data/augment.py) is deterministic per seed."""

import pytest
import timm.models.vision_transformer as timm_vit
import torch

from scaling.config import ConfigError
from scaling.data.augment import AugmentConfig, augment_batch
from scaling.models import create_model
from scaling.models.vit import fit_encoder_to_pool
from scaling.models.weights import load_into


def _twins(drop_path: float = 0.0):
    ours = create_model("vit_micro_patch4", num_classes=10, global_pool="avg", drop_path=drop_path)
    s = ours.spec
    theirs = timm_vit.VisionTransformer(img_size=s.img_size, patch_size=s.patch_size, num_classes=10,
                                        embed_dim=s.width, depth=s.depth, num_heads=s.heads,
                                        mlp_ratio=s.mlp_dim / s.width, qkv_bias=True, global_pool="avg",
                                        class_token=True, drop_path_rate=drop_path)
    return ours, theirs


def test_global_pool_avg_has_timms_keys_and_outputs():
    torch.manual_seed(0)
    ours, theirs = _twins()
    assert list(ours.state_dict()) == list(theirs.state_dict())  # fc_norm.*, no norm.*
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert (ours.eval()(x) - theirs.eval()(x)).abs().max() < 1e-5


def test_drop_path_rates_and_draws_equal_timms():
    torch.manual_seed(0)
    ours, theirs = _twins(drop_path=0.3)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    assert [b.drop_path.drop_prob if b.drop_path.__class__.__name__ == "DropPath" else 0.0 for b in ours.blocks] \
        == pytest.approx([b.drop_path1.drop_prob if hasattr(b.drop_path1, "drop_prob") else 0.0
                          for b in theirs.blocks])
    x = torch.randn(8, 3, 32, 32)
    torch.manual_seed(5)
    a = ours.train()(x)
    torch.manual_seed(5)
    b = theirs.train()(x)
    torch.manual_seed(6)
    c = ours(x)
    assert (a - b).abs().max() < 1e-5 and (a - c).abs().max() > 1e-3  # same draws as timm; draws matter
    with torch.no_grad():
        assert torch.equal(ours.eval()(x), ours.eval()(x))  # eval: no drop


def test_token_encoder_weights_fit_an_avg_pool_classifier():
    enc = create_model("vit_micro_patch4").state_dict()
    model = create_model("vit_micro_patch4", num_classes=10, global_pool="avg")
    sd = fit_encoder_to_pool(model, enc)
    assert "norm.weight" not in sd and torch.equal(sd["fc_norm.weight"], torch.ones(64))
    sd.update({k: v for k, v in model.state_dict().items() if k.startswith("head.")})
    load_into(model, sd, strict=True)
    assert fit_encoder_to_pool(create_model("vit_micro_patch4", num_classes=10), enc) is enc


def test_finetune_augmentation_is_deterministic_per_seed_and_mixes_targets():
    cfg = AugmentConfig(rand_augment="rand-m9-mstd0.5-inc1", mixup=0.8, cutmix=1.0, label_smoothing=0.1,
                        reprob=0.25)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=g)
    targets = torch.nn.functional.one_hot(torch.arange(8) % 4, 4).float()
    kw = dict(device=torch.device("cpu"), dtype=torch.float32, mean=(0.5,) * 3, std=(0.5,) * 3)
    x1, t1 = augment_batch(cfg, images, targets, seed=1, **kw)
    x2, t2 = augment_batch(cfg, images, targets, seed=1, **kw)
    x3, _ = augment_batch(cfg, images, targets, seed=2, **kw)
    assert torch.equal(x1, x2) and torch.equal(t1, t2) and not torch.equal(x1, x3)
    assert torch.allclose(t1.sum(dim=1), torch.ones(8)) and t1.min() >= 0.1 / 4 - 1e-6
    plain, t = augment_batch(AugmentConfig(), images, targets, seed=1, **kw)
    assert torch.equal(t, targets) and torch.allclose(plain, (images.float() / 255 - 0.5) / 0.5, atol=1e-6)
    with pytest.raises(ConfigError, match="even micro batch"):
        augment_batch(cfg, images[:3], targets[:3], seed=1, **kw)
