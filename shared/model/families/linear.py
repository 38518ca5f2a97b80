"""The linear family: multinomial logistic regression on the ink features, served by numpy.

Much weaker than the SVC (a linear boundary in feature space) but it trains
in a second or two and predicts with one small matrix product: a baseline to
compare families against, and the smallest complete example of the model
seam (``build``, ``export``, ``load``) for whoever adds the next family.
"""
from __future__ import annotations

import io

import numpy as np

from shared.model import features
from shared.model.base import ModelFamily

WEIGHTS_NAME = "linear.npz"


class SoftmaxRegression:
    """``predict_proba`` of a fitted multinomial ``LogisticRegression``, with numpy alone."""

    def __init__(self, coef: np.ndarray, intercept: np.ndarray, classes: np.ndarray):
        self.coef = np.asarray(coef, dtype=np.float64)
        self.intercept = np.asarray(intercept, dtype=np.float64)
        self.classes_ = np.asarray(classes)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.coef.shape[1]:
            raise ValueError(f"X has {X.shape[-1]} features, but the model expects {self.coef.shape[1]}")
        logits = X @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)


class LinearFamily(ModelFamily):
    name = "linear"
    pipeline = features.INK

    def build(self):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=300))

    def fit(self, X, y, sample_weight=None):
        return self.build().fit(X, y, logisticregression__sample_weight=sample_weight)

    def export(self, estimator) -> dict[str, bytes]:
        scaler, logistic = estimator[0], estimator[-1]
        # Fold the scaling into the weights: w.(x - m)/s + b = (w/s).x + (b - w.m/s).
        scale = np.where(scaler.scale_ == 0, 1.0, scaler.scale_)
        coef = logistic.coef_ / scale
        intercept = logistic.intercept_ - coef @ scaler.mean_
        buffer = io.BytesIO()
        np.savez(buffer, coef=coef, intercept=intercept, classes=logistic.classes_)
        return {WEIGHTS_NAME: buffer.getvalue()}

    def load(self, files: dict[str, bytes]) -> SoftmaxRegression:
        with np.load(io.BytesIO(files[WEIGHTS_NAME])) as arrays:
            return SoftmaxRegression(arrays["coef"], arrays["intercept"], arrays["classes"])


FAMILY = LinearFamily()
