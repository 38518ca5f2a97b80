"""Help images re-encoded as a small normalised PNG: what is kept, what is dropped, the bound."""
import io

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from shared.images.ink import decode_ink
from shared.images.normalise import MAX_SIDE, MAX_STORED_BYTES, normalised_png
from shared.images.upload import ImageLimits, ImageRejected
from testkit.drawings import digit_png

LIMITS = ImageLimits(max_bytes=8 * 1024 * 1024, max_pixels=1024 * 1024, max_side=2048)


def _png(img: Image.Image, **kwargs) -> bytes:
    out = io.BytesIO()
    img.save(out, format="PNG", **kwargs)
    return out.getvalue()


def _chunks(png: bytes) -> list[bytes]:
    names, pos = [], 8
    while pos < len(png):
        length = int.from_bytes(png[pos:pos + 4], "big")
        names.append(png[pos + 4:pos + 8])
        pos += 12 + length
    return names


def test_a_page_drawing_keeps_every_pixel_the_model_reads():
    sent = digit_png(4)
    stored = normalised_png(sent, LIMITS)
    assert Image.open(io.BytesIO(stored)).mode == "LA" and len(stored) < len(sent)
    assert np.array_equal(decode_ink(stored, LIMITS), decode_ink(sent, LIMITS))


def test_trailing_bytes_and_metadata_chunks_are_dropped():
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "x" * 50_000)
    sent = _png(Image.new("L", (28, 28), 255), pnginfo=info, dpi=(300, 300)) + b"\0" * 3_000_000
    stored = normalised_png(sent, LIMITS)
    assert _chunks(stored) == [b"IHDR", b"IDAT", b"IEND"]
    assert len(stored) < 200


def test_the_same_pixels_give_the_same_bytes_whatever_was_appended():
    base = digit_png(7)
    assert normalised_png(base, LIMITS) == normalised_png(base + b"tail", LIMITS)


@pytest.mark.parametrize("side", [281, 700, 1024])
def test_any_admitted_image_is_at_most_the_canvas_and_the_byte_bound(side):
    noise = np.random.default_rng(side).integers(0, 256, (side, side, 4), dtype=np.uint8)
    stored = normalised_png(_png(Image.fromarray(noise, "RGBA")), LIMITS)
    img = Image.open(io.BytesIO(stored))
    assert max(img.size) <= MAX_SIDE and len(stored) <= MAX_STORED_BYTES


def test_a_large_jpeg_becomes_a_small_grey_png_with_the_same_digit():
    drawing = Image.open(io.BytesIO(digit_png(2))).convert("RGBA")
    paper = Image.new("RGB", drawing.size, "white")
    paper.paste(drawing, mask=drawing)
    out = io.BytesIO()
    paper.resize((1024, 1024)).save(out, format="JPEG", quality=90)
    stored = normalised_png(out.getvalue(), LIMITS)
    img = Image.open(io.BytesIO(stored))
    assert img.format == "PNG" and img.mode == "L" and max(img.size) <= MAX_SIDE


def test_corrupt_or_oversized_images_are_refused():
    with pytest.raises(ImageRejected) as corrupt:
        normalised_png(digit_png(1)[:200], LIMITS)
    assert corrupt.value.status == 422
    with pytest.raises(ImageRejected) as big:
        normalised_png(_png(Image.new("L", (2000, 2000))), LIMITS)
    assert big.value.status == 413
