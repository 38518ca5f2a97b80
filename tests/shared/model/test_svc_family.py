"""The numpy-only SVC must answer exactly as scikit-learn's, so workers can skip importing it."""
import subprocess
import sys

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC

from shared.model.families.svc import CompiledSVC, export
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
