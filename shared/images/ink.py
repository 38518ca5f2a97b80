"""Decoding an uploaded image into an ink map, whatever its polarity or alpha.

A browser canvas PNG is dark strokes on a *transparent* black background:
flattening it to grey naively gives an all-black picture. Scans and photos are
dark on light; MNIST-style images are light on dark. Everything downstream
(``shared.model.features``) wants one thing: a float32 array where 1.0 is ink and
0.0 is background.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from shared.images.upload import ImageLimits, ImageRejected, inspect

# An image counts as "drawn on a transparent background" when at least this
# share of its pixels is (nearly) transparent; its alpha is then the ink.
_TRANSPARENT_SHARE = 0.05


def decode_ink(data: bytes, limits: ImageLimits) -> np.ndarray:
    """Return the image as a float32 ink map in [0, 1] (1 = ink)."""
    inspect(data, limits)
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return ink_from_image(img)
    except ImageRejected:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise ImageRejected("image data is truncated or corrupt", status=422) from None


def ink_from_image(img: Image.Image) -> np.ndarray:
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("LA")
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255.0
        if np.mean(alpha < 0.1) >= _TRANSPARENT_SHARE:
            return alpha
        grey = np.asarray(rgba.getchannel("L"), dtype=np.float32)
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
