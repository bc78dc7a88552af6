"""Shared pieces of the evaluation tests (a module of its own, not conftest, so `from eval_helpers import ...` is
unambiguous next to tests/engine/conftest.py): the bundled Fashion-MNIST subset and the features of a fixed
random vit_micro_patch4 on it, extracted once per test session (seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fmnist_tree import class_tree  # noqa: F401 (the eval tests import it from here)

REPO = Path(__file__).resolve().parents[2]
FMNIST = REPO / "scaling" / "assets" / "fashion_mnist"
TRAIN, VAL = str(FMNIST / "train"), str(FMNIST / "val")
TRAIN_SAMPLES = 2000  # the first 2,000 of the (write-time shuffled) train shards: about 200 per class


@pytest.fixture(scope="session")
def micro_features(tmp_path_factory):
    from scaling.data.eval_set import EvalSet, EvalTransform
    from scaling.eval.encoder import load_encoder
    from scaling.eval.features import extract

    cache = tmp_path_factory.mktemp("features")
    enc = load_encoder("random:vit_micro_patch4")
    transform = EvalTransform(enc.model.spec.img_size)
    train = extract(enc, EvalSet(TRAIN), transform, cache_dir=cache, limit=TRAIN_SAMPLES)
    val = extract(enc, EvalSet(VAL), transform, cache_dir=cache)
    return train, val, cache
