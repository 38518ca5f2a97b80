"""Bringing any ink map into one canonical digit shape, then into features.

scikit-learn's digits (UCI optdigits) were made from scanned forms: each digit
was size-normalised to the full 32 pixel height with a limited width and a
roughly constant amount of ink, then counted in 4x4 blocks (8x8 values 0..16).
A browser drawing is nothing like that: any size, any place on the canvas, any
slant, and a stroke width fixed by the brush rather than by the digit's size.

Rather than imitating optdigits' (unknown) scanning pipeline, drawings *and*
the training digits (upsampled back to an ink map, see ``digits_to_inks``) go
through the same normalisation, so both end up alike:

1. crop to the ink and shrink to a small working bitmap (aspect kept);
2. deskew: shear rows so the principal axis is vertical (second moments);
3. scale to the full ``_SIDE`` height, width by aspect but within
   ``[_MIN_WIDTH, _MAX_WIDTH]`` so a "1" stays a bar and a wide "2" does not
   fill the box;
4. normalise the stroke width: estimate it as ink area / skeleton length
   (Zhang-Suen thinning) and dilate or erode the digit to
   ``_TARGET_THICKNESS`` pixels, so thin pens, thick brushes, a scanned
   digit's blur and an 8x8 upsampling all give about the same amount of ink
   (``_THIN = True`` instead redraws the skeleton with a fixed disc pen:
   uniform strokes but more thinning artefacts, measured a little worse);
   and then clear the core of every loop the digit had before thickening,
   so a small loop (a "6", a looped "2") stays a loop instead of becoming
   a blob like an upsampled optdigits "4";
5. count ink in blocks like optdigits (values 0..16 in an 8x8 grid);
6. add stroke *direction* histograms: the edge orientation of the (lightly
   blurred) canonical digit in 8 directions, pooled over a 4x4 grid of cells.
   The 8x8 counts blur a "4"'s open top or a "3"'s left cusps into the same
   blobs as a "9"; which way the edges run there tells them apart, and it
   survives a coarse 8x8 source (the shipped digits) as well as a fine one.
7. add one *scanned* flag: 1 when the ink's edges are soft for the digit's
   size (a digit written on paper and scanned, photographed or upscaled from
   a small image), 0 for the crisp strokes a canvas draws. It is weighted so
   heavily that an RBF kernel compares a canvas drawing only with canvas-like
   training digits and a scan only with scans: the two kinds of handwriting
   are learnt side by side instead of blurred together (scanned MNIST "2"s
   with a loop otherwise take over the tablet "7"s whose crossbar is joined
   to the stem by the pen's travel: -4 points on pendigits).

Only numpy and Pillow: this runs in the predict worker for every drawing and
has to stay well under a millisecond or two.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

# Canonical bitmap side and the block grid the features are counted in.
_SIDE = 32
_GRID = 8
# Direction histograms: orientation bins and the cell grid they are pooled in.
_DIRECTIONS = 8
_DIR_GRID = 4
# Scale of the direction features against the 0..16 block counts (RBF kernels
# weigh every feature alike): measured 1 < 2 ~ 3 on the eval sets.
_DIR_WEIGHT = 2.0
# Stroke width of the digit the directions are measured on (None: the same
# as the block counts'). Thinner strokes keep small loops open, but measured
# worse: 4.0 and 5.5 lost 0.4-1.5 points on MNIST.
_DIR_THICKNESS = None
BLOCK_FEATURES = _GRID * _GRID           # features[:BLOCK_FEATURES] are block counts
FEATURE_SIZE = BLOCK_FEATURES + _DIRECTIONS * _DIR_GRID * _DIR_GRID + 1
SCANNED_FEATURE = FEATURE_SIZE - 1       # the scanned flag (step 7), 0 or _SCAN_WEIGHT
# Step 7: soft-edge width (grey pixels per edge pixel) over the digit's size in
# pixels. Measured on decoded inks: canvas and tablet strokes 0.004-0.016 at
# any canvas size and brush; MNIST digits 0.025-0.08 whether sent at 28 px or
# upscaled to 140-280 px (bicubic or nearest). The flag is 1 above the gap.
_SCAN_SOFTNESS = 0.02
# Large against the features' spread (block counts 0..16): with gamma "scale"
# the kernel between a scan and a canvas drawing is ~0. Measured with 10,000
# MNIST training digits added: weight 0 -> pendigits 87.0%, 32 -> 90.5%,
# 64 -> 91.9%, 128 -> 92.4% (no scans at all: 92.0%); MNIST-dev ~98% for all.
_SCAN_WEIGHT = 128.0

# Tunables of the normalisation (see the module docstring).
_INK_THRESHOLD = 0.25      # ink map value counted as ink when cropping
_WORK = 40                 # working bitmap: longest side before deskewing
_DESKEW = True
_MAX_SHEAR = 1.0
_MIN_WIDTH = 8             # canonical width limits in pixels of _SIDE
_MAX_WIDTH = 24
_ASPECT_GAIN = 1.3         # canonical width = gain * aspect * _SIDE, then clipped
_PEN_RADIUS = 2.5          # radius of the disc the skeleton is redrawn with
_MARGIN = 0                # empty columns/rows kept around the canonical digit
_THIN = "adjust"          # "adjust" | True (skeleton + pen) | False (as is)
_TARGET_THICKNESS = 7.5    # stroke width in canonical pixels (optdigits-like ink)
_MASK_THRESHOLD = 0.4      # ink level kept as stroke before thinning



# ---------------------------------------------------------------- thinning --
def _thinning_tables() -> tuple[np.ndarray, np.ndarray]:
    """Zhang-Suen deletion lookup tables for the two sub-iterations.

    Neighbour bits: P2 (N)=1, P3 (NE)=2, P4 (E)=4, P5 (SE)=8, P6 (S)=16,
    P7 (SW)=32, P8 (W)=64, P9 (NW)=128.
    """
    first = np.zeros(256, dtype=bool)
    second = np.zeros(256, dtype=bool)
    for code in range(256):
        p = [(code >> i) & 1 for i in range(8)]  # p[0]=P2 ... p[7]=P9
        b = sum(p)
        a = sum(1 for i in range(8) if p[i] == 0 and p[(i + 1) % 8] == 1)
        if not (2 <= b <= 6 and a == 1):
            continue
        p2, p4, p6, p8 = p[0], p[2], p[4], p[6]
        first[code] = p2 * p4 * p6 == 0 and p4 * p6 * p8 == 0
        second[code] = p2 * p4 * p8 == 0 and p2 * p6 * p8 == 0
    return first, second


_THIN_FIRST, _THIN_SECOND = _thinning_tables()


def _pad(a: np.ndarray, r: int = 1) -> np.ndarray:
    """``a`` with ``r`` rows and columns of zeros (False) around it: ``np.pad(a, r)``, whose
    generality costs ~15 us a call; it is called a dozen times per drawing."""
    out = np.zeros((a.shape[0] + 2 * r, a.shape[1] + 2 * r), dtype=a.dtype)
    out[r:r + a.shape[0], r:r + a.shape[1]] = a
    return out


def _neighbour_codes(img: np.ndarray) -> np.ndarray:
    p = _pad(img)
    h, w = img.shape
    code = p[0:h, 1:w + 1] * np.uint8(1)          # N
    code = code + p[0:h, 2:w + 2] * np.uint8(2)   # NE
    code += p[1:h + 1, 2:w + 2] * np.uint8(4)     # E
    code += p[2:h + 2, 2:w + 2] * np.uint8(8)     # SE
    code += p[2:h + 2, 1:w + 1] * np.uint8(16)    # S
    code += p[2:h + 2, 0:w] * np.uint8(32)        # SW
    code += p[1:h + 1, 0:w] * np.uint8(64)        # W
    code += p[0:h, 0:w] * np.uint8(128)           # NW
    return code


def thin(mask: np.ndarray) -> np.ndarray:
    """One-pixel-wide skeleton of a boolean mask (Zhang-Suen)."""
    img = mask.astype(np.uint8)
    for _ in range(2 * max(img.shape)):
        changed = False
        for table in (_THIN_FIRST, _THIN_SECOND):
            delete = table[_neighbour_codes(img)] & (img == 1)
            if delete.any():
                img[delete] = 0
                changed = True
        if not changed:
            break
    return img.astype(bool)


# ------------------------------------------------------------- geometry ----
def _bbox(mask: np.ndarray):
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return rows[0], rows[-1] + 1, cols[0], cols[-1] + 1


def _to_image(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(arr * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")


def _disc(radius: float) -> np.ndarray:
    r = int(np.ceil(radius))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return (xx * xx + yy * yy) <= radius * radius + 1e-6


_PEN = _disc(_PEN_RADIUS)
_PEN_OFFSETS = [(dy - _PEN.shape[0] // 2, dx - _PEN.shape[1] // 2)
                for dy, dx in zip(*np.nonzero(_PEN))]


def _dilate(mask: np.ndarray) -> np.ndarray:
    h, w = mask.shape
    r = _PEN.shape[0] // 2
    p = _pad(mask, r)
    out = np.zeros_like(mask)
    for dy, dx in _PEN_OFFSETS:
        out |= p[r + dy:r + dy + h, r + dx:r + dx + w]
    return out


def _deskew(work: np.ndarray) -> np.ndarray:
    """Shear rows so that the ink's second-moment axis is vertical."""
    h, w = work.shape
    total = work.sum()
    if total <= 0:
        return work
    ys = np.arange(h, dtype=np.float64)
    xs = np.arange(w, dtype=np.float64)
    row_mass = work.sum(axis=1)
    col_mass = work.sum(axis=0)
    cy = float(row_mass @ ys) / total
    cx = float(col_mass @ xs) / total
    mu02 = float(row_mass @ (ys - cy) ** 2) / total
    mu11 = float((ys - cy) @ work @ (xs - cx)) / total
    if mu02 < 1e-6:
        return work
    shear = float(np.clip(mu11 / mu02, -_MAX_SHEAR, _MAX_SHEAR))
    if abs(shear) < 0.02:
        return work
    # Output wide enough for the sheared digit.
    extra = int(np.ceil(abs(shear) * h)) + 2
    out_w = w + extra
    # Output pixel (x', y) samples input x = x' - off + shear * (y - cy).
    off = extra / 2.0
    img = _to_image(work)
    sheared = img.transform((out_w, h), Image.AFFINE,
                            (1.0, shear, -off - shear * cy, 0.0, 1.0, 0.0),
                            resample=Image.BILINEAR)
    return np.asarray(sheared, dtype=np.float32) / 255.0


def canonical(ink: np.ndarray, thickness: float | None = None) -> np.ndarray | None:
    """The normalised ``_SIDE`` x ``_SIDE`` boolean digit, or None without ink.

    ``thickness`` overrides ``_TARGET_THICKNESS`` (stroke width in pixels).
    """
    parts = _shape(ink)
    if parts is None:
        return None
    return _with_thickness(parts, _TARGET_THICKNESS if thickness is None else thickness)


def _shape(ink: np.ndarray):
    """Steps 1-3 of the normalisation: (canvas mask, skeleton canvas), or None."""
    ink = np.asarray(ink, dtype=np.float32)
    box = _bbox(ink > _INK_THRESHOLD)
    if box is None:
        return None
    r0, r1, c0, c1 = box
    crop = ink[r0:r1, c0:c1]
    h, w = crop.shape
    scale = _WORK / max(h, w)
    size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    work_img = _to_image(crop)
    if size != (w, h):
        work_img = work_img.resize(size, Image.BILINEAR, reducing_gap=2.0 if scale < 0.5 else None)
    work = np.asarray(work_img, dtype=np.float32) / 255.0
    if _DESKEW:
        work = _deskew(work)
    box = _bbox(work > _MASK_THRESHOLD)
    if box is None:
        box = _bbox(work > 0.0)
        if box is None:
            return None
    r0, r1, c0, c1 = box
    work = work[r0:r1, c0:c1]
    h, w = work.shape
    inner = _SIDE - 2 * _MARGIN
    target_w = int(round(np.clip(_ASPECT_GAIN * inner * w / h, _MIN_WIDTH, _MAX_WIDTH)))
    target_w = min(target_w, inner)
    small = _to_image(work).resize((target_w, inner), Image.BILINEAR)
    mask = np.asarray(small) >= int(_MASK_THRESHOLD * 255)
    left = (_SIDE - target_w) // 2
    canvas = np.zeros((_SIDE, _SIDE), dtype=bool)
    canvas[_MARGIN:_MARGIN + inner, left:left + target_w] = mask
    skeleton = np.zeros((_SIDE, _SIDE), dtype=bool)
    skeleton[_MARGIN:_MARGIN + inner, left:left + target_w] = thin(mask)
    return canvas, skeleton


def _with_thickness(parts, target: float) -> np.ndarray:
    """Step 4: the canonical mask with its strokes brought to ``target`` pixels."""
    canvas, skeleton = parts
    if _THIN == "adjust":
        thickness = canvas.sum() / max(int(skeleton.sum()), 1)
        r = (target - thickness) / 2.0
        if r >= 0.5:
            return _morph(canvas, _disc(r), dilate=True)
        if r <= -0.5:
            return _morph(canvas, _disc(-r), dilate=False)
        return canvas
    if not _THIN:
        return canvas
    return _dilate(skeleton)


def _morph(mask, disc, dilate):
    h, w = mask.shape
    r = disc.shape[0] // 2
    p = _pad(mask, r)
    out = np.zeros_like(mask) if dilate else np.ones_like(mask)
    for dy, dx in zip(*np.nonzero(disc)):
        sl = p[dy:dy + h, dx:dx + w]
        if dilate:
            out |= sl
        else:
            out &= sl
    return out


_PIXEL_INDEX = np.arange(_SIDE * _SIDE)


def direction_features(norm: np.ndarray) -> np.ndarray:
    """Edge-orientation histograms of a canonical digit, ``_DIRECTIONS`` bins per cell.

    The digit is blurred with a 3x3 binomial kernel so a binary staircase edge
    gives a smooth orientation; each pixel's gradient magnitude is split
    linearly between its two nearest direction bins.
    """
    img = _pad(norm.astype(np.float32))
    rows = img[:-2] + 2.0 * img[1:-1] + img[2:]
    blur = (rows[:, :-2] + 2.0 * rows[:, 1:-1] + rows[:, 2:]) / 16.0
    q = _pad(blur)                                   # edge-replicated border
    q[0, 1:-1], q[-1, 1:-1] = blur[0], blur[-1]
    q[:, 0], q[:, -1] = q[:, 1], q[:, -2]
    gx = (q[1:-1, 2:] - q[1:-1, :-2]).ravel()
    gy = (q[2:, 1:-1] - q[:-2, 1:-1]).ravel()
    mag = np.hypot(gx, gy)
    pos = (np.arctan2(gy, gx) + np.pi) * (_DIRECTIONS / (2.0 * np.pi))
    low = np.floor(pos)
    frac = pos - low
    low = low.astype(np.int64) % _DIRECTIONS
    n = _SIDE * _SIDE
    hist = (np.bincount(low * n + _PIXEL_INDEX, mag * (1.0 - frac), minlength=_DIRECTIONS * n)
            + np.bincount(((low + 1) % _DIRECTIONS) * n + _PIXEL_INDEX, mag * frac,
                          minlength=_DIRECTIONS * n))
    cell = _SIDE // _DIR_GRID
    cells = hist.reshape(_DIRECTIONS, _DIR_GRID, cell, _DIR_GRID, cell).sum(axis=(2, 4))
    return (cells.reshape(-1) * _DIR_WEIGHT).astype(np.float32)


# Keep loops open: thickening to _TARGET_THICKNESS fills small loops (the
# bottom loop of a "6", a looped "2"), which then look like the filled triangle
# of an upsampled optdigits "4". The core of every hole of the mask *before*
# thickening (background not connected to the border, shrunk by one pixel) is
# cleared again after it. Measured +0.3 points on both dev sets (2 seeds).
_KEEP_HOLES = True


def _holes(mask: np.ndarray) -> np.ndarray:
    """Background pixels not 4-connected to the border."""
    img = Image.fromarray(_pad(mask).astype(np.uint8) * 255, "L")
    ImageDraw.floodfill(img, (0, 0), 128)
    return np.asarray(img)[1:-1, 1:-1] == 0


def _keep_holes(norm: np.ndarray, canvas: np.ndarray) -> np.ndarray:
    holes = _holes(canvas)
    if not holes.any():
        return norm
    p = _pad(holes)
    core = holes & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return norm & ~(core if core.any() else holes)


def softness(ink: np.ndarray) -> float:
    """Width of the ink's soft edges relative to the digit's size (step 7).

    Grey pixels (neither background nor full ink) per pixel of the solid
    ink's outline, over the ink's larger side: about one pixel per outline
    pixel for an antialiased canvas stroke whatever its size, several for a
    scanned digit, which is blurred at the scale of its strokes.
    """
    ink = np.asarray(ink, dtype=np.float32)
    solid = ink > 0.5
    box = _bbox(solid)
    if box is None:
        return 0.0
    p = _pad(solid)
    outline = solid & ~(p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:])
    grey = int(np.count_nonzero((ink > 0.1) & (ink < 0.9)))
    size = max(box[1] - box[0], box[3] - box[2])
    return grey / max(int(outline.sum()), 1) / size


def scanned_flag(ink: np.ndarray) -> float:
    """The step 7 feature: ``_SCAN_WEIGHT`` for a scan-like ink map, else 0."""
    return _SCAN_WEIGHT if softness(ink) >= _SCAN_SOFTNESS else 0.0


def features(ink: np.ndarray) -> np.ndarray:
    """One ink map (float32, 1 = ink) to ``FEATURE_SIZE`` features.

    The first ``_GRID * _GRID`` are optdigits-like block counts (0..16), then
    the direction histograms (``direction_features``), then the scanned flag.
    """
    parts = _shape(ink)
    if parts is None:
        return np.zeros(FEATURE_SIZE, dtype=np.float32)
    norm = _with_thickness(parts, _TARGET_THICKNESS)
    if _KEEP_HOLES:
        norm = _keep_holes(norm, parts[0])
    block = _SIDE // _GRID
    blocks = norm.reshape(_GRID, block, _GRID, block).sum(axis=(1, 3), dtype=np.int32)
    counts = (blocks.reshape(-1) * (16.0 / (block * block))).astype(np.float32)
    if _DIR_THICKNESS is not None:
        norm = _with_thickness(parts, _DIR_THICKNESS)
    return np.concatenate([counts, direction_features(norm), [scanned_flag(ink)]]).astype(np.float32)


def as_scanned(rows: np.ndarray) -> np.ndarray:
    """Feature rows with the scanned flag set: what a training set without any
    scans uses so that scans are still read (as the canvas model reads them)."""
    out = np.array(rows, dtype=np.float32, copy=True)
    out[:, SCANNED_FEATURE] = _SCAN_WEIGHT
    return out


_DIGITS_LEVEL = 0.45       # upsampled optdigits coverage taken as pen ink


def digits_to_inks(images8: np.ndarray, size: int = 32, level: float | None = None) -> list[np.ndarray]:
    """scikit-learn digits (n, 8, 8) of counts 0..16 back to binary pen-like ink maps.

    Smoothly upsampled, then cut at ``level`` of full coverage: a block only
    partly covered still had a stroke passing through it.
    """
    level = _DIGITS_LEVEL if level is None else level
    out = []
    for img in np.asarray(images8, dtype=np.float32).reshape(-1, 8, 8):
        pil = Image.fromarray(img / 16.0, "F").resize((size, size), Image.BICUBIC)
        out.append((np.asarray(pil, dtype=np.float32) >= level).astype(np.float32))
    return out


# ---------------------------------------------------------------- pipeline --
@dataclass(frozen=True)
class FeaturePipeline:
    """A named way from ink map to feature row, with a fingerprint stored in every model.

    A model is only ever fed the features it was trained on: the store refuses
    to load an artifact whose recorded fingerprint differs from the pipeline
    its family uses today. The fingerprint covers the name, the row width and
    every tunable that changes the numbers; change one and older models are
    refused (and a worker trains a fresh one) instead of answering nonsense.
    """

    name: str
    size: int
    transform: Callable[[np.ndarray], np.ndarray]
    params: dict = field(default_factory=dict)
    # Rows -> the same rows marked as scans, for pipelines with a scanned flag.
    mark_scanned: Callable[[np.ndarray], np.ndarray] | None = field(default=None, compare=False)

    @property
    def fingerprint(self) -> str:
        text = json.dumps({"name": self.name, "size": self.size, "params": self.params},
                          sort_keys=True, default=str)
        return f"{self.name}:{hashlib.sha256(text.encode()).hexdigest()[:12]}"

    def rows(self, inks) -> np.ndarray:
        if len(inks) == 0:
            return np.zeros((0, self.size), np.float32)
        return np.stack([self.transform(ink) for ink in inks])


INK = FeaturePipeline("ink-blocks-directions", FEATURE_SIZE, features, params={
    "side": _SIDE, "grid": _GRID, "directions": _DIRECTIONS, "dir_grid": _DIR_GRID,
    "dir_weight": _DIR_WEIGHT, "dir_thickness": _DIR_THICKNESS, "ink_threshold": _INK_THRESHOLD,
    "work": _WORK, "deskew": _DESKEW, "max_shear": _MAX_SHEAR, "min_width": _MIN_WIDTH,
    "max_width": _MAX_WIDTH, "aspect_gain": _ASPECT_GAIN, "pen_radius": _PEN_RADIUS,
    "margin": _MARGIN, "thin": _THIN, "target_thickness": _TARGET_THICKNESS,
    "mask_threshold": _MASK_THRESHOLD, "keep_holes": _KEEP_HOLES,
    "scan_softness": _SCAN_SOFTNESS, "scan_weight": _SCAN_WEIGHT}, mark_scanned=as_scanned)
