"""Help images are stored as a small normalised PNG, never as the bytes a client sent.

Why: ``/helpdata`` used to keep an upload byte for byte, so a 28x28 PNG
followed by 3 MB of trailing bytes (or metadata chunks: text, EXIF, ICC
profiles) took 3 MB of disk per request, kept forever, and the bytes the
client chose also chose the image's id (its SHA-256). Now the image is
decoded (within the upload limits, checked from its header first) and
written again:

- grey, plus alpha if it had any (``L`` or ``LA``): what the ink map is made
  of (``shared.images.ink`` turns every image into grey or alpha before
  anything else, so nothing the model reads is lost);
- at most ``MAX_SIDE`` (the canvas, 280 pixels) a side: a larger image is
  box-reduced by a whole factor, as ``ink.reduced`` does before the features;
  a drawing from the page (280x280) keeps every pixel;
- with no chunk but the image's own: trailing bytes, text, EXIF, ICC
  profiles, gamma and resolution are dropped.

So a stored image is at most ``MAX_STORED_BYTES`` (an incompressible
280x280 grey+alpha image; a drawing is 2-6 KB), and the same pixels always
give the same bytes. Pillow only, no numpy: the web tier calls this.
"""
from __future__ import annotations

import io
import math

from PIL import Image

from shared.images.canvas import CANVAS_SIZE
from shared.images.upload import ImageLimits, ImageRejected, inspect

MAX_SIDE = CANVAS_SIZE
# Two channels of 280x280 at worst, plus the PNG row filters and zlib's framing.
MAX_STORED_BYTES = 2 * MAX_SIDE * MAX_SIDE + MAX_SIDE + 1024


def normalised_png(data: bytes, limits: ImageLimits) -> bytes:
    """``data`` (a PNG or JPEG within ``limits``) as a normalised PNG; raises ImageRejected."""
    inspect(data, limits)
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format == "JPEG" and max(img.size) > MAX_SIDE:
                img.draft("L", (MAX_SIDE, MAX_SIDE))  # decode at 1/2, 1/4 or 1/8 when it can
            img.load()
            img = _grey(img)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise ImageRejected("image data is truncated or corrupt", status=422) from None
    factor = math.ceil(max(img.size) / MAX_SIDE)
    if factor > 1:
        img = img.reduce(factor)
    clean = Image.frombytes(img.mode, img.size, img.tobytes())  # pixels only: no info, no chunks
    out = io.BytesIO()
    clean.save(out, format="PNG")  # zlib level 6: 1.6 ms for a drawing (optimize: 5 ms, 10% smaller)
    return out.getvalue()


def _grey(img: Image.Image) -> Image.Image:
    """The conversion ``ink.ink_from_image`` makes, so the ink map is the same one."""
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    return img.convert("LA" if has_alpha else "L")
