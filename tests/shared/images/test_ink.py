import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from shared.images.canvas import CANVAS_SIZE
from shared.images.upload import ImageLimits, ImageRejected
from shared.images.ink import decode_ink, ink_from_image
from shared.model.features import INK
from testkit.drawings import digit_png

LIMITS = ImageLimits(max_bytes=1 << 22, max_pixels=1 << 24, max_side=8192)


def encode(img: Image.Image, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def bar(mode, background, ink, size=100):
    img = Image.new(mode, (size, size), background)
    ImageDraw.Draw(img).rectangle([0.4 * size, 0.1 * size, 0.6 * size, 0.9 * size], fill=ink)
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
    assert err.value.status == 422


def enlarged(png: bytes, side: int, fmt: str = "PNG") -> bytes:
    """A page drawing scaled up: transparent PNG, or dark-on-white JPEG (a photo or scan)."""
    img = Image.open(io.BytesIO(png)).convert("RGBA").resize((side, side), Image.BILINEAR)
    if fmt == "JPEG":
        img = Image.alpha_composite(Image.new("RGBA", img.size, "white"), img).convert("RGB")
    return encode(img, fmt)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_large_image_is_brought_down_to_under_two_canvases_before_its_ink_is_computed(fmt):
    ink = decode_ink(enlarged(digit_png(7), 1024, fmt), LIMITS)
    assert CANVAS_SIZE <= max(ink.shape) < 2 * CANVAS_SIZE


def test_a_drawing_from_the_page_is_decoded_pixel_for_pixel():
    png = digit_png(7)
    ink = decode_ink(png, LIMITS)
    assert ink.shape == (CANVAS_SIZE, CANVAS_SIZE)
    np.testing.assert_array_equal(ink, ink_from_image(Image.open(io.BytesIO(png))))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_an_enlarged_drawing_gives_the_features_of_the_drawing(fmt):
    for digit in (1, 4, 7, 8):
        small = INK.transform(decode_ink(digit_png(digit), LIMITS))
        large = INK.transform(decode_ink(enlarged(digit_png(digit), 1024, fmt), LIMITS))
        assert np.corrcoef(small, large)[0, 1] > 0.95, digit


@pytest.mark.parametrize("mode", ["P", "1", "I;16", "LA"])
def test_large_images_of_any_mode_are_brought_down(mode):
    img = bar("L", 255, 0, size=1000).convert(mode)
    ink = decode_ink(encode(img), LIMITS)
    assert max(ink.shape) < 2 * CANVAS_SIZE
    assert ink[ink.shape[0] // 2, ink.shape[1] // 2] > 0.9 and ink[5, 5] < 0.05
