"""A class-per-folder JPEG tree cut from the bundled Fashion-MNIST val shard, for the tests of tests/eval and
tests/engine (a module at the tests root: the root conftest puts this folder on sys.path for every test)."""

from __future__ import annotations

from pathlib import Path

VAL = str(Path(__file__).resolve().parents[1] / "scaling" / "assets" / "fashion_mnist" / "val")


def class_tree(root: Path, per_class: int, skip: int = 0) -> str:
    """`per_class` JPEGs per class from the bundled val shard (after `skip` of each), under root/CLASS/."""
    from scaling.data.eval_set import EvalSet

    seen: dict[int, int] = {}
    data = EvalSet(VAL)
    for s in data.read():
        seen[s.label] = seen.get(s.label, 0) + 1
        if skip < seen[s.label] <= skip + per_class:
            (root / data.classes[s.label]).mkdir(parents=True, exist_ok=True)
            (root / data.classes[s.label] / f"{s.key}.jpg").write_bytes(s.image)
    return str(root)
