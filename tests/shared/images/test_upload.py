import base64
import io

import pytest
from PIL import Image

from shared.images.upload import ImageLimits, ImageRejected, bytes_from_text, inspect

LIMITS = ImageLimits(max_bytes=100_000, max_pixels=1000 * 1000, max_side=2000)


def png(size=(28, 28), mode="L") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, "PNG")
    return buf.getvalue()


def test_data_url_and_bare_base64_give_the_same_bytes():
    data = png()
    b64 = base64.b64encode(data).decode()
    assert bytes_from_text("data:image/png;base64," + b64, LIMITS.max_bytes) == data
    assert bytes_from_text(b64, LIMITS.max_bytes) == data


@pytest.mark.parametrize("text, message", [
    ("", "empty"), (42, "must be a string"), ("not base64!!", "not valid base64"),
    ("data:image/png,rawtext", "base64"),
])
def test_bad_text_is_rejected_with_400(text, message):
    with pytest.raises(ImageRejected, match=message) as err:
        bytes_from_text(text, LIMITS.max_bytes)
    assert err.value.status == 400


def test_oversized_base64_is_refused_before_decoding():
    with pytest.raises(ImageRejected) as err:
        bytes_from_text("A" * (LIMITS.max_bytes * 2), LIMITS.max_bytes)
    assert err.value.status == 413


def test_png_and_jpeg_headers_are_read():
    buf = io.BytesIO()
    Image.new("RGB", (50, 40)).save(buf, "JPEG")
    assert inspect(buf.getvalue(), LIMITS).format == "JPEG"
    info = inspect(png((30, 20)), LIMITS)
    assert (info.format, info.width, info.height) == ("PNG", 30, 20)


def test_other_formats_and_garbage_get_415():
    buf = io.BytesIO()
    Image.new("RGB", (10, 10)).save(buf, "GIF")
    for data in (buf.getvalue(), b"hello world, not an image"):
        with pytest.raises(ImageRejected) as err:
            inspect(data, LIMITS)
        assert err.value.status == 415


def test_huge_dimensions_in_a_tiny_png_are_refused_from_the_header():
    bomb = png((3000, 3000), mode="1")  # a few KB on the wire, 9 MP decoded
    assert len(bomb) < LIMITS.max_bytes
    with pytest.raises(ImageRejected) as err:
        inspect(bomb, LIMITS)
    assert err.value.status == 413 and "3000x3000" in err.value.message
