"""The numpy-only SVC must answer exactly as scikit-learn's, so workers can skip importing it."""
import subprocess
import sys

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC

import pickle

from shared.model.families.svc import CalibratedSVC, CompiledSVC, _sigmoid_train, export
from shared.model.store import ModelRegistry


@pytest.fixture(scope="module")
def svc_and_data():
    rng = np.random.default_rng(1)
    centres = rng.normal(0, 4, (10, 12))
    X = np.concatenate([c + rng.normal(0, 2.5, (30, 12)) for c in centres])
    y = np.repeat(np.arange(10), 30)
    return SVC(kernel="rbf", C=10, gamma="scale", probability=True, random_state=0).fit(X, y), X


def test_probabilities_match_scikit_learn(svc_and_data, tmp_path):
    svc, X = svc_and_data
    assert export(svc, tmp_path / "m.npz")
    compiled = CompiledSVC.load(tmp_path / "m.npz")
    np.testing.assert_allclose(compiled.predict_proba(X), svc.predict_proba(X), atol=1e-9)
    assert list(compiled.classes_) == list(svc.classes_)


def test_a_row_of_the_wrong_width_is_refused(svc_and_data, tmp_path):
    svc, X = svc_and_data
    export(svc, tmp_path / "m.npz")
    with pytest.raises(ValueError, match="features"):
        CompiledSVC.load(tmp_path / "m.npz").predict_proba(np.zeros((1, 5)))


def test_other_estimators_are_not_compiled(tmp_path, svc_and_data):
    _, X = svc_and_data
    assert not export(LogisticRegression().fit(X, np.repeat(np.arange(10), 30)), tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


def test_a_worker_loads_the_production_model_without_importing_scikit_learn(trained_store):
    code = ("import sys; from shared.model.store import ModelRegistry; "
            f"m = ModelRegistry({str(trained_store)!r}).load_production(); "
            "print(type(m.predictor).__name__, 'sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["CompiledSVC", "False"]


def test_the_compiled_model_is_part_of_the_checksummed_artifact(model_dir):
    registry = ModelRegistry(model_dir)
    model = registry.load_production()
    assert isinstance(model.predictor, CompiledSVC)


# -- calibration on a held-out half ---------------------------------------------
def _blobs(seed, n=40, spread=2.5):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(1).normal(0, 4, (10, 12))
    X = np.concatenate([c + rng.normal(0, spread, (n, 12)) for c in centres])
    return X, np.repeat(np.arange(10), n)


@pytest.fixture(scope="module")
def calibrated():
    return CalibratedSVC().fit(*_blobs(2, n=100))


def test_the_sigmoid_fit_recovers_a_known_sigmoid():
    rng = np.random.default_rng(0)
    dec = rng.normal(0, 2, 20000)
    positive = rng.random(20000) < 1 / (1 + np.exp(-1.5 * dec + 0.4))   # A = -1.5, B = 0.4
    a, b = _sigmoid_train(dec, positive)
    assert a == pytest.approx(-1.5, abs=0.08) and b == pytest.approx(0.4, abs=0.08)


def test_calibrated_probabilities_are_as_good_as_libsvm_cross_validation(calibrated):
    libsvm = SVC(kernel="rbf", C=10, gamma="scale", probability=True, random_state=0).fit(
        *_blobs(2, n=100))                               # the same rows, 5-fold cross-validation
    X, y = _blobs(3)                                     # new samples of the same classes
    def log_loss(p):
        return -np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-9, 1)))
    ours, theirs = calibrated.predict_proba(X), libsvm.predict_proba(X)
    np.testing.assert_allclose(ours.sum(axis=1), 1.0, atol=1e-9)
    assert np.mean(ours.argmax(1) == y) >= np.mean(theirs.argmax(1) == y) - 0.02
    assert log_loss(ours) <= log_loss(theirs) * 1.1


def test_confidence_follows_how_often_it_is_right(calibrated):
    X, y = _blobs(4, n=200, spread=3.5)
    p = calibrated.predict_proba(X)
    sure, unsure = p.max(1) >= 0.9, p.max(1) < 0.6
    right = p.argmax(1) == y
    assert sure.any() and unsure.any()
    assert right[sure].mean() > 0.85 and right[unsure].mean() < 0.75


def test_the_calibrated_svc_is_exported_and_served_exactly(calibrated, tmp_path):
    X, _ = _blobs(5)
    assert export(calibrated, tmp_path / "m.npz")
    np.testing.assert_allclose(CompiledSVC.load(tmp_path / "m.npz").predict_proba(X),
                               calibrated.predict_proba(X), atol=1e-12)
    again = pickle.loads(pickle.dumps(calibrated))       # as the store keeps it for republishing
    np.testing.assert_array_equal(again.predict(X), calibrated.predict(X))


def test_sample_weights_reach_the_served_fit():
    X, y = _blobs(6, spread=6.0)                         # classes overlap: weights decide there
    heavy = np.where(y == 3, 20.0, 1.0)
    plain, weighted = CalibratedSVC().fit(X, y), CalibratedSVC().fit(X, y, sample_weight=heavy)
    grid = np.random.default_rng(7).normal(0, 6, (2000, 12))
    assert np.mean(weighted.predict(grid) == 3) > np.mean(plain.predict(grid) == 3)
