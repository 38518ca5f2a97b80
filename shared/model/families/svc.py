"""The RBF SVC family: an SVM with Platt probabilities, served by a numpy-only copy.

Unpickling an sklearn estimator imports scikit-learn and most of SciPy (about
95 MB per worker process) just to evaluate a kernel sum. At publish time the
SVC's support vectors, coefficients and Platt parameters are saved next to the
pickle, inside the same ModelStore artifact; a worker loads that and computes
exactly what libsvm's ``predict_proba`` computes:

1. ``dec[i,j] = sum_k coef * exp(-gamma |x - sv_k|^2) + intercept`` for every class pair;
2. pairwise probabilities ``r_ij = sigmoid(A * dec + B)``, clipped to [1e-7, 1 - 1e-7];
3. Wu, Lin & Weng's coupling (libsvm's ``multiclass_probability``) into one distribution.

Any other estimator is not an SVC of this family: ``export`` refuses it.
"""
from __future__ import annotations

import io
import warnings

import numpy as np

from shared.model import features
from shared.model.base import ModelFamily

COMPILED_NAME = "compiled-svc.npz"
_MIN_PROB = 1e-7


def export(estimator, path) -> bool:
    """Write ``estimator`` as a compiled SVC to ``path`` (or a file object); False if it is not one."""
    kind = type(estimator)
    if kind.__name__ != "SVC" or not kind.__module__.startswith("sklearn.svm"):
        return False
    if estimator.kernel != "rbf" or not estimator.probability or len(estimator.classes_) < 3:
        return False
    with warnings.catch_warnings():
        # scikit-learn 1.9 deprecates probA_/probB_ with probability=True (see shared/model/training/fitting.py).
        warnings.simplefilter("ignore", FutureWarning)
        prob_a, prob_b = estimator.probA_, estimator.probB_
    np.savez(path, support_vectors=estimator.support_vectors_, n_support=estimator.n_support_,
             dual_coef=estimator.dual_coef_, intercept=estimator.intercept_,
             prob_a=prob_a, prob_b=prob_b, gamma=np.array(estimator._gamma), classes=estimator.classes_)
    return True


class CompiledSVC:
    """Answers ``predict_proba`` like the SVC it was exported from, with numpy alone."""

    def __init__(self, arrays):
        self.support_vectors = np.asarray(arrays["support_vectors"], dtype=np.float64)
        self.n_features_in_ = self.support_vectors.shape[1]
        self.classes_ = np.asarray(arrays["classes"])
        self.gamma = float(arrays["gamma"])
        self.prob_a = np.asarray(arrays["prob_a"], dtype=np.float64)
        self.prob_b = np.asarray(arrays["prob_b"], dtype=np.float64)
        self.intercept = np.asarray(arrays["intercept"], dtype=np.float64)
        self._sv_sq = np.einsum("ij,ij->i", self.support_vectors, self.support_vectors)
        self._pairs = self._pair_weights(np.asarray(arrays["n_support"]),
                                         np.asarray(arrays["dual_coef"], dtype=np.float64))

    @classmethod
    def load(cls, path) -> "CompiledSVC":
        with np.load(path) as arrays:
            return cls(arrays)

    def _pair_weights(self, n_support: np.ndarray, dual_coef: np.ndarray) -> np.ndarray:
        """One row of support-vector weights per class pair (i < j), libsvm's layout unrolled."""
        k = len(self.classes_)
        starts = np.concatenate([[0], np.cumsum(n_support)])
        weights = []
        for i in range(k):
            for j in range(i + 1, k):
                row = np.zeros(starts[-1])
                row[starts[i]:starts[i + 1]] = dual_coef[j - 1, starts[i]:starts[i + 1]]
                row[starts[j]:starts[j + 1]] = dual_coef[i, starts[j]:starts[j + 1]]
                weights.append(row)
        return np.array(weights).T  # (n_sv, n_pairs)

    def decision_pairs(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[-1]} features, but the model expects {self.n_features_in_}")
        sq = np.einsum("ij,ij->i", X, X)[:, None] + self._sv_sq[None, :] - 2.0 * X @ self.support_vectors.T
        kernel = np.exp(-self.gamma * np.maximum(sq, 0.0))
        return kernel @ self._pairs + self.intercept

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        dec = self.decision_pairs(X)
        f = dec * self.prob_a + self.prob_b
        # libsvm's sigmoid_predict, written to avoid overflow on either side
        pairwise = np.where(f >= 0, np.exp(-np.abs(f)) / (1.0 + np.exp(-np.abs(f))),
                            1.0 / (1.0 + np.exp(-np.abs(f))))
        pairwise = np.clip(pairwise, _MIN_PROB, 1 - _MIN_PROB)
        return np.array([_couple(row, len(self.classes_)) for row in pairwise])

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def _couple(pairwise: np.ndarray, k: int) -> np.ndarray:
    """libsvm's multiclass_probability for one sample (pairwise in i<j order)."""
    r = np.zeros((k, k))
    iu = np.triu_indices(k, 1)
    r[iu] = pairwise
    r[(iu[1], iu[0])] = 1.0 - pairwise
    Q = -r.T * r            # Q[t][j] = -r[j][t] * r[t][j]
    np.fill_diagonal(Q, 0.0)
    Q[np.diag_indices(k)] = np.sum(r * r, axis=0) - np.diag(r) ** 2  # sum_{j != t} r[j][t]^2
    p = np.full(k, 1.0 / k)
    eps = 0.005 / k
    for _ in range(max(100, k)):
        Qp = Q @ p
        pQp = p @ Qp
        if np.max(np.abs(Qp - pQp)) < eps:
            break
        for t in range(k):
            diff = (-Qp[t] + pQp) / Q[t, t]
            p[t] += diff
            pQp = (pQp + diff * (diff * Q[t, t] + 2 * Qp[t])) / (1 + diff) / (1 + diff)
            Qp = (Qp + diff * Q[t]) / (1 + diff)
            p /= (1 + diff)
    return p


class SVCFamily(ModelFamily):
    name = "svc"
    pipeline = features.INK

    def build(self):
        """RBF SVM with Platt-scaled probabilities.

        scikit-learn 1.9 deprecates ``probability=True`` in favour of
        ``CalibratedClassifierCV(SVC(), ensemble=False)``, but that wrapper costs
        ~1.2 ms per single-drawing ``predict_proba`` against ~0.15 ms here;
        revisit before scikit-learn 1.11 removes it.
        """
        from sklearn.svm import SVC

        # A 1 GB kernel cache (default 200 MB) fits ~24,000 training rows: measured 28 s -> 21 s.
        return SVC(kernel="rbf", C=10.0, gamma="scale", probability=True, random_state=0,
                   cache_size=1000)

    def export(self, estimator) -> dict[str, bytes]:
        buffer = io.BytesIO()
        if not export(estimator, buffer):
            raise ValueError(f"{type(estimator).__name__} is not an RBF SVC with probabilities")
        return {COMPILED_NAME: buffer.getvalue()}

    def load(self, files: dict[str, bytes]) -> CompiledSVC:
        return CompiledSVC.load(io.BytesIO(files[COMPILED_NAME]))


FAMILY = SVCFamily()
