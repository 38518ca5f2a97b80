"""shared.model.training.fitting: a model trained on the shipped digits reads drawings."""
import io

import joblib
import numpy as np
import pytest

from shared.model.training import fitting as training
from shared.model import features as preprocess
from shared.images import drawing
from shared.images.upload import ImageLimits
from shared.images.ink import decode_ink
from testkit.drawings import sample_strokes

LIMITS = ImageLimits(4 * 1024 * 1024, 4096 * 4096, 8192)


@pytest.fixture(scope="module")
def shipped():
    return training.shipped_digits()


@pytest.fixture(scope="module")
def model(shipped):
    return training.fit(shipped[0])


def drawings():
    """Test-made drawings of every digit in several hands: (label, png)."""
    out = []
    styles = [
        dict(),
        dict(height=120, centre=(90, 100), brush=10),
        dict(height=220, slant=0.25, brush=24),
        dict(height=150, slant=-0.15, width_scale=0.8, centre=(170, 150)),
        dict(height=180, width_scale=1.2, brush=14),
    ]
    for style in styles:
        style = dict(style)
        brush = style.pop("brush", drawing.BRUSH_WIDTH)
        for d in range(10):
            out.append((d, drawing.render_strokes(sample_strokes(d, **style), brush=brush)))
    return out


def test_shipped_split_is_fixed_and_in_feature_space(shipped):
    train, test = shipped
    assert train.X.shape[1] == preprocess.FEATURE_SIZE == test.X.shape[1]
    assert len(train.y) + len(test.y) == 1797
    assert abs(len(test.y) / 1797 - training.HOLDOUT_SHARE) < 0.01
    assert set(np.unique(train.y)) == set(range(10))
    again_train, again_test = training.shipped_digits()
    np.testing.assert_array_equal(again_train.X, train.X)
    np.testing.assert_array_equal(again_test.y, test.y)


def test_model_contract(model):
    assert list(model.classes_) == list(range(10))
    proba = model.predict_proba(np.zeros((2, preprocess.FEATURE_SIZE), np.float32))
    assert proba.shape == (2, 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)


def test_holdout_accuracy(model, shipped):
    assert training.accuracy(model, shipped[1]) > 0.95


def test_model_survives_joblib(model, shipped):
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    buffer.seek(0)
    loaded = joblib.load(buffer)
    np.testing.assert_array_equal(loaded.predict(shipped[1].X[:50]), model.predict(shipped[1].X[:50]))


def test_recognises_test_made_drawings(model):
    samples = drawings()
    X = preprocess.INK.rows([decode_ink(png, LIMITS) for _, png in samples])
    y = np.array([label for label, _ in samples])
    predicted = model.predict(X)
    rate = float(np.mean(predicted == y))
    assert rate >= 0.85, f"recognised {rate:.2f}; wrong: " + ", ".join(
        f"{t}->{p}" for t, p in zip(y, predicted) if t != p)


def test_fit_accepts_appended_help_data(shipped):
    train = shipped[0]
    help_X = preprocess.INK.rows(
        [decode_ink(drawing.render_strokes(sample_strokes(7, slant=0.1)), LIMITS)] * 3)
    extended = training.Dataset(np.concatenate([train.X, help_X]), np.concatenate([train.y, [7, 7, 7]]))
    estimator = training.fit(extended)
    assert list(estimator.classes_) == list(range(10))
    assert estimator.predict(help_X[:1])[0] == 7


def test_appended_help_rows_count_by_their_weight(shipped):
    """Help rows that contradict the shipped digits win at full weight, not at a small one."""
    train, held_out = shipped
    ones = train.X[train.y == 1]
    contradicting = training.Dataset(np.concatenate([train.X] + [ones] * 3),
                                     np.concatenate([train.y, np.full(3 * len(ones), 7)]))
    test_ones = held_out.X[held_out.y == 1]
    heavy = training.fit(contradicting, appended_weight=1.0).predict(test_ones)
    light = training.fit(contradicting, appended_weight=0.01).predict(test_ones)
    assert np.mean(heavy == 7) > np.mean(light == 7) + 0.25, "weight must change what is learnt"
    assert np.mean(light == 1) > 0.8, "at a tiny weight the shipped digits still rule"
