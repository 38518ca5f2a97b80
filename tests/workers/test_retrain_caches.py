"""Retraining reuses help-image features (by SHA-256) and the fixed training set across runs."""
import numpy as np

from shared.model.training import feature_cache
from shared.model.training.feature_cache import HelpFeatureCache
from shared.model.store import ModelRegistry
from testkit.drawings import digit_png
from shared.model.features import INK
from workers import retrain_job

SHARE = 0.3


def _same(a, b):
    for part in ("train", "holdout"):
        np.testing.assert_array_equal(getattr(a, part).X, getattr(b, part).X)
        np.testing.assert_array_equal(getattr(a, part).y, getattr(b, part).y)


def test_cached_help_images_are_not_decoded_again(store, limits, tmp_path, decodes):
    uncached = retrain_job.load_help(store.entries(), store.holdout(SHARE), limits, INK)
    assert len(decodes) == 20
    first = retrain_job.load_help(store.entries(), store.holdout(SHARE), limits, INK, cache=HelpFeatureCache(tmp_path).load())
    assert len(decodes) == 40
    _same(first, uncached)

    cache = HelpFeatureCache(tmp_path).load()            # as the next retraining would
    second = retrain_job.load_help(store.entries(), store.holdout(SHARE), limits, INK, cache=cache)
    assert len(decodes) == 40 and cache.hits == 20, "every image came from the cache"
    _same(second, uncached)

    store.add(digit_png(3, brush=28), 3)
    cache = HelpFeatureCache(tmp_path).load()
    third = retrain_job.load_help(store.entries(), store.holdout(SHARE), limits, INK, cache=cache)
    assert len(decodes) == 41 and cache.hits == 20, "only the new image was decoded"
    assert len(third.train.y) + len(third.holdout.y) == 21


def test_a_corrupt_help_cache_is_ignored_and_rebuilt(store, limits, tmp_path, decodes):
    expected = retrain_job.load_help(store.entries(), store.holdout(SHARE), limits, INK, cache=HelpFeatureCache(tmp_path).load())
    [path] = tmp_path.glob("help-*.npz")
    path.write_bytes(b"PK\x03\x04 garbage")
    cache = HelpFeatureCache(tmp_path).load()
    assert cache.rows == {}
    rebuilt = retrain_job.load_help(store.entries(), store.holdout(SHARE), limits, INK, cache=cache)
    _same(rebuilt, expected)
    assert len(decodes) == 40, "decoded again after the corrupt file"
    cache = HelpFeatureCache(tmp_path).load()
    retrain_job.load_help(store.entries(), store.holdout(SHARE), limits, INK, cache=cache)
    assert cache.hits == 20 and len(decodes) == 40, "the rebuilt file is used"


def test_a_changed_decoding_fingerprint_recomputes(store, limits, tmp_path, decodes, monkeypatch):
    retrain_job.load_help(store.entries(), store.holdout(SHARE), limits, INK, cache=HelpFeatureCache(tmp_path).load())
    monkeypatch.setattr(feature_cache, "library_versions", lambda: {"pillow": "another"})
    cache = HelpFeatureCache(tmp_path).load()
    retrain_job.load_help(store.entries(), store.holdout(SHARE), limits, INK, cache=cache)
    assert cache.hits == 0 and len(decodes) == 40
    assert len(list(tmp_path.glob("help-*.npz"))) == 1, "the stale file was replaced"


def test_rows_of_the_wrong_width_are_not_used(store, limits, tmp_path, decodes):
    entries = store.entries()
    feature_cache.save_arrays(tmp_path, "help", HelpFeatureCache(tmp_path).print, {
        "sha256": np.asarray([e.sha256 for e in entries]), "X": np.zeros((len(entries), 3), np.float32)})
    cache = HelpFeatureCache(tmp_path).load()
    data = retrain_job.load_help(entries, store.holdout(SHARE), limits, INK, cache=cache)
    assert cache.hits == 0 and len(decodes) == 20
    assert data.train.X.shape[1] == INK.size


def test_featurising_in_two_processes_gives_the_same_rows(store, limits, monkeypatch, tmp_path):
    paths = [e.png for e in store.entries()]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    paths.append(bad)
    alone = retrain_job.featurise(paths, limits, INK, processes=1)
    monkeypatch.setattr(retrain_job, "PARALLEL_MIN_IMAGES", 1)
    together = retrain_job.featurise(paths, limits, INK, processes=2)
    assert len(together) == len(paths)
    for (a, why_a), (b, why_b) in zip(alone[:-1], together[:-1]):
        np.testing.assert_array_equal(a, b)
        assert why_a is why_b is None
    assert together[-1][0] is None and together[-1][1], "an unreadable image says why"


def test_a_second_retraining_reuses_both_caches(config, redis_conn, store):
    registry = ModelRegistry(config.model_dir)
    first = retrain_job.retrain(config, redis_conn, registry, store, reason="first")
    assert first["timings"]["help_cached"] == 0
    assert list((config.model_dir / "feature-cache").glob("help-*.npz"))
    second = retrain_job.retrain(config, redis_conn, registry, store, reason="second")
    assert second["timings"]["help_cached"] == 20
    assert second["timings"]["fixed_from"] in ("memory", "disk")
    assert second["candidate_accuracy"] == first["candidate_accuracy"], "same data, same model"
