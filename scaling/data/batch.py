"""Batch producers: turn the B items a lane picked into the tensors a worker hands over.

CpuBatch decodes and crops in the worker (uint8 [B, 3, S, S]); GpuBatch only reads headers and picks crops,
leaving decode to nvJPEG in the training process (gpu_decode.py); SyntheticBatch renders from indices.
`put(i, item, u)` fills slot i (raising ImageError for undecodable bytes, so the lane can substitute);
`finish()` returns the batch's tensors and readies the buffers for the next batch.
"""

from __future__ import annotations

import numpy as np
import torch

from scaling.data.decode import decode_crop, image_size, is_jpeg
from scaling.data.reader import Item
from scaling.data.synthetic import SyntheticImages
from scaling.data.transforms import CropSpec, sample_box


class CpuBatch:
    def __init__(self, spec: CropSpec, micro_batch: int, interpolation: str = "bilinear") -> None:
        self.spec, self.micro_batch, self.interpolation = spec, micro_batch, interpolation
        self._new()

    def _new(self) -> None:
        self.images = torch.empty((self.micro_batch, 3, self.spec.size, self.spec.size), dtype=torch.uint8)

    def put(self, i: int, item: Item, u: np.ndarray) -> None:
        assert item.image is not None
        h, w = image_size(item.image)
        left, top, cw, ch, flip = sample_box(self.spec, h, w, u)
        decode_crop(item.image, (h, w), (left, top, cw, ch), flip, self.images[i], self.interpolation)

    def finish(self) -> dict[str, torch.Tensor]:
        out = {"image": self.images}  # uint8 [B, 3, S, S]; a fresh buffer for the next batch
        self._new()
        return out


class GpuBatch:
    """Encoded JPEG bytes + crop boxes; other formats (PNG...) are decoded here, as nvJPEG cannot."""

    def __init__(self, spec: CropSpec, micro_batch: int, interpolation: str = "bilinear") -> None:
        self.spec = spec
        self.cpu = CpuBatch(spec, micro_batch, interpolation)
        self._reset(micro_batch)

    def _reset(self, b: int) -> None:
        self.jpeg: list[bytes] = [b""] * b
        self.box = np.zeros((b, 4), dtype=np.int64)  # (left, top, w, h) in source pixels
        self.flip = np.zeros(b, dtype=bool)
        self.pre_mask = np.zeros(b, dtype=bool)  # slots already decoded on the CPU

    def put(self, i: int, item: Item, u: np.ndarray) -> None:
        assert item.image is not None
        if not is_jpeg(item.image):
            self.cpu.put(i, item, u)
            self.pre_mask[i] = True
            return
        h, w = image_size(item.image)
        left, top, cw, ch, flip = sample_box(self.spec, h, w, u)
        self.jpeg[i], self.box[i], self.flip[i], self.pre_mask[i] = (
            item.image,
            (left, top, cw, ch),
            flip,
            False,
        )

    def finish(self) -> dict[str, object]:
        out: dict[str, object] = {
            "jpeg": [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in self.jpeg],
            "box": torch.from_numpy(self.box.copy()),
            "flip": torch.from_numpy(self.flip.copy()),
            "pre_mask": torch.from_numpy(self.pre_mask.copy()),
        }
        if self.pre_mask.any():
            out["pre"] = self.cpu.finish()["image"]
        self._reset(len(self.jpeg))
        return out


class SyntheticBatch:
    def __init__(self, images: SyntheticImages, micro_batch: int) -> None:
        self.images = images
        self.index = np.zeros(micro_batch, dtype=np.int64)

    def put(self, i: int, item: Item, u: np.ndarray) -> None:
        self.index[i] = item.index

    def finish(self) -> dict[str, torch.Tensor]:
        return {"image": torch.from_numpy(self.images.render(self.index))}  # uint8 [B, 3, S, S]
