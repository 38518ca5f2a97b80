"""Digits drawn the way a person draws them on the page's canvas, for tests to send.

Each digit is a list of strokes (polylines in canvas pixels, 280x280),
rendered by ``shared.images.drawing.render_strokes`` exactly like the browser page.
"""
from __future__ import annotations

import math

from shared.images.drawing import render_strokes


def _arc(cx, cy, rx, ry, start_deg, end_deg, steps=24):
    return [(cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
            for a in [start_deg + (end_deg - start_deg) * i / steps for i in range(steps + 1)]]


STROKES = {
    0: [_arc(140, 140, 60, 95, 0, 360)],
    1: [[(120, 70), (145, 45), (145, 235)]],
    2: [_arc(140, 95, 55, 50, 200, 360) + [(185, 120), (90, 235), (200, 235)]],
    3: [_arc(135, 92, 55, 47, 210, 450) + _arc(135, 185, 60, 50, 270, 510)],
    4: [[(170, 45), (80, 170), (205, 170)], [(170, 45), (170, 240)]],
    5: [[(190, 50), (105, 50), (95, 130)] + _arc(140, 175, 60, 55, 230, 500)],
    6: [[(175, 45), (120, 100), (90, 170)] + _arc(140, 185, 50, 48, 180, 540)],
    7: [[(85, 55), (200, 55), (120, 240)]],
    8: [_arc(140, 95, 45, 45, 90, 450) + _arc(140, 185, 55, 50, -90, 270)],
    9: [_arc(140, 95, 50, 45, 0, 360) + [(190, 95), (175, 240)]],
}


def digit_png(digit: int, **kwargs) -> bytes:
    return render_strokes(STROKES[digit], **kwargs)
