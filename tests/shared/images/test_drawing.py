"""shared.images.drawing makes canvas-like PNGs: dark antialiased strokes on transparency."""
import io

import numpy as np
import pytest
from PIL import Image

from shared.images import drawing
from shared.images.upload import ImageLimits
from shared.images.ink import decode_ink
from testkit.drawings import sample_strokes

LIMITS = ImageLimits(4 * 1024 * 1024, 4096 * 4096, 8192)


def _rgba(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as img:
        assert img.format == "PNG"
        assert img.mode == "RGBA"
        return np.asarray(img)


def test_constants_match_the_page():
    assert drawing.CANVAS_SIZE == 280
    assert drawing.BRUSH_WIDTH == 18


def test_render_strokes_is_dark_ink_on_transparent():
    png = drawing.render_strokes([[(40, 140), (240, 140)]])
    arr = _rgba(png)
    assert arr.shape == (280, 280, 4)
    alpha = arr[..., 3]
    assert alpha[0, 0] == 0 and alpha[140, 20] == 0          # background is transparent
    assert alpha[140, 140] == 255                            # middle of the stroke is opaque
    assert tuple(arr[140, 140, :3]) == drawing.STROKE_RGB    # #111
    # Round caps: the stroke reaches brush/2 beyond its end points, not more.
    assert alpha[140, 40 - 8] > 0 and alpha[140, 40 - 11] == 0
    # Line width ~ 18 px; antialiased edge has partial coverage.
    column = alpha[:, 140].astype(int)
    assert 17 <= (column > 127).sum() <= 19
    assert ((column > 0) & (column < 255)).any()


def test_brush_width_and_size_are_honoured():
    thin = _rgba(drawing.render_strokes([[(20, 50), (80, 50)]], size=100, brush=4))[..., 3]
    thick = _rgba(drawing.render_strokes([[(20, 50), (80, 50)]], size=100, brush=20))[..., 3]
    assert thin.shape == (100, 100)
    assert 3 <= (thin[:, 50] > 127).sum() <= 5
    assert 19 <= (thick[:, 50] > 127).sum() <= 21


def test_single_point_stroke_is_a_dot():
    alpha = _rgba(drawing.render_strokes([[(100, 100)]]))[..., 3]
    ys, xs = np.nonzero(alpha > 127)
    assert 15 <= ys.max() - ys.min() + 1 <= 19
    assert 15 <= xs.max() - xs.min() + 1 <= 19


def test_decode_ink_reads_rendered_strokes_as_ink():
    ink = decode_ink(drawing.render_strokes(sample_strokes(7)), LIMITS)
    assert ink.shape == (280, 280)
    assert ink.max() == pytest.approx(1.0)
    assert ink[0, 0] == 0.0
    assert 0.02 < ink.mean() < 0.2


def test_pendigits_row_keeps_aspect_and_flips_y():
    # A vertical stroke from bottom (y=0) to top (y=100) at x 40..60, then a
    # short tick: drawn in the middle of the canvas, taller than wide.
    row = [50, 0, 50, 15, 50, 30, 50, 45, 50, 60, 50, 75, 50, 100, 40, 90]
    alpha = _rgba(drawing.render_pendigits_row(row))[..., 3]
    ys, xs = np.nonzero(alpha > 127)
    height, width = ys.max() - ys.min(), xs.max() - xs.min()
    assert height > 2.5 * width
    assert 140 <= height <= 200                  # margin: does not touch the edges
    assert ys.min() > 20 and ys.max() < 260
    # y points up in pendigits: the tick (x=40, y=90) is near the *top*.
    left = np.nonzero(alpha[:, : xs.min() + 10] > 127)[0]
    assert left.mean() < 140


def test_render_mnist_inverts_to_dark_on_transparent():
    image = np.zeros((28, 28), np.uint8)
    image[4:24, 12:16] = 255
    arr = _rgba(drawing.render_mnist(image))
    assert arr.shape == (280, 280, 4)
    assert arr[0, 0, 3] == 0                     # black background -> transparent
    assert arr[140, 140, 3] == 255               # white ink -> opaque dark
    assert arr[140, 140, :3].max() < 40
    ink = decode_ink(drawing.render_mnist(image), LIMITS)
    ys, xs = np.nonzero(ink > 0.5)
    assert 35 <= ys.min() <= 45 and 235 <= ys.max() <= 245
