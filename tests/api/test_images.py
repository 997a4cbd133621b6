"""Image decoding in the service (api.images.decode_image): 16-bit images scaled, transparency over white."""

from __future__ import annotations

import numpy as np
from PIL import Image

from api.images import decode_image
from tests.support.images import encode


def test_16_bit_and_alpha_decode_to_the_right_pixels():
    gray = np.arange(0, 65536, 257, dtype=np.uint16).reshape(16, 16)  # 0..65535 in 256 steps
    out = np.asarray(
        decode_image(encode(Image.fromarray(gray), "PNG"), allowed_formats=["PNG"], max_pixels=10**6).image
    )
    assert out.dtype == np.uint8 and out.shape == (16, 16, 3)
    np.testing.assert_array_equal(out[..., 0], np.arange(256, dtype=np.uint8).reshape(16, 16))
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:2, ..., 3] = 255  # top half opaque red, bottom half transparent
    out = np.asarray(
        decode_image(encode(Image.fromarray(rgba, "RGBA"), "PNG"), allowed_formats=["PNG"], max_pixels=10**6).image
    )
    assert out[0, 0].tolist() == [200, 0, 0] and out[3, 3].tolist() == [255, 255, 255]  # transparent -> white
