"""shared.model.features: drawings that differ only in placement, size, slant,
stroke width or polarity must give (nearly) the same features."""
import io

import numpy as np
import pytest
from PIL import Image, ImageFilter

from shared.model import features as preprocess
from shared.images import drawing
from shared.images.upload import ImageLimits
from shared.images.ink import decode_ink
from testkit.drawings import sample_strokes

LIMITS = ImageLimits(4 * 1024 * 1024, 4096 * 4096, 8192)
# Mean absolute feature difference (features are 0..16 block counts) allowed
# between a variant and the clean drawing of the same digit. Different digits
# are at least ~2 apart, most of them 3-4.
TOLERANCE = 3.0


def feats(png: bytes) -> np.ndarray:
    return preprocess.features(decode_ink(png, LIMITS))


def flatten(png: bytes, background: int, ink: int) -> bytes:
    """The transparent canvas PNG as an opaque grey picture (scan / photo style)."""
    with Image.open(io.BytesIO(png)) as img:
        alpha = np.asarray(img)[..., 3].astype(np.float32) / 255.0
    grey = background * (1 - alpha) + ink * alpha
    out = io.BytesIO()
    Image.fromarray(np.round(grey).astype(np.uint8), "L").save(out, format="PNG")
    return out.getvalue()


def render(digit, brush=drawing.BRUSH_WIDTH, **kw):
    return drawing.render_strokes(sample_strokes(digit, **kw), brush=brush)


VARIANTS = {
    "shifted": lambda d: render(d, centre=(95, 175)),
    "small_corner_thin_pen": lambda d: render(d, height=90, centre=(205, 70), brush=8),
    "large": lambda d: render(d, height=250),
    "slanted_right": lambda d: render(d, slant=0.3),
    "slanted_left": lambda d: render(d, slant=-0.2),
    "thin_stroke": lambda d: render(d, brush=6),
    "thick_stroke": lambda d: render(d, brush=32),
    "narrow": lambda d: render(d, width_scale=0.75),
    "black_on_white": lambda d: flatten(render(d), 255, 17),
    "white_on_black": lambda d: flatten(render(d), 0, 255),
    "grey_on_light_grey": lambda d: flatten(render(d), 220, 60),
}


@pytest.fixture(scope="module")
def clean():
    return np.stack([feats(render(d)) for d in range(10)])


def test_feature_shape_and_scale(clean):
    assert clean.shape == (10, preprocess.FEATURE_SIZE)
    assert clean.dtype == np.float32
    counts = clean[:, :preprocess.BLOCK_FEATURES]
    assert counts.min() >= 0 and counts.max() <= 16
    # Every digit is brought to the full height: top and bottom block rows hold ink.
    grid = counts.reshape(10, -1, int(np.sqrt(preprocess.BLOCK_FEATURES)))
    assert (grid[:, 0].sum(axis=1) > 0).all() and (grid[:, -1].sum(axis=1) > 0).all()
    directions = clean[:, preprocess.BLOCK_FEATURES:]
    assert directions.min() >= 0 and (directions.sum(axis=1) > 0).all()


def test_clean_digits_are_distinct(clean):
    dist = np.abs(clean[:, None] - clean[None]).mean(axis=-1)
    np.fill_diagonal(dist, np.inf)
    assert dist.min() > 1.5


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variants_match_their_clean_drawing(variant, clean):
    make = VARIANTS[variant]
    got = np.stack([feats(make(d)) for d in range(10)])
    dist = np.abs(got[:, None] - clean[None]).mean(axis=-1)   # (variant digit, clean digit)
    same = dist[np.arange(10), np.arange(10)]
    assert same.max() < TOLERANCE, f"{variant}: distances to own clean digit {same.round(2)}"
    assert (dist.argmin(axis=1) == np.arange(10)).all(), \
        f"{variant}: nearest clean digit {dist.argmin(axis=1)}"


def test_translation_is_exactly_invariant(clean):
    moved = np.stack([feats(render(d, centre=(120, 160))) for d in range(10)])
    np.testing.assert_allclose(moved, clean, atol=0.6)


def test_empty_and_tiny_inputs():
    assert not preprocess.features(np.zeros((280, 280), np.float32)).any()
    assert preprocess.features(np.zeros((280, 280), np.float32)).shape == (preprocess.FEATURE_SIZE,)
    dot = np.zeros((280, 280), np.float32)
    dot[140, 140] = 1.0
    out = preprocess.features(dot)
    assert out.shape == (preprocess.FEATURE_SIZE,) and np.isfinite(out).all()
    line = np.zeros((280, 280), np.float32)
    line[140, 20:260] = 1.0                       # a flat dash: wider than tall
    assert np.isfinite(preprocess.features(line)).all()


def test_the_pipeline_rows_match_single_features():
    inks = [decode_ink(render(d), LIMITS) for d in (3, 8)]
    many = preprocess.INK.rows(inks)
    assert many.shape == (2, preprocess.FEATURE_SIZE)
    np.testing.assert_array_equal(many[1], preprocess.features(inks[1]))
    assert preprocess.INK.rows([]).shape == (0, preprocess.FEATURE_SIZE)


def test_direction_features_follow_the_edges():
    """A vertical bar has left/right edges, a horizontal one top/bottom edges:
    their direction histograms put the mass in different bins."""
    vertical = np.zeros((32, 32), bool)
    vertical[:, 12:20] = True
    horizontal = vertical.T.copy()
    v = preprocess.direction_features(vertical).reshape(preprocess._DIRECTIONS, -1).sum(axis=1)
    h = preprocess.direction_features(horizontal).reshape(preprocess._DIRECTIONS, -1).sum(axis=1)
    assert v.shape == (preprocess._DIRECTIONS,) and v.sum() > 0
    # Bins are angles of the gradient from -pi: 0 and 4 hold horizontal
    # gradients (vertical edges), 2 and 6 vertical ones.
    assert v[[0, 4]].sum() > 0.8 * v.sum()
    assert h[[2, 6]].sum() > 0.8 * h.sum()
    assert not preprocess.direction_features(np.zeros((32, 32), bool)).any()


def test_thin_gives_one_pixel_skeleton():
    bar = np.zeros((30, 30), bool)
    bar[5:25, 10:17] = True
    skeleton = preprocess.thin(bar)
    assert skeleton.any()
    assert (skeleton.sum(axis=1) <= 1).all()                  # one pixel wide
    assert skeleton.sum() >= 10                               # still spans the bar
    assert not (skeleton & ~bar).any()


def test_shipped_digits_land_in_the_same_space(clean):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    feats8 = preprocess.INK.rows(preprocess.digits_to_inks(X[:200]))
    assert feats8.shape == (200, preprocess.FEATURE_SIZE)
    # Stroke normalisation: about the same amount of ink per digit class in
    # both sources, although optdigits' 8x8 and a canvas pen differ a lot.
    for d in range(10):
        shipped_ink = feats8[y[:200] == d].sum(axis=1).mean()
        assert 0.6 < clean[d].sum() / shipped_ink < 1.6, d


# -- the scanned flag ---------------------------------------------------------
def _mnist_like(size: int | None, resample=Image.BICUBIC) -> np.ndarray:
    """A soft-edged digit like a scan: a blurred ring, as MNIST's 28 px images are."""
    yy, xx = np.mgrid[0:28, 0:28]
    r = np.hypot(yy - 14, (xx - 14) * 1.4)
    img = Image.fromarray(np.clip(255 * (1 - np.abs(r - 8) / 3.0), 0, 255).astype(np.uint8))
    img = img.filter(ImageFilter.GaussianBlur(0.8))
    if size is not None:
        img = img.resize((size, size), resample)
    return np.asarray(img, dtype=np.float32) / 255.0


@pytest.mark.parametrize("size,resample", [(None, None), (140, Image.BILINEAR),
                                           (280, Image.BICUBIC), (280, Image.NEAREST)])
def test_a_scan_is_flagged_at_any_size(size, resample):
    ink = _mnist_like(size, resample)
    assert preprocess.softness(ink) >= preprocess._SCAN_SOFTNESS
    assert preprocess.features(ink)[preprocess.SCANNED_FEATURE] == preprocess._SCAN_WEIGHT


@pytest.mark.parametrize("canvas,brush", [(280, 18.0), (280, 6.0), (112, 8.0), (560, 40.0)])
@pytest.mark.parametrize("digit", [1, 4, 8])
def test_canvas_strokes_are_never_flagged(canvas, brush, digit):
    png = drawing.render_strokes(sample_strokes(digit, centre=(canvas / 2, canvas / 2),
                                                height=canvas * 0.6), size=canvas, brush=brush)
    ink = decode_ink(png, LIMITS)
    assert preprocess.softness(ink) < preprocess._SCAN_SOFTNESS
    assert preprocess.features(ink)[preprocess.SCANNED_FEATURE] == 0.0


def test_as_scanned_marks_rows_and_nothing_else():
    rows = np.random.default_rng(0).random((3, preprocess.FEATURE_SIZE)).astype(np.float32)
    rows[:, preprocess.SCANNED_FEATURE] = 0
    marked = preprocess.as_scanned(rows)
    assert (marked[:, preprocess.SCANNED_FEATURE] == preprocess._SCAN_WEIGHT).all()
    np.testing.assert_array_equal(marked[:, :-1], rows[:, :-1])
    assert (rows[:, preprocess.SCANNED_FEATURE] == 0).all(), "the input is not changed"
