"""Digits drawn the way a person draws them on the page's canvas, for tests to send.

Each digit is a list of strokes (polylines in canvas pixels, 280x280),
rendered by ``shared.images.drawing.render_strokes`` exactly like the browser page.
"""
from __future__ import annotations

import math

import numpy as np

from shared.images.canvas import CANVAS_SIZE
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


# ------------------------------------------------ unit-box sample digits --
def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 24,
             start: float = 0.0, end: float = 2 * np.pi) -> list[tuple[float, float]]:
    t = np.linspace(start, end, n)
    return list(zip((cx + rx * np.sin(t)).tolist(), (cy - ry * np.cos(t)).tolist()))


# Plain hand-drawn-style digits in a unit box (x right, y down, height 1),
# for tests and benchmarks: ``sample_strokes`` places them on a canvas.
SAMPLE_DIGITS: dict[int, list[list[tuple[float, float]]]] = {
    0: [_ellipse(0.5, 0.5, 0.3, 0.46, 28)],
    1: [[(0.36, 0.2), (0.55, 0.03), (0.55, 0.97)]],
    2: [_ellipse(0.5, 0.3, 0.28, 0.26, 10, -1.3, 1.9) + [(0.2, 0.95), (0.82, 0.95)]],
    3: [_ellipse(0.48, 0.26, 0.26, 0.23, 12, -1.6, 3.0)
        + _ellipse(0.48, 0.72, 0.3, 0.25, 12, 0.0, 4.4)],
    4: [[(0.58, 0.03), (0.16, 0.66), (0.86, 0.66)], [(0.64, 0.32), (0.64, 0.97)]],
    5: [[(0.8, 0.05), (0.3, 0.05), (0.25, 0.45)]
        + _ellipse(0.5, 0.68, 0.3, 0.28, 12, -0.9, 4.1)],
    6: [[(0.72, 0.04), (0.45, 0.25), (0.28, 0.5)]
        + _ellipse(0.5, 0.72, 0.24, 0.25, 18, 4.4, 4.4 + 2 * np.pi)],
    7: [[(0.18, 0.05), (0.82, 0.05), (0.42, 0.97)]],
    8: [_ellipse(0.5, 0.26, 0.21, 0.23, 20), _ellipse(0.5, 0.73, 0.27, 0.25, 20)],
    9: [_ellipse(0.5, 0.3, 0.25, 0.26, 20, 1.57, 1.57 + 2 * np.pi) + [(0.74, 0.97)]],
}


def sample_strokes(digit: int, centre: tuple[float, float] = (CANVAS_SIZE / 2, CANVAS_SIZE / 2),
                   height: float = CANVAS_SIZE * 0.6, width_scale: float = 1.0,
                   slant: float = 0.0) -> list[list[tuple[float, float]]]:
    """``SAMPLE_DIGITS[digit]`` placed on a canvas: ``slant`` > 0 leans it right."""
    cx, cy = centre
    out = []
    for stroke in SAMPLE_DIGITS[digit]:
        pts = []
        for u, v in stroke:
            x = cx + (u - 0.5) * height * width_scale + slant * (0.5 - v) * height
            pts.append((x, cy + (v - 0.5) * height))
        out.append(pts)
    return out


# ------------------------------------------------------ pen-stroke sevens --
def pen_seven_points(rng: np.random.Generator) -> list[float]:
    """Eight pen points (0..100, y up) of a 7 as a tablet records it, like a UCI pendigits row.

    Half are a plain 7 (bar, then the stem); half trace a crossbar after the
    stem without lifting the pen, as many pendigits writers do.
    """
    j = lambda scale=6.0: float(rng.normal(0.0, scale))  # noqa: E731
    top = 100.0 + j(3)
    x0, x1 = rng.uniform(0, 15), rng.uniform(75, 100)
    foot = rng.uniform(15, 55)
    if rng.random() < 0.5:
        pts = [(x0, top - rng.uniform(0, 12)), ((x0 + x1) / 2 + j(), top + j(2)), (x1, top - rng.uniform(0, 8))]
        for t in (0.2, 0.4, 0.6, 0.8, 1.0):
            pts.append((x1 + (foot - x1) * t + j(3), top - 100.0 * t + j(3)))
    else:
        pts = [(x0, top - rng.uniform(0, 15)), ((x0 + x1) / 2 + j(), top + j(2)), (x1, top - rng.uniform(0, 8))]
        for t in (0.35, 0.7, 1.0):
            pts.append((x1 + (foot - x1) * t + j(3), top - 100.0 * t + j(3)))
        mid_x = x1 + (foot - x1) * 0.55
        pts.append((mid_x - rng.uniform(15, 35), 45 + j(4)))
        pts.append((mid_x + rng.uniform(15, 35), 45 + j(4)))
    pts = np.clip(np.asarray(pts), 0.0, 100.0)
    return pts.reshape(-1).tolist()


def pen_sevens(n: int, seed: int) -> list[bytes]:
    """``n`` canvas PNGs of pen-stroke 7s (``pen_seven_points``) with varied pens."""
    from shared.images.drawing import render_pendigits_row

    rng = np.random.default_rng(seed)
    return [render_pendigits_row(pen_seven_points(rng), brush=float(rng.uniform(10, 24))) for _ in range(n)]
