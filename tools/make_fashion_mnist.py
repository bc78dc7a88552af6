"""Regenerate the bundled labelled set (scaling/assets/fashion_mnist/) from the Fashion-MNIST IDX files.

Source: Fashion-MNIST (Xiao, Rasul, Vollgraf 2017; Zalando Research; MIT licence), as packaged by Debian
(`apt-get install dataset-fashion-mnist`: IDX files in /usr/share/datasets/fashion-mnist/), or the four
`*-idx?-ubyte.gz` files of https://github.com/zalandoresearch/fashion-mnist in any folder.

Subset rule (class-balanced, deterministic): for each class, a seeded permutation (numpy default_rng(SEED))
of that class's indices in the official split, first TRAIN_PER_CLASS of the official *train* split -> train/,
first VAL_PER_CLASS of the official *test* split -> val/. So val never shares an image with train.
Images stay 28x28, grey replicated to 3 channels (RGB JPEG), so the RGB code path serves them unchanged;
`scaling data write` (scaling/data/writer.py) makes the webdataset shards and `shards.json` manifests.

    python tools/make_fashion_mnist.py [IDX_DIR] [OUT_DIR]     # defaults: the Debian path, the asset folder
"""

from __future__ import annotations

import gzip
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from scaling.data.writer import WriteOptions, write_shards

# Class ids 0..9 of Fashion-MNIST; the id prefix keeps the folder (= manifest class) order equal to the ids.
CLASSES = ("t-shirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
           "ankle_boot")
TRAIN_PER_CLASS, VAL_PER_CLASS, SEED = 1000, 200, 0
# Quality 75 (Pillow's default): 99% of these JPEGs fit in 1024 bytes, i.e. two 512-byte tar blocks.
SHARD_SIZE, QUALITY = 5000, 75
DEFAULT_IDX = "/usr/share/datasets/fashion-mnist"
DEFAULT_OUT = str(Path(__file__).resolve().parents[1] / "scaling" / "assets" / "fashion_mnist")


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally gzipped) as a numpy array: uint8 [N, 28, 28] images or uint8 [N] labels."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find(idx_dir: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (idx_dir / name).is_file():
            return idx_dir / name
    raise SystemExit(f"{idx_dir}/{stem}[.gz] not found: `apt-get install dataset-fashion-mnist`, or give the "
                     "folder holding the four Fashion-MNIST IDX files.")


def class_balanced(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Indices: per class, the first `per_class` of a seeded permutation of that class's indices."""
    rng = np.random.default_rng(seed)
    picks = []
    for c in range(len(CLASSES)):
        members = np.flatnonzero(labels == c)
        if len(members) < per_class:
            raise SystemExit(f"class {c} has only {len(members)} images, {per_class} wanted.")
        picks.append(members[rng.permutation(len(members))[:per_class]])
    return np.concatenate(picks)


def write_split(images: np.ndarray, labels: np.ndarray, picks: np.ndarray, split: str, out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for c, name in enumerate(CLASSES):
            (Path(tmp) / f"{c}_{name}").mkdir()
        for i in picks:
            rgb = np.repeat(images[i][:, :, None], 3, axis=2)
            c = int(labels[i])
            # PNG is lossless; the writer re-encodes it once as an RGB JPEG at QUALITY.
            Image.fromarray(rgb, "RGB").save(Path(tmp) / f"{c}_{CLASSES[c]}" / f"{split}_{i:05d}.png")
        dest = out / ("train" if split == "train" else "val")
        if dest.exists():
            shutil.rmtree(dest)
        manifest = write_shards(tmp, str(dest), WriteOptions(shard_size=SHARD_SIZE, workers=1, seed=SEED,
                                                             quality=QUALITY), progress=False)
    data = json.loads(manifest.read_text())  # name the real source, not the temporary tree
    data["source"] = f"Fashion-MNIST {split} split, tools/make_fashion_mnist.py ({len(picks)} images)"
    manifest.write_text(json.dumps(data, indent=1))


def main(idx_dir: str = DEFAULT_IDX, out_dir: str = DEFAULT_OUT) -> None:
    src, out = Path(idx_dir), Path(out_dir)
    for split, stem, per_class in (("train", "train", TRAIN_PER_CLASS), ("test", "t10k", VAL_PER_CLASS)):
        images = read_idx(_find(src, f"{stem}-images-idx3-ubyte"))
        labels = read_idx(_find(src, f"{stem}-labels-idx1-ubyte"))
        write_split(images, labels, class_balanced(labels, per_class, SEED), split, out)
        print(f"{split}: {per_class * len(CLASSES)} images -> {out}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
