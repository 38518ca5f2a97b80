"""Drift: how far live answers have moved from what a model answered on its evaluation set.

Why here, beside the model and not in a monitoring service: each model
version carries its own yardstick (``reference``, stored in its metadata when
it is published), so a predict worker can compare its recent answers with it
at no cost on the hot path and Prometheus only reads two numbers per worker.

Two signals, both cheap and label-free:

- the *population stability index* (PSI) of the predicted digits: the shares
  of each digit among the last ``window`` answers against the shares on the
  evaluation set. PSI = sum((a - e) * ln(a / e)); by the usual rule of thumb
  under 0.1 is stable, 0.1-0.25 a moderate shift, over 0.25 a large one.
  The evaluation set is balanced (about 10% per digit), so PSI also rises when
  users simply draw some digits more than others: read it with the
  low-confidence share, which does not.
- the share of *low-confidence* answers (top probability under the page's
  "not sure" threshold) against the same share on the evaluation set: a model
  facing handwriting it has not learnt answers unsure more often.

Both are only meaningful over enough answers: ``DriftWindow.count`` is
exported beside them and the alert rules require a minimum.
"""
from __future__ import annotations

import math
import threading

import numpy as np

DIGITS = 10
CONFIDENCE_BINS = 20            # reference confidences kept as a 20-bin histogram over [0, 1]
PSI_FLOOR = 1e-4                # a share of 0 would make ln(a / e) infinite: floor both sides


def reference(probabilities: np.ndarray) -> dict:
    """What a model answered on its evaluation set: digit shares and a confidence histogram.

    Stored in the model's metadata at publication; the histogram (not one
    share) lets a worker read the low-confidence share at whatever
    ``SWAGDIGITS_UNSURE_BELOW`` it runs with.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    digits = np.argmax(probabilities, axis=1)
    confidence = probabilities[np.arange(len(digits)), digits]
    counts = np.bincount(digits, minlength=DIGITS)
    hist, _ = np.histogram(confidence, bins=CONFIDENCE_BINS, range=(0.0, 1.0))
    n = max(1, len(digits))
    return {"n": int(len(digits)),
            "digit_share": [round(float(c) / n, 6) for c in counts],
            "confidence_hist": [int(h) for h in hist]}


def low_confidence_share(ref: dict, below: float) -> float:
    """The reference's share of answers with confidence under ``below`` (to the nearest bin edge)."""
    hist = ref["confidence_hist"]
    total = sum(hist)
    if total == 0:
        return math.nan
    bins_under = int(round(below * CONFIDENCE_BINS))
    return sum(hist[:bins_under]) / total


def psi(expected: list[float] | np.ndarray, actual: list[float] | np.ndarray) -> float:
    """Population stability index of two distributions over the same classes."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), PSI_FLOOR)
    a = np.maximum(np.asarray(actual, dtype=np.float64), PSI_FLOOR)
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


class DriftWindow:
    """The last ``size`` answers of one worker, compared with the serving model's reference.

    ``add`` is O(1) per answer (a ring buffer and running counts); the
    comparison is computed when Prometheus scrapes. A new model starts an
    empty window: answers of the previous model say nothing about this one.
    """

    def __init__(self, size: int, unsure_below: float):
        self.size = max(1, int(size))
        self.unsure_below = unsure_below
        self._lock = threading.Lock()
        self.reset(None)

    def reset(self, ref: dict | None) -> None:
        """Start over for a model whose reference is ``ref`` (None: a model published without one)."""
        with self._lock:
            self.reference = ref
            self._digits = np.zeros(self.size, dtype=np.int8)
            self._low = np.zeros(self.size, dtype=bool)
            self._counts = np.zeros(DIGITS, dtype=np.int64)
            self._low_count = 0
            self._next = 0
            self._filled = 0

    def add(self, digits: list[int], confidences: list[float]) -> None:
        with self._lock:
            for digit, conf in zip(digits, confidences):
                i = self._next
                if self._filled == self.size:
                    self._counts[self._digits[i]] -= 1
                    self._low_count -= int(self._low[i])
                else:
                    self._filled += 1
                low = conf < self.unsure_below
                self._digits[i], self._low[i] = digit, low
                self._counts[digit] += 1
                self._low_count += int(low)
                self._next = (i + 1) % self.size

    @property
    def count(self) -> int:
        return self._filled

    def digit_psi(self) -> float:
        """PSI of the window's digits against the reference; NaN when empty or without a reference."""
        with self._lock:
            if self.reference is None or self._filled == 0:
                return math.nan
            return psi(self.reference["digit_share"], self._counts / self._filled)

    def low_confidence_share(self) -> float:
        with self._lock:
            return math.nan if self._filled == 0 else self._low_count / self._filled

    def reference_low_confidence_share(self) -> float:
        ref = self.reference
        return math.nan if ref is None else low_confidence_share(ref, self.unsure_below)
