"""Drawings in, answers out: the one prediction path production, eval and benchmarks share."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from shared.image_input import ImageLimits, ImageRejected
from shared.imaging import decode_ink
from shared.model_store import LoadedModel
from shared.preprocess import features


@dataclass(frozen=True)
class Answer:
    digit: int
    probabilities: list[float]


def predict_images(model: LoadedModel, images: list[bytes], limits: ImageLimits
                   ) -> tuple[list[Answer | ImageRejected], dict]:
    """Predict every decodable image with one ``predict_proba`` call.

    An image that cannot be decoded gets its ``ImageRejected`` in its place;
    the others are unaffected. Returns the answers and per-call timings (ms).
    """
    t0 = time.perf_counter()
    rows, outcomes = [], []
    for data in images:
        try:
            rows.append(features(decode_ink(data, limits)))
            outcomes.append(None)
        except ImageRejected as exc:
            outcomes.append(exc)
    t1 = time.perf_counter()
    if rows:
        probs = model.estimator.predict_proba(np.stack(rows))
        classes = [int(c) for c in model.estimator.classes_]
        answers = iter(_answer(row, classes) for row in probs)
        outcomes = [next(answers) if o is None else o for o in outcomes]
    t2 = time.perf_counter()
    timings = {"preprocess_ms": round((t1 - t0) * 1000, 3), "predict_ms": round((t2 - t1) * 1000, 3)}
    return outcomes, timings


def _answer(row: np.ndarray, classes: list[int]) -> Answer:
    probabilities = [0.0] * 10
    for cls, prob in zip(classes, row):
        probabilities[cls] = round(float(prob), 5)
    return Answer(digit=classes[int(np.argmax(row))], probabilities=probabilities)
