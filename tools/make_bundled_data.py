"""Regenerate the bundled demo data (scaling/assets/photos7/) from scikit-image's sample photos.

Seven public-domain / CC0 photos (see scaling/assets/photos7/README.md), 64 random crops each
(area 30-100%, any position, random flip), resized to 64x64 and saved as JPEG (quality 90) into a
class-per-folder tree; then `scaling data write` turns the tree into webdataset shards.
Needs `pip install scikit-image` (only for this script).

    python tools/make_bundled_data.py /tmp/photos7_tree
    scaling data write /tmp/photos7_tree scaling/assets/photos7 --shard-size 256
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

PHOTOS = ("astronaut", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry", "retina", "rocket")
CROPS_PER_PHOTO, SIZE, SEED = 64, 64, 0


def main(out: str) -> None:
    import skimage.data

    rng = np.random.default_rng(SEED)
    for name in PHOTOS:
        photo = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        w, h = photo.size
        folder = Path(out) / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(CROPS_PER_PHOTO):
            side = int(min(w, h) * np.sqrt(rng.uniform(0.3, 1.0)))
            x, y = rng.integers(0, w - side + 1), rng.integers(0, h - side + 1)
            crop = photo.crop((x, y, x + side, y + side)).resize((SIZE, SIZE), Image.BICUBIC)
            if rng.random() < 0.5:
                crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
            crop.save(folder / f"{name}_{i:03d}.jpg", quality=90)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "photos7_tree")
