"""Drawings in, answers out: the one prediction path production, eval and benchmarks share."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from shared.images.ink import decode_ink
from shared.images.upload import ImageLimits, ImageRejected
from shared.model.base import Model
from shared.model.features import FeaturePipeline


@dataclass(frozen=True)
class Answer:
    digit: int
    probabilities: list[float]


@dataclass
class Featurized:
    """Images brought into a model's feature space; ``outcomes`` holds None or the image's rejection."""

    pipeline: FeaturePipeline
    rows: list[np.ndarray] = field(default_factory=list)
    outcomes: list[ImageRejected | None] = field(default_factory=list)

    def add(self, images: list[bytes], limits: ImageLimits) -> "Featurized":
        for data in images:
            try:
                self.rows.append(self.pipeline.transform(decode_ink(data, limits)))
                self.outcomes.append(None)
            except ImageRejected as exc:
                self.outcomes.append(exc)
        return self

    def rows_for(self, indexes: list[int]) -> np.ndarray:
        """The feature rows of the images at ``indexes`` (each must have decoded)."""
        row_of, n = {}, 0
        for i, outcome in enumerate(self.outcomes):
            if outcome is None:
                row_of[i], n = n, n + 1
        return np.stack([self.rows[row_of[i]] for i in indexes])


def predict_featurized(model: Model, batch: Featurized) -> list[Answer | ImageRejected]:
    """One ``predict_proba`` call for every decodable image; rejections stay in place."""
    if not batch.rows:
        return list(batch.outcomes)
    answers = iter(answer_from(row) for row in model.predict_proba(np.stack(batch.rows)))
    return [next(answers) if o is None else o for o in batch.outcomes]


def predict_images(model: Model, images: list[bytes], limits: ImageLimits
                   ) -> tuple[list[Answer | ImageRejected], dict]:
    """Decode, preprocess and predict ``images`` together; returns answers and timings (ms).

    An image that cannot be decoded gets its ``ImageRejected`` in its place;
    the others are unaffected.
    """
    _, outcomes, timings = featurize_and_predict(model, images, limits)
    return outcomes, timings


def featurize_and_predict(model: Model, images: list[bytes], limits: ImageLimits
                          ) -> tuple[Featurized, list[Answer | ImageRejected], dict]:
    """``predict_images``, also returning the features: a shadow model reading the same
    features scores them without decoding the drawings again."""
    t0 = time.perf_counter()
    batch = Featurized(model.pipeline).add(images, limits)
    t1 = time.perf_counter()
    outcomes = predict_featurized(model, batch)
    t2 = time.perf_counter()
    timings = {"preprocess_ms": round((t1 - t0) * 1000, 3), "predict_ms": round((t2 - t1) * 1000, 3)}
    return batch, outcomes, timings


def answer_from(row: np.ndarray) -> Answer:
    """One drawing's answer from its row of ten probabilities."""
    return Answer(digit=int(np.argmax(row)), probabilities=[round(float(p), 5) for p in row])
