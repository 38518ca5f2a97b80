"""shared.model.training.feature_cache and the fixed training set's on-disk cache (shared.model.training.fitting.prepare_fixed)."""
import numpy as np
import pytest

from shared.model.training import feature_cache
from shared.model.features import FeaturePipeline
from shared.model.training import fitting as training
from shared.model import features as preprocess


def test_the_fingerprint_follows_sources_libraries_and_parameters(tmp_path, monkeypatch):
    (tmp_path / "a.py").write_text("X = 1\n")
    (tmp_path / "b.py").write_text("Y = 2\n")
    base = feature_cache.fingerprint(("a.py", "b.py"), {"n": 1}, folder=tmp_path)
    assert base == feature_cache.fingerprint(("b.py", "a.py"), {"n": 1}, folder=tmp_path)
    assert base != feature_cache.fingerprint(("a.py", "b.py"), {"n": 2}, folder=tmp_path)
    (tmp_path / "b.py").write_text("Y = 3\n")
    changed = feature_cache.fingerprint(("a.py", "b.py"), {"n": 1}, folder=tmp_path)
    assert changed != base
    monkeypatch.setattr(feature_cache, "library_versions", lambda: {"pillow": "0.0"})
    assert feature_cache.fingerprint(("a.py", "b.py"), {"n": 1}, folder=tmp_path) != changed


def test_arrays_round_trip_and_other_fingerprints_are_removed(tmp_path):
    X = np.arange(12, dtype=np.float32).reshape(3, 4)
    old = feature_cache.save_arrays(tmp_path, "help", "old", {"X": X})
    new = feature_cache.save_arrays(tmp_path, "help", "new", {"X": X * 2})
    assert not old.exists() and new.exists()
    np.testing.assert_array_equal(feature_cache.load_arrays(tmp_path, "help", "new")["X"], X * 2)
    assert feature_cache.load_arrays(tmp_path, "help", "old") is None
    assert not list(tmp_path.glob("*.tmp")), "written atomically: no temp file left"


@pytest.mark.parametrize("damage", [b"", b"not a zip file", None])
def test_an_unreadable_file_is_no_cache(tmp_path, damage):
    path = feature_cache.save_arrays(tmp_path, "help", "abc", {"X": np.ones((2, 2), np.float32)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage is None else damage)
    assert feature_cache.load_arrays(tmp_path, "help", "abc") is None


def test_a_file_renamed_to_another_fingerprint_is_refused(tmp_path):
    path = feature_cache.save_arrays(tmp_path, "help", "abc", {"X": np.ones((2, 2), np.float32)})
    path.rename(tmp_path / "help-def.npz")
    assert feature_cache.load_arrays(tmp_path, "help", "def") is None


# -- the fixed training set ---------------------------------------------------
@pytest.fixture
def small_fixed(monkeypatch):
    """A small fixed set (fast) and a private in-process cache, restored afterwards."""
    monkeypatch.setattr(training, "_CACHE", {})
    monkeypatch.setattr(training, "AUGMENT_COPIES", 1)
    monkeypatch.setattr(training, "SYNTHETIC_COUNT", 20)
    monkeypatch.setattr(training, "SCAN_COUNT", 40)
    return training


def _forget(monkeypatch):
    """As a new process would start: nothing in memory."""
    monkeypatch.setattr(training, "_CACHE", {})


def test_the_fixed_set_is_computed_once_then_read_back_identical(small_fixed, tmp_path, monkeypatch):
    assert training.prepare_fixed(tmp_path) == "computed"
    assert training.prepare_fixed(tmp_path) == "memory"
    train, test = training.shipped_digits()
    extra = training._fixed_extra()
    assert len(extra.y) == len(train.y) + 20 + len(training.scan_sets()[0].y)
    _forget(monkeypatch)

    def no_recompute(*a, **k):
        raise AssertionError("the fixed set was recomputed despite a valid cache")

    monkeypatch.setattr(training.synthetic, "generate", no_recompute)
    monkeypatch.setattr(FeaturePipeline, "rows", no_recompute)
    assert training.prepare_fixed(tmp_path) == "disk"
    again_train, again_test = training.shipped_digits()
    np.testing.assert_array_equal(again_train.X, train.X)
    np.testing.assert_array_equal(again_test.y, test.y)
    np.testing.assert_array_equal(training._fixed_extra().X, extra.X)
    np.testing.assert_array_equal(training._fixed_extra().y, extra.y)


def test_a_changed_fingerprint_recomputes(small_fixed, tmp_path, monkeypatch):
    training.prepare_fixed(tmp_path)
    first = {p.name for p in tmp_path.glob("fixed-*.npz")}
    _forget(monkeypatch)
    monkeypatch.setattr(training, "SYNTHETIC_COUNT", 30)   # as if the code had changed
    assert training.prepare_fixed(tmp_path) == "computed"
    assert len(training._fixed_extra().y) == (len(training.shipped_digits()[0].y) + 30
                                              + len(training.scan_sets()[0].y))
    second = {p.name for p in tmp_path.glob("fixed-*.npz")}
    assert len(second) == 1 and second != first, "the stale file is replaced"


@pytest.mark.parametrize("edited", ["model/features.py", "model/training/synthetic.py",
                                    "model/training/scans.py",
                                    "model/training/fitting.py", "images/ink.py", "images/drawing.py"])
def test_an_edited_source_file_changes_the_fixed_fingerprint(small_fixed, tmp_path, monkeypatch, edited):
    for name in feature_cache.FIXED_SOURCES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes((feature_cache._SHARED / name).read_bytes())
    monkeypatch.setattr(feature_cache, "_SHARED", tmp_path)
    before = training.fixed_fingerprint()
    (tmp_path / edited).write_text((tmp_path / edited).read_text() + "\n# edited\n")
    assert training.fixed_fingerprint() != before


def test_a_corrupt_fixed_cache_is_ignored_and_rebuilt(small_fixed, tmp_path, monkeypatch):
    training.prepare_fixed(tmp_path)
    expected = training.shipped_digits()[0].X
    [path] = tmp_path.glob("fixed-*.npz")
    path.write_bytes(path.read_bytes()[:1000])
    _forget(monkeypatch)
    assert training.prepare_fixed(tmp_path) == "computed"
    np.testing.assert_array_equal(training.shipped_digits()[0].X, expected)
    _forget(monkeypatch)
    assert training.prepare_fixed(tmp_path) == "disk", "the rebuilt file is readable"


def test_a_cache_with_the_wrong_feature_width_is_refused(small_fixed, tmp_path, monkeypatch):
    bad = np.zeros((5, preprocess.FEATURE_SIZE - 1), np.float32)
    feature_cache.save_arrays(tmp_path, training.FIXED_KIND, training.fixed_fingerprint(), {
        "train_X": bad, "train_y": np.zeros(5, int), "test_X": bad, "test_y": np.zeros(5, int),
        "extra_X": bad, "extra_y": np.zeros(5, int)})
    assert training.prepare_fixed(tmp_path) == "computed"
    assert training.shipped_digits()[0].X.shape[1] == preprocess.FEATURE_SIZE


def test_an_unwritable_cache_folder_only_costs_time(small_fixed, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert training.prepare_fixed(blocker / "cache") == "computed"
    assert training.shipped_digits()[0].X.shape[1] == preprocess.FEATURE_SIZE


def test_the_first_models_training_leaves_the_fixed_set_for_the_retrain_worker(trained_store, monkeypatch):
    """A fresh install computes the fixed set once: the retrain worker's warm-up reads it from disk."""
    assert list(feature_cache.directory(trained_store).glob("fixed-*.npz"))
    _forget(monkeypatch)
    monkeypatch.setattr(training.synthetic, "generate", lambda *a, **k: pytest.fail("recomputed"))
    assert training.prepare_fixed(feature_cache.directory(trained_store)) == "disk"
