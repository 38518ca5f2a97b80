"""What the live drawing page produces, reproduced server-side.

The browser page draws on a ``CANVAS_SIZE`` square canvas with a round brush
``BRUSH_WIDTH`` CSS pixels wide, stroke colour ``#111`` on a transparent
background, and sends ``canvas.toDataURL('image/png')``. The functions here make
the same kind of PNG from stroke coordinates or from other digit data sets, so
tests, benchmarks and ``swagdigits eval`` exercise exactly what a browser sends.
"""
from __future__ import annotations

import io
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw

from shared.images.canvas import BRUSH_WIDTH, CANVAS_SIZE  # noqa: F401  (re-exported)
STROKE_RGB = (0x11, 0x11, 0x11)
# Drawing happens at this multiple of the canvas size and is then box-filtered
# down, which gives antialiased edges much like a browser canvas.
_SUPERSAMPLE = 4

Point = Sequence[float]


def _png_from_alpha(alpha: Image.Image) -> bytes:
    """Dark strokes whose coverage is ``alpha`` on a fully transparent background."""
    rgba = Image.new("RGBA", alpha.size, STROKE_RGB + (0,))
    rgba.putalpha(alpha)
    # Fully transparent pixels are stored as (0, 0, 0, 0) like a browser's.
    arr = np.asarray(rgba).copy()
    arr[arr[..., 3] == 0] = 0
    out = io.BytesIO()
    Image.fromarray(arr, "RGBA").save(out, format="PNG", compress_level=1)
    return out.getvalue()


def stroke_alpha(strokes: Iterable[Sequence[Point]], size: int = CANVAS_SIZE,
                 brush: float = BRUSH_WIDTH) -> Image.Image:
    """Antialiased coverage ("L" image, 255 = ink) of round-brush polylines."""
    k = _SUPERSAMPLE
    big = Image.new("L", (size * k, size * k), 0)
    draw = ImageDraw.Draw(big)
    width = max(1, int(round(brush * k)))
    radius = brush * k / 2.0
    for stroke in strokes:
        pts = [(float(x) * k, float(y) * k) for x, y in stroke]
        if not pts:
            continue
        if len(pts) > 1:
            draw.line(pts, fill=255, width=width)
        # Round caps and joins: a disc on every vertex.
        for x, y in pts:
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
    return big.resize((size, size), Image.BOX)


def render_strokes(strokes: Iterable[Sequence[Point]], size: int = CANVAS_SIZE,
                   brush: float = BRUSH_WIDTH) -> bytes:
    """PNG bytes of polylines (lists of (x, y) canvas pixels) drawn like the page does."""
    return _png_from_alpha(stroke_alpha(strokes, size, brush))


def pendigits_strokes(points16: Sequence[float], size: int = CANVAS_SIZE,
                      margin: float = 0.2) -> list[list[tuple[float, float]]]:
    """The 8 pen points (0..100, y up) of a pendigits row as one canvas polyline.

    The digit is placed the way a person fills a canvas: its larger side spans
    ``1 - 2 * margin`` of the canvas, aspect kept, centred.
    """
    pts = np.asarray(points16[:16], dtype=np.float64).reshape(8, 2)
    xs, ys = pts[:, 0], 100.0 - pts[:, 1]
    span = max(xs.max() - xs.min(), ys.max() - ys.min(), 1.0)
    scale = size * (1.0 - 2.0 * margin) / span
    cx, cy = (xs.max() + xs.min()) / 2.0, (ys.max() + ys.min()) / 2.0
    px = (xs - cx) * scale + size / 2.0
    py = (ys - cy) * scale + size / 2.0
    return [list(zip(px.tolist(), py.tolist()))]


def render_pendigits_row(points16: Sequence[float], size: int = CANVAS_SIZE,
                         brush: float = BRUSH_WIDTH, margin: float = 0.2) -> bytes:
    """PNG of a UCI pendigits sample drawn as one round-brush polyline."""
    return render_strokes(pendigits_strokes(points16, size, margin), size, brush)


def render_mnist(image28: np.ndarray, size: int = CANVAS_SIZE) -> bytes:
    """PNG of an MNIST digit (white on black) as a canvas would send it.

    Upscaled smoothly to the canvas size; the ink becomes dark strokes whose
    opacity is the MNIST intensity, on a transparent background.
    """
    img = Image.fromarray(np.asarray(image28, dtype=np.uint8), "L")
    alpha = img.resize((size, size), Image.BICUBIC)
    return _png_from_alpha(alpha)
