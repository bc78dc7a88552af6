"""Fixtures of the data tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_helpers import jpeg_bytes


@pytest.fixture
def make_images(tmp_path: Path):
    """Folder tree of real JPEGs, one sub-folder per class: make_images(per_class=[5, 3, 4])."""

    def make(per_class: list[int], root: Path | None = None) -> Path:
        root = root or tmp_path / "images"
        index = 0
        for c, n in enumerate(per_class):
            folder = root / f"class_{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for _ in range(n):
                (folder / f"img {index}.jpg").write_bytes(jpeg_bytes(index))
                index += 1
        return root

    return make
