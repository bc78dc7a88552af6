"""Decode only what a crop needs: JPEG DCT scaling, then one uint8 resize straight from the crop box.

The crop box is chosen from the header's size first (transforms.sample_box). The JPEG is then decoded at
the smallest scale 1/f (f in 8, 4, 2, 1) that still leaves the box at least `size` pixels on each side, so
the decoder's inverse DCT, upsampling and colour conversion run on up to 64x fewer pixels, and the resize
that follows shrinks by less than 2x. Only power-of-two factors are used: libjpeg-turbo's other M/8 scales
have no SIMD path and decode slower than full size (measured here: 3/8, 5/8..7/8 took 1.0-1.8x the full
decode of a 1000x800 JPEG, while 1/2 took 0.8x and 1/8 0.65x). Entropy decoding is paid in full at any scale.

Pure functions of (bytes, box, flip) that import only numpy, Pillow and torch (simplejpeg if present), so
benchmarks/gpu_decode.py can load this file on a machine without the rest of the toolkit.
"""

from __future__ import annotations

import io
import math
import struct

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

try:  # libjpeg-turbo with DCT scaling; Pillow's draft() (1/2, 1/4, 1/8) is the fallback
    import simplejpeg
except ImportError:  # pragma: no cover - exercised on machines without simplejpeg
    simplejpeg = None

DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    IndexError,
    struct.error,
    ZeroDivisionError,
    Image.DecompressionBombError,
)


class ImageError(ValueError):
    """The bytes are not a decodable image."""


def is_jpeg(data: bytes) -> bool:
    return data[:3] == b"\xff\xd8\xff"


def image_size(data: bytes) -> tuple[int, int]:
    """(height, width) from the header only."""
    try:
        if simplejpeg is not None and is_jpeg(data):
            try:
                h, w, _, _ = simplejpeg.decode_jpeg_header(data)
                return int(h), int(w)
            except ValueError:
                pass  # e.g. CMYK or arithmetic-coded: Pillow may still read it
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
        if h < 1 or w < 1:
            raise ImageError(f"image header says {w}x{h}")
        return h, w
    except DECODE_ERRORS as e:
        raise ImageError(f"unreadable image header: {e}") from e


def scale_factor(crop_w: int, crop_h: int, size: int) -> int:
    """Largest f in (8, 4, 2, 1) with the crop still >= size px on both sides after decoding at 1/f."""
    for f in (8, 4, 2):
        if crop_w >= size * f and crop_h >= size * f:
            return f
    return 1


def _decode_scaled(data: bytes, height: int, width: int, f: int) -> np.ndarray:
    """The whole image decoded at (about) 1/f of its size: uint8 [h', w', 3], C-contiguous."""
    if simplejpeg is not None and is_jpeg(data):
        try:
            # min_height/min_width pick libjpeg-turbo's scale 1/f exactly (see module doc for why only 2^k).
            return simplejpeg.decode_jpeg(
                data, colorspace="RGB", min_height=math.ceil(height / f), min_width=math.ceil(width / f)
            )
        except ValueError:
            pass  # CMYK, 12-bit, arithmetic coding...: Pillow handles more variants
    with Image.open(io.BytesIO(data)) as im:
        if f > 1 and im.format == "JPEG":
            im.draft("RGB", (math.ceil(width / f), math.ceil(height / f)))
        return np.array(im.convert("RGB"))  # writable: torch.from_numpy warns on read-only arrays


def decode_crop(
    data: bytes,
    size_hw: tuple[int, int],
    box: tuple[int, int, int, int],
    flip: bool,
    out: torch.Tensor,
    interpolation: str = "bilinear",
) -> None:
    """Write crop `box` = (left, top, w, h) of the image, resized to out's [S, S] and maybe mirrored, into
    `out` (uint8 [3, S, S], e.g. one row of a batch). Raises ImageError on undecodable bytes.

    The resize is torch's uint8 antialiased kernel (AVX2 on x86): same pixels as Pillow's resize to within
    rounding, about 4x faster here, and it writes channel-first output without a strided numpy copy.
    """
    height, width = size_hw
    left, top, cw, ch = box
    size = out.shape[-1]
    try:
        arr = _decode_scaled(data, height, width, scale_factor(cw, ch, size))
    except DECODE_ERRORS as e:
        raise ImageError(f"undecodable image: {e}") from e
    sy, sx = arr.shape[0] / height, arr.shape[1] / width
    # The box at the decoded scale, on whole pixels (off by < 1 decoded pixel: immaterial for a random crop).
    x0 = min(int(round(left * sx)), arr.shape[1] - 1)
    y0 = min(int(round(top * sy)), arr.shape[0] - 1)
    x1 = max(x0 + 1, min(int(round((left + cw) * sx)), arr.shape[1]))
    y1 = max(y0 + 1, min(int(round((top + ch) * sy)), arr.shape[0]))
    crop = torch.from_numpy(arr)[y0:y1, x0:x1].permute(2, 0, 1).unsqueeze(0)  # [1, 3, h, w] view, HWC memory
    small = F.interpolate(crop, size=(out.shape[-2], size), mode=interpolation, antialias=True)[0]
    out.copy_(small.flip(-1) if flip else small)
