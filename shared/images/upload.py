"""Turning what a client sends into trusted image bytes, cheaply.

The web tier calls this on every request before anything is queued, so it only
reads the image header (format and size) and never decodes pixels: a bad or
hostile upload is refused with a clear 4xx while costing almost nothing.
Full decoding happens in the worker (``shared.images.ink``).
"""
from __future__ import annotations

import base64
import binascii
import io
import re
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

ACCEPTED_FORMATS = ("PNG", "JPEG")
_DATA_URL = re.compile(r"^data:(?P<mime>[\w/+.-]*)(?:;[\w=.-]+)*?(?P<b64>;base64)?,", re.I)


class ImageRejected(ValueError):
    """The client sent something that is not an acceptable image; ``status`` is the HTTP code."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int
    max_pixels: int
    max_side: int

    @classmethod
    def from_config(cls, config) -> "ImageLimits":
        return cls(config.max_upload_bytes, config.max_image_pixels, config.max_image_side)


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int


def bytes_from_text(text: object, max_bytes: int) -> bytes:
    """Decode a data URL (``data:image/png;base64,...``) or bare base64 string."""
    if not isinstance(text, str):
        raise ImageRejected("'image' must be a string holding a data URL or base64")
    text = text.strip()
    if not text:
        raise ImageRejected("'image' is empty")
    match = _DATA_URL.match(text)
    if match:
        if not match.group("b64"):
            raise ImageRejected("data URL must be base64-encoded")
        text = text[match.end():]
    # base64 grows data by 4/3: refuse oversized text before decoding it.
    if len(text) > max_bytes * 4 // 3 + 4:
        raise ImageRejected(f"image is larger than {max_bytes} bytes", status=413)
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ImageRejected("'image' is not valid base64") from None
    if not data:
        raise ImageRejected("'image' is empty")
    return data


def inspect(data: bytes, limits: ImageLimits) -> ImageInfo:
    """Check size, format and dimensions from the header alone."""
    if not data:
        raise ImageRejected("image is empty")
    if len(data) > limits.max_bytes:
        raise ImageRejected(f"image is larger than {limits.max_bytes} bytes", status=413)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                fmt, (width, height) = img.format, img.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow refuses the header's pixel count before we can compare it with ours.
        raise ImageRejected(f"image has too many pixels; at most {limits.max_pixels} are accepted",
                            status=413) from None
    except UnidentifiedImageError:
        raise ImageRejected("not a PNG or JPEG image", status=415) from None
    except (OSError, ValueError, SyntaxError):
        raise ImageRejected("image header could not be read") from None
    if fmt not in ACCEPTED_FORMATS:
        raise ImageRejected(f"{fmt} images are not accepted; send PNG or JPEG", status=415)
    if width < 1 or height < 1:
        raise ImageRejected("image has no pixels")
    if width > limits.max_side or height > limits.max_side or width * height > limits.max_pixels:
        raise ImageRejected(
            f"image is {width}x{height}; at most {limits.max_side} pixels a side and "
            f"{limits.max_pixels} pixels in all are accepted", status=413)
    return ImageInfo(fmt, width, height)
