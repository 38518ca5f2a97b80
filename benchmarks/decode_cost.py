"""What one image costs a predict worker to decode and featurise, by size and format.

    .venv/bin/python benchmarks/decode_cost.py [--rounds N]

Prints milliseconds (median of N rounds) of ``decode_ink`` alone and of
``decode_ink`` + the serving feature pipeline for: a drawing from the page
(280x280 transparent PNG), the same drawing enlarged to 1024x1024 (the
largest image admitted by default) as PNG and JPEG, and the 4096x4096
transparent PNG the hostile-user review sent (admitted before the pixel cap
was lowered). Limits are passed wide open so every image is decoded: this
measures the worker's cost, not the web tier's refusal.
"""
from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image  # noqa: E402

from shared.images.ink import decode_ink  # noqa: E402
from shared.images.upload import ImageLimits  # noqa: E402
from shared.model.features import INK  # noqa: E402
from testkit.drawings import digit_png  # noqa: E402

WIDE_OPEN = ImageLimits(64 << 20, 1 << 26, 16384)


def enlarged(png: bytes, side: int, fmt: str) -> bytes:
    """The drawing scaled to ``side`` pixels: transparent PNG, or dark-on-white JPEG."""
    img = Image.open(io.BytesIO(png)).convert("RGBA").resize((side, side), Image.BILINEAR)
    if fmt == "JPEG":
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img).convert("RGB")
    out = io.BytesIO()
    img.save(out, fmt, **({"quality": 90} if fmt == "JPEG" else {"optimize": True}))
    return out.getvalue()


def blank_png(side: int) -> bytes:
    """The review's attack image: fully transparent, so it compresses to almost nothing."""
    out = io.BytesIO()
    Image.new("RGBA", (side, side), (0, 0, 0, 0)).save(out, "PNG", optimize=True)
    return out.getvalue()


def median_ms(fn, rounds: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    drawing = digit_png(7)
    cases = {
        "drawing 280x280 PNG": drawing,
        "drawing 1024x1024 PNG": enlarged(drawing, 1024, "PNG"),
        "drawing 1024x1024 JPEG": enlarged(drawing, 1024, "JPEG"),
        "blank 1024x1024 PNG": blank_png(1024),
        "blank 4096x4096 PNG": blank_png(4096),
        "drawing 4096x4096 JPEG": enlarged(drawing, 4096, "JPEG"),
    }
    print(f"{'image':28} {'bytes':>9} {'decode ms':>10} {'+features ms':>13}")
    for name, data in cases.items():
        decode = median_ms(lambda: decode_ink(data, WIDE_OPEN), args.rounds)
        both = median_ms(lambda: INK.transform(decode_ink(data, WIDE_OPEN)), args.rounds)
        print(f"{name:28} {len(data):>9} {decode:>10.2f} {both:>13.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
