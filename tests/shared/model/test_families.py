"""The model seam: families are found by module, and a new one is served through the store unchanged."""
import io

import numpy as np
import pytest

from shared.images.upload import ImageLimits
from shared.model import families
from shared.model.base import ModelFamily, ModelUnusable, Trained
from shared.model.features import INK
from shared.model.inference import predict_images
from shared.model.store import ArtifactMismatch, ModelRegistry
from testkit.drawings import digit_png

LIMITS = ImageLimits(4 * 1024 * 1024, 4096 * 4096, 8192)


class NearestCentroid:
    """A deliberately tiny model: the mean feature row of each digit."""

    def fit(self, X, y, sample_weight=None):
        self.classes_ = np.unique(y)
        self.centroids = np.stack([X[y == c].mean(axis=0) for c in self.classes_])
        return self

    def predict_proba(self, X):
        d = ((np.asarray(X)[:, None, :] - self.centroids[None]) ** 2).sum(axis=2)
        score = np.exp(-(d - d.min(axis=1, keepdims=True)) / d.mean())
        return score / score.sum(axis=1, keepdims=True)

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class CentroidFamily(ModelFamily):
    name = "centroid"
    pipeline = INK

    def build(self):
        return NearestCentroid()

    def export(self, estimator):
        buffer = io.BytesIO()
        np.savez(buffer, centroids=estimator.centroids, classes=estimator.classes_)
        return {"centroid.npz": buffer.getvalue()}

    def load(self, files):
        with np.load(io.BytesIO(files["centroid.npz"])) as arrays:
            model = NearestCentroid()
            model.centroids, model.classes_ = arrays["centroids"], arrays["classes"]
            return model


def test_every_module_in_the_families_package_is_a_family():
    assert {"svc", "linear"} <= set(families.names())
    assert families.get().name == families.DEFAULT == "svc"
    with pytest.raises(families.UnknownFamily, match="no model family 'nope'"):
        families.get("nope")


def test_a_new_family_is_published_loaded_and_served_without_touching_other_code(tmp_path, monkeypatch):
    family = CentroidFamily()
    families.names()
    monkeypatch.setitem(families._registry, family.name, family)
    digits = list(range(10)) * 3
    X = INK.rows([_ink(d) for d in digits])
    registry = ModelRegistry(tmp_path)
    model_id = registry.publish(Trained(family, family.build().fit(X, np.array(digits))), {"source": "test"})
    registry.promote(model_id)

    model = registry.load_production()
    model.smoke_test()
    assert model.family == "centroid" and registry.info(model_id)["extra"]["features"] == INK.fingerprint
    answers, _ = predict_images(model, [digit_png(d) for d in range(10)], LIMITS)
    assert [a.digit for a in answers] == list(range(10))
    copy = registry.load_trained(model_id)   # its own estimator class, kept as a pickle in the artifact
    assert copy.family is family and list(copy.predict(X)) == list(model.predict(X))


def test_a_model_whose_family_is_not_installed_is_refused(tmp_path, monkeypatch):
    family = CentroidFamily()
    families.names()
    monkeypatch.setitem(families._registry, family.name, family)
    X = INK.rows([_ink(d) for d in range(10)])
    registry = ModelRegistry(tmp_path)
    model_id = registry.publish(Trained(family, family.build().fit(X, np.arange(10))), {})
    monkeypatch.delitem(families._registry, family.name)
    with pytest.raises(ArtifactMismatch, match="no model family 'centroid'"):
        registry.load(model_id)


def test_a_model_that_cannot_answer_fails_its_smoke_test():
    class Broken:
        classes_ = np.arange(10)

        def predict_proba(self, X):
            return np.full((len(X), 3), np.nan)

    with pytest.raises(ModelUnusable):
        Trained(CentroidFamily(), Broken()).as_model().smoke_test()


def _ink(digit):
    from shared.images.ink import decode_ink

    return decode_ink(digit_png(digit), LIMITS)
