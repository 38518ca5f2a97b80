"""The model seam: what every model family provides and what serving sees of a model.

In the spirit of kserve's ``Model``: a family knows how to train (``build``),
how to write a trained estimator in a numpy-only serving form (``export``)
and how to read that form back (``load``). Everything else (training, the
store, inference, the predict worker, the retrain job) talks to these two
classes only, so a new family is one module in ``shared.model.families``.

``Model`` is what a worker holds: an immutable bundle of version, feature
pipeline and numpy predictor. It is built whole by the store and replaced
whole by the worker's holder, never mutated.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np

from shared.model.features import FeaturePipeline

DIGITS = 10


class ModelUnusable(RuntimeError):
    """A model that cannot answer (wrong shape, broken arrays): it must not go live."""


class Predictor(Protocol):
    """Numpy-only scoring: ``predict_proba`` rows follow ``classes_``."""

    classes_: np.ndarray

    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...


class ModelFamily(ABC):
    """One kind of model: how it is trained, exported for serving and loaded."""

    name: ClassVar[str]
    pipeline: ClassVar[FeaturePipeline]

    @abstractmethod
    def build(self) -> Any:
        """A fresh scikit-learn-style estimator (``fit``, ``predict_proba``, ``predict``)."""

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> Any:
        """A fitted estimator; override where weights must be routed (e.g. into a pipeline step)."""
        return self.build().fit(X, y, sample_weight=sample_weight)

    @abstractmethod
    def export(self, estimator) -> dict[str, bytes]:
        """The serving form of a fitted estimator: file name -> bytes, numpy only to read."""

    @abstractmethod
    def load(self, files: dict[str, bytes]) -> Predictor:
        """A predictor from ``export``'s files, without importing scikit-learn."""


@dataclass(frozen=True)
class Trained:
    """A freshly fitted estimator and the family that made it (what the store publishes)."""

    family: ModelFamily
    estimator: Any

    @property
    def classes_(self) -> np.ndarray:
        return self.estimator.classes_

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.estimator.predict_proba(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.estimator.predict(X)

    def as_model(self, version: str = "unpublished", metadata: dict | None = None) -> "Model":
        """Serve this estimator in-process (evaluation, tests) without going through the store."""
        return Model(version=version, family=self.family.name, pipeline=self.family.pipeline,
                     predictor=self.estimator, metadata=metadata or {})


@dataclass(frozen=True)
class Model:
    """A loaded model ready to serve, and the version that computed every answer it gives."""

    version: str
    family: str
    pipeline: FeaturePipeline
    predictor: Predictor
    metadata: dict = field(default_factory=dict)

    def featurize(self, ink: np.ndarray) -> np.ndarray:
        return self.pipeline.transform(ink)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probabilities of the digits 0..9 (one column each, whatever the predictor's class order)."""
        probs = np.asarray(self.predictor.predict_proba(X))
        classes = [int(c) for c in self.predictor.classes_]
        if classes == list(range(DIGITS)):
            return probs
        out = np.zeros((len(probs), DIGITS))
        out[:, classes] = probs
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.argmax(self.predict_proba(X), axis=1)

    def smoke_test(self) -> None:
        """Answer a blank drawing: a model that cannot must not go live."""
        try:
            probs = self.predict_proba(np.zeros((1, self.pipeline.size), dtype=np.float32))
        except Exception as exc:
            raise ModelUnusable(f"model {self.version} failed its smoke prediction: {exc}") from exc
        if probs.shape != (1, DIGITS) or not np.isfinite(probs).all():
            raise ModelUnusable(f"model {self.version} answers {probs.shape}, not {DIGITS} digits")
