import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from shared.images.upload import ImageLimits, ImageRejected
from shared.images.ink import decode_ink

LIMITS = ImageLimits(max_bytes=1 << 22, max_pixels=1 << 24, max_side=8192)


def encode(img: Image.Image, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def bar(mode, background, ink, size=100):
    img = Image.new(mode, (size, size), background)
    ImageDraw.Draw(img).rectangle([40, 10, 60, 90], fill=ink)
    return img


def assert_bar(ink: np.ndarray):
    assert ink.dtype == np.float32
    assert ink[50, 50] > 0.9, "the stroke must be ink"
    assert ink[5, 5] < 0.05, "the background must not be ink"


def test_canvas_png_dark_strokes_on_transparent_black_is_not_empty():
    # What canvas.toDataURL gives: RGBA, background (0,0,0,0), strokes (17,17,17,255).
    assert_bar(decode_ink(encode(bar("RGBA", (0, 0, 0, 0), (17, 17, 17, 255))), LIMITS))


def test_dark_on_light_and_light_on_dark_give_the_same_ink():
    dark_on_light = decode_ink(encode(bar("L", 255, 0)), LIMITS)
    light_on_dark = decode_ink(encode(bar("L", 0, 255)), LIMITS)
    assert_bar(dark_on_light)
    np.testing.assert_allclose(dark_on_light, light_on_dark, atol=1e-6)


def test_opaque_rgba_and_jpeg_use_luminance():
    assert_bar(decode_ink(encode(bar("RGBA", (255, 255, 255, 255), (0, 0, 0, 255))), LIMITS))
    assert_bar(decode_ink(encode(bar("RGB", "white", "black"), "JPEG"), LIMITS))


def test_truncated_png_is_a_422_not_a_crash():
    data = encode(bar("L", 255, 0))
    with pytest.raises(ImageRejected) as err:
        decode_ink(data[: len(data) // 2], LIMITS)
    assert err.value.status in (400, 422)
