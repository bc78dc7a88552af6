"""Fixtures of the evaluation tests."""

from eval_helpers import micro_features  # noqa: F401 - the session fixture
