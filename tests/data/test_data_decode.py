"""Crop-aware decode against a full-decode reference; crop sampling against torchvision's rules."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from data_helpers import jpeg_bytes
from PIL import Image

from scaling.data import counter_rng
from scaling.data.decode import ImageError, decode_crop, image_size, scale_factor
from scaling.data.gpu_decode import decode_batch
from scaling.data.transforms import UNIFORMS_PER_SAMPLE, CropSpec, sample_box, soft_targets


def _photo(width: int, height: int, seed: int = 0) -> bytes:
    """A smooth, photo-like JPEG (low-frequency content, so downscaled decodes are comparable)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 32 + 2, width // 32 + 2, 3), dtype=np.uint8)
    im = Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=92)
    return buf.getvalue()


def _hwc(image: torch.Tensor) -> np.ndarray:
    return image.permute(1, 2, 0).numpy().astype(int)


def _reference(data: bytes, box: tuple[int, int, int, int], size: int, flip: bool) -> np.ndarray:
    left, top, w, h = box
    im = (
        Image.open(io.BytesIO(data))
        .convert("RGB")
        .resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + w, top + h))
    )
    arr = np.asarray(im)
    return arr[:, ::-1] if flip else arr


@pytest.mark.parametrize(
    "box, factor", [((0, 0, 640, 480), 2), ((100, 40, 300, 260), 1), ((0, 0, 640, 480), 2)]
)
def test_decode_crop_matches_full_decode(box: tuple[int, int, int, int], factor: int) -> None:
    data = _photo(640, 480)
    assert scale_factor(box[2], box[3], 224) == factor
    out = torch.zeros((3, 224, 224), dtype=torch.uint8)
    decode_crop(data, image_size(data), box, False, out)
    ref = _reference(data, box, 224, False)
    assert np.abs(_hwc(out) - ref).mean() < 2.5  # DCT-domain downscale vs pixel-domain: close


def test_scaled_decode_is_used_and_flip_mirrors() -> None:
    data = _photo(1600, 1200, seed=1)
    box = (0, 0, 1600, 1200)
    assert scale_factor(1600, 1200, 128) == 8
    out, flipped = (
        torch.zeros((3, 128, 128), dtype=torch.uint8),
        torch.zeros((3, 128, 128), dtype=torch.uint8),
    )
    decode_crop(data, image_size(data), box, False, out)
    decode_crop(data, image_size(data), box, True, flipped)
    assert torch.equal(out.flip(-1), flipped)
    assert np.abs(_hwc(out) - _reference(data, box, 128, False)).mean() < 3.0


def test_undecodable_bytes_raise_image_error() -> None:
    good = jpeg_bytes(1)
    out = torch.zeros((3, 8, 8), dtype=torch.uint8)
    with pytest.raises(ImageError):
        decode_crop(good[: len(good) // 2], image_size(good), (0, 0, 40, 32), False, out)
    with pytest.raises(ImageError):
        image_size(b"GIF89a not really")


def test_non_jpeg_and_grayscale_decode() -> None:
    buf = io.BytesIO()
    Image.new("L", (50, 40), 77).save(buf, "JPEG")
    png = io.BytesIO()
    Image.new("RGBA", (50, 40), (10, 200, 30, 255)).save(png, "PNG")
    for data, rgb in ((buf.getvalue(), (77, 77, 77)), (png.getvalue(), (10, 200, 30))):
        out = torch.zeros((3, 16, 16), dtype=torch.uint8)
        decode_crop(data, image_size(data), (5, 5, 30, 30), False, out)
        assert np.abs(_hwc(out).reshape(-1, 3).mean(0) - rgb).max() < 2


def test_sample_box_follows_random_resized_crop() -> None:
    spec = CropSpec(size=224, scale=(0.2, 1.0))
    u = counter_rng.uniforms(123, np.arange(2000), UNIFORMS_PER_SAMPLE)
    boxes = np.array([sample_box(spec, 480, 640, row)[:4] for row in u])
    left, top, w, h = boxes.T
    assert (left >= 0).all() and (top >= 0).all() and (left + w <= 640).all() and (top + h <= 480).all()
    area = w * h / (640 * 480)
    assert area.min() > 0.19 and area.max() <= 1.0 + 1e-9
    aspect = w / h
    assert aspect.min() > 3 / 4 - 0.02 and aspect.max() < 4 / 3 + 0.02
    flips = [sample_box(spec, 480, 640, row)[4] for row in u]
    assert 0.4 < np.mean(flips) < 0.6
    # An impossible aspect (a 10:1 strip) takes torchvision's centre fallback.
    assert sample_box(spec, 10, 1000, np.full(UNIFORMS_PER_SAMPLE, 0.99))[:4] == (493, 0, 13, 10)


def test_counter_rng_is_uniform_and_keyed() -> None:
    a = counter_rng.uniforms(1, np.arange(100_000))[:, 0]
    assert abs(a.mean() - 0.5) < 0.01 and a.min() >= 0 and a.max() < 1
    assert not np.array_equal(a[:10], counter_rng.uniforms(2, np.arange(10))[:, 0])
    assert np.array_equal(
        counter_rng.uniforms(1, np.array([7]))[0], counter_rng.uniforms(1, np.arange(10))[7]
    )
    perm = counter_rng.permutation(5, 1000)
    assert sorted(perm) == list(range(1000)) and not np.array_equal(perm, np.arange(1000))


def test_soft_targets() -> None:
    labels = torch.tensor([[2, -1, -1], [0, 1, 1], [3, 1, 0]])
    t = soft_targets(labels, 4)
    assert torch.allclose(t.sum(1), torch.ones(3))
    assert t[1].tolist() == [0.5, 0.5, 0.0, 0.0] and t[2, 3] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="num_classes"):
        soft_targets(torch.tensor([[5]]), 4)


def test_gpu_decode_path_on_cpu_matches_cpu_decode() -> None:
    """The GPU input mode's code (torchvision decode_jpeg + crop + antialiased resize) run on the CPU."""
    datas = [_photo(320, 240, seed=s) for s in range(3)] + [b"\xff\xd8\xff" + bytes(200)]  # last one broken
    boxes = torch.tensor([[0, 0, 320, 240], [40, 30, 200, 150], [10, 0, 100, 100], [0, 0, 10, 10]])
    flips = torch.tensor([False, True, False, False])
    jpegs = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in datas]
    images, bad = decode_batch(jpegs, boxes, flips, 64, "cpu")
    assert images.shape == (4, 3, 64, 64) and images.dtype == torch.uint8 and bad == [3]
    assert torch.equal(images[3], images[0])  # the broken slot takes the next good image, cyclically
    for i in range(3):
        ref = torch.zeros((3, 64, 64), dtype=torch.uint8)
        decode_crop(datas[i], (240, 320), tuple(boxes[i].tolist()), bool(flips[i]), ref)
        diff = (images[i].int() - ref.int()).abs().float().mean()
        assert diff < 4.0, i
    assert math.isfinite(float(images.float().mean()))


def test_pillow_fallback_without_simplejpeg(monkeypatch: pytest.MonkeyPatch) -> None:
    """Machines without simplejpeg (e.g. the GPU box) decode through Pillow's draft(): same crop."""
    import scaling.data.decode as decode

    data = _photo(800, 600, seed=3)
    box = (50, 40, 600, 500)
    fast, slow = torch.zeros((3, 96, 96), dtype=torch.uint8), torch.zeros((3, 96, 96), dtype=torch.uint8)
    decode_crop(data, image_size(data), box, True, fast)
    monkeypatch.setattr(decode, "simplejpeg", None)
    assert decode.image_size(data) == (600, 800)
    decode.decode_crop(data, decode.image_size(data), box, True, slow)
    assert (fast.int() - slow.int()).abs().float().mean() < 2.0
