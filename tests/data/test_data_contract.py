"""The engine-facing contract on `synthetic` data: shapes, targets, determinism, resume, equal batches."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from scaling.config import ConfigError, from_dict
from scaling.data import DataConfig, build_train_loader, normalize_images
from scaling.data.synthetic import SyntheticImages


def _loader(
    cfg: DataConfig,
    stage: str = "wsp",
    rank: int = 0,
    world_size: int = 2,
    micro_batch: int = 4,
    seed: int = 7,
    image_size: int = 16,
):
    return build_train_loader(
        cfg,
        stage=stage,
        image_size=image_size,
        micro_batch=micro_batch,
        rank=rank,
        world_size=world_size,
        seed=seed,
    )


def _take(loader, n: int) -> list[dict]:
    return [next(loader) for _ in range(n)]


@pytest.mark.parametrize("stage", ["mae", "wsp", "finetune"])
def test_batch_format(stage: str) -> None:
    loader = _loader(DataConfig(workers=0, synthetic_samples=200, num_classes=5), stage=stage, micro_batch=6)
    batch = next(loader)
    assert batch["image"].dtype == torch.uint8 and batch["image"].shape == (6, 3, 16, 16)
    assert len(batch["key"]) == 6 and all(k.startswith("synthetic-") for k in batch["key"])
    if stage == "mae":
        assert "target" not in batch
    else:
        target = batch["target"]
        assert target.dtype == torch.float32 and target.shape == (6, 5)
        assert torch.allclose(target.sum(1), torch.ones(6))
        index = torch.tensor([int(k.split("-")[1]) for k in batch["key"]])
        assert torch.equal(target.argmax(1), index % 5)  # class = index % num_classes


def test_synthetic_is_a_function_of_the_index() -> None:
    images = SyntheticImages(num_classes=4, size=24)
    a = images.render(np.array([3, 10, 3]))
    assert torch.equal(torch.from_numpy(a[0]), torch.from_numpy(a[2]))
    assert not np.array_equal(a[0], a[1])
    # Same class, different sample: same pattern family but a different phase, so not identical.
    b = images.render(np.array([3, 7]))
    assert not np.array_equal(b[0], b[1])


def test_synthetic_classes_are_separable_by_a_linear_probe() -> None:
    """Learnability: per-class mean images classify held-out samples far above chance (10 classes)."""
    images = SyntheticImages(num_classes=10, size=16)
    train, test = np.arange(0, 2000), np.arange(5000, 5500)
    x = images.render(train).reshape(len(train), -1).astype(np.float32)
    means = np.stack([x[train % 10 == c].mean(0) for c in range(10)])
    xt = images.render(test).reshape(len(test), -1).astype(np.float32)
    pred = ((xt[:, None, :] - means[None]) ** 2).sum(-1).argmin(1)
    assert (pred == test % 10).mean() > 0.5


def test_workers_0_and_1_give_the_same_stream() -> None:
    a = _take(_loader(DataConfig(workers=0, synthetic_samples=300)), 8)
    loader = _loader(DataConfig(workers=1, synthetic_samples=300))
    b = _take(loader, 8)
    loader.close()
    for x, y in zip(a, b):
        assert (
            x["key"] == y["key"]
            and torch.equal(x["image"], y["image"])
            and torch.equal(x["target"], y["target"])
        )


@pytest.mark.parametrize("mode", ["resampled", "epoch"])
def test_resume_continues_exactly(mode: str) -> None:
    cfg = DataConfig(workers=0, synthetic_samples=150, mode=mode, shuffle_buffer=16)
    full = _take(_loader(cfg), 40)  # crosses epochs in epoch mode (150 // 8 = 18 batches per epoch)
    first = _loader(cfg)
    _take(first, 23)
    state = pickle.loads(pickle.dumps(first.state_dict()))  # what a checkpoint stores
    second = _loader(cfg)
    second.load_state_dict(state)
    rest = _take(second, 17)
    for x, y in zip(full[23:], rest):
        assert x["key"] == y["key"] and torch.equal(x["image"], y["image"])


def test_epoch_mode_ranks_equal_and_disjoint() -> None:
    cfg = DataConfig(workers=0, synthetic_samples=101, mode="epoch")
    loaders = [_loader(cfg, rank=r, world_size=2, micro_batch=4) for r in range(2)]
    assert {ld.batches_per_epoch for ld in loaders} == {12}  # 101 // (2 * 4)
    keys = [k for ld in loaders for b in _take(ld, 12) for k in b["key"]]
    assert len(keys) == len(set(keys)) == 96  # 101 - 5 dropped (fewer than one global batch of 8)
    assert loaders[0].epoch == 1


def test_state_from_another_world_size_is_a_clear_error() -> None:
    cfg = DataConfig(workers=0, synthetic_samples=100, mode="epoch")
    state = _loader(cfg, world_size=2).state_dict()
    other = _loader(cfg, world_size=1)
    with pytest.raises(ConfigError, match="world_size 2 -> 1"):
        other.load_state_dict(state)
    other.load_state_dict(state, strict=False)  # restarts at the next epoch boundary
    assert other.epoch == 1


def test_normalize_images_matches_float_reference() -> None:
    images = torch.randint(0, 256, (2, 3, 5, 5), dtype=torch.uint8)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    ref = (images.float() / 255 - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    assert torch.allclose(normalize_images(images, mean=mean, std=std), ref, atol=1e-5)
    assert normalize_images(images, dtype=torch.bfloat16).dtype == torch.bfloat16
    with pytest.raises(TypeError):
        normalize_images(images.float())


@pytest.mark.parametrize(
    "override, fragment",
    [
        ({"mode": "sequential"}, "mode"),  # Literal: from_dict names the key
        ({"workers": -1}, "data.workers"),
        ({"min_scale": 1.5}, "data.min_scale"),
        ({"std": [0.2, 0.0, 0.2]}, "data.std"),
        ({"train": " "}, "data.train"),
        ({"shuffle_buffer": 0}, "data.shuffle_buffer"),
    ],
)
def test_config_errors_name_the_field(override: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
        from_dict(DataConfig, override)


def test_config_from_dict_coerces() -> None:
    cfg = from_dict(DataConfig, {"workers": "4", "mean": [0.5, 0.5, 0.5], "mode": "epoch"})
    assert cfg.workers == 4 and cfg.mean == (0.5, 0.5, 0.5) and cfg.mode == "epoch"


def test_bad_call_arguments_are_clear() -> None:
    with pytest.raises(ConfigError, match="rank"):
        _loader(DataConfig(workers=0), rank=2, world_size=2)
    with pytest.raises(ConfigError, match="stage"):
        _loader(DataConfig(workers=0), stage="clip")
    with pytest.raises(ConfigError, match="fewer than one global batch"):
        _loader(DataConfig(workers=0, synthetic_samples=5, mode="epoch"), micro_batch=4)


def test_min_scale_applies_to_every_stage_and_0_is_the_stages_recipe() -> None:
    from scaling.data.transforms import stage_crop

    assert stage_crop("mae", 16, DataConfig().min_scale).scale == (0.2, 1.0)
    assert stage_crop("wsp", 16, DataConfig().min_scale).scale == (0.08, 1.0)
    assert stage_crop("finetune", 16, 0.0).scale == (0.08, 1.0)
    assert stage_crop("wsp", 16, DataConfig(min_scale=0.35).min_scale).scale == (0.35, 1.0)  # was ignored
