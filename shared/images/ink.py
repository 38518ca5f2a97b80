"""Decoding an uploaded image into an ink map, whatever its polarity or alpha.

A browser canvas PNG is dark strokes on a *transparent* black background:
flattening it to grey naively gives an all-black picture. Scans and photos are
dark on light; MNIST-style images are light on dark. Everything downstream
(``shared.model.features``) wants one thing: a float32 array where 1.0 is ink and
0.0 is background.

Cost is bounded before the pixels are worked on: an image at least twice the
canvas's side (``CANVAS_SIZE``) is brought down by a whole factor to between
one and two canvases, a JPEG while it is decoded (``Image.draft``: the DCT
scales by 1/2, 1/4 or 1/8 and decodes only that), a PNG right after (PNG has
no reduced decoding; ``Image.reduce`` averages boxes). The features crop the
ink and shrink it to a few dozen pixels anyway, so nothing they use is lost,
and a drawing from the page (280x280) is decoded pixel for pixel as before.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from shared.images.canvas import CANVAS_SIZE
from shared.images.upload import ImageLimits, ImageRejected, inspect

# An image counts as "drawn on a transparent background" when at least this
# share of its pixels is (nearly) transparent; its alpha is then the ink.
_TRANSPARENT_SHARE = 0.05
# Longest side an image is brought down towards before its ink is computed.
WORK_SIDE = CANVAS_SIZE
# Modes Image.reduce averages directly; others are converted first (palette, 1-bit, 16-bit, CMYK).
_REDUCIBLE = ("L", "LA", "RGB", "RGBA")


def decode_ink(data: bytes, limits: ImageLimits) -> np.ndarray:
    """Return the image as a float32 ink map in [0, 1] (1 = ink)."""
    inspect(data, limits)
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format == "JPEG" and max(img.size) >= 2 * WORK_SIDE:
                img.draft("L", (WORK_SIDE, WORK_SIDE))  # grey is all the ink needs
            img.load()
            return ink_from_image(reduced(img))
    except ImageRejected:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise ImageRejected("image data is truncated or corrupt", status=422) from None


def reduced(img: Image.Image, side: int = WORK_SIDE) -> Image.Image:
    """``img`` shrunk by the largest whole factor that keeps its longest side at least ``side``."""
    factor = max(img.size) // side
    if factor < 2:
        return img
    if img.mode not in _REDUCIBLE:
        img = img.convert("RGBA" if _has_alpha(img) else "L")
    return img.reduce(factor)


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)


def ink_from_image(img: Image.Image) -> np.ndarray:
    if _has_alpha(img):
        # The page's PNG is RGBA: its alpha is read as is (converting to LA first cost
        # a quarter of a millisecond per drawing), and grey only when it is needed.
        with_alpha = img if img.mode in ("RGBA", "LA") else img.convert("LA")
        alpha = np.asarray(with_alpha.getchannel("A"), dtype=np.float32) / 255.0
        if np.mean(alpha < 0.1) >= _TRANSPARENT_SHARE:
            return alpha
        la = with_alpha if with_alpha.mode == "LA" else with_alpha.convert("LA")
        grey = np.asarray(la.getchannel("L"), dtype=np.float32)
        # Opaque enough: blend on white so semi-transparent edges stay faint.
        grey = grey * alpha + 255.0 * (1.0 - alpha)
    else:
        grey = np.asarray(img.convert("L"), dtype=np.float32)
    return _ink_from_grey(grey)


def _ink_from_grey(grey: np.ndarray) -> np.ndarray:
    """Background is whatever the border mostly is; ink is the distance from it."""
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    background = float(np.median(border))
    if background >= 128:
        ink = (background - grey) / max(background, 1.0)
    else:
        ink = (grey - background) / max(255.0 - background, 1.0)
    return np.clip(ink, 0.0, 1.0).astype(np.float32, copy=False)
