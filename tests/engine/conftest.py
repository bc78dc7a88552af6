"""Fixtures of the engine tests."""

import pytest
from train_helpers import REPO


@pytest.fixture
def tiny_mae() -> str:
    return str(REPO / "configs" / "tiny" / "mae.yaml")


@pytest.fixture
def tiny_wsp() -> str:
    return str(REPO / "configs" / "tiny" / "wsp.yaml")
