"""Help images are featurised between retrainings, so a retraining decodes none it finds cached."""
import json
import os
import signal
import time

import numpy as np
import pytest

from shared.messaging import protocol as p
from shared.model.features import INK
from shared.model.training import feature_cache
from shared.model.training.feature_cache import HelpFeatureCache
from testkit.drawings import digit_png
from workers import help_featuriser, retrain_job
from workers.help_featuriser import HelpFeaturiser

SHARE = 0.3


@pytest.fixture
def featuriser(store, limits, redis_conn, tmp_path):
    return HelpFeaturiser(store, tmp_path, limits, INK, redis_conn)


def test_a_sweep_leaves_the_retraining_nothing_to_decode(featuriser, store, limits, tmp_path, decodes):
    assert featuriser.sweep() == 20
    assert len(decodes) == 20
    cache = HelpFeatureCache(tmp_path).load()
    loaded = retrain_job.load_help(store.entries(), store.holdout(SHARE), limits, INK, cache=cache)
    assert len(decodes) == 20 and cache.hits == 20, "the retraining decoded nothing"
    uncached = retrain_job.load_help(store.entries(), store.holdout(SHARE), limits, INK)
    for part in ("train", "holdout"):
        np.testing.assert_array_equal(getattr(loaded, part).X, getattr(uncached, part).X)


def test_only_images_that_arrived_since_are_featurised(featuriser, store, decodes):
    featuriser.sweep()
    assert featuriser.sweep() == 0 and len(decodes) == 20
    store.add(digit_png(7, brush=28), 7)
    assert featuriser.sweep() == 1 and len(decodes) == 21


def test_images_a_retraining_cached_are_not_decoded_again(featuriser, store, limits, tmp_path, decodes):
    retrain_job.load_help(store.entries(), store.holdout(SHARE), limits, INK,
                          cache=HelpFeatureCache(tmp_path).load())
    assert len(decodes) == 20
    assert featuriser.sweep() == 0 and len(decodes) == 20


def test_rows_a_retraining_wrote_meanwhile_are_kept(featuriser, store, limits, tmp_path, decodes):
    featuriser.sweep()
    store.add(digit_png(5, brush=28), 5)            # a retraining sees and caches this one
    retrain_job.load_help(store.entries(), store.holdout(SHARE), limits, INK,
                          cache=HelpFeatureCache(tmp_path).load())
    store.add(digit_png(6, brush=28), 6)            # and this one arrives after it
    assert featuriser.sweep() == 1
    assert len(decodes) == 22, "each image decoded once"
    assert len(HelpFeatureCache(tmp_path).load().rows) == 22, "the retraining's row was not dropped"


def test_a_sweep_with_nothing_new_reads_no_file(featuriser, store, monkeypatch):
    featuriser.sweep()
    loads = []
    real = HelpFeatureCache.load
    monkeypatch.setattr(HelpFeatureCache, "load", lambda self: loads.append(1) or real(self))
    assert featuriser.sweep() == 0
    store.add(digit_png(8, brush=28), 8)
    assert featuriser.sweep() == 1 and loads == [], "its own last write is still current"


def test_a_sweep_does_at_most_one_batch(store, limits, redis_conn, tmp_path):
    featuriser = HelpFeaturiser(store, tmp_path, limits, INK, redis_conn, batch=8)
    assert [featuriser.sweep() for _ in range(4)] == [8, 8, 4, 0]
    assert len(HelpFeatureCache(tmp_path).load().rows) == 20


def test_it_waits_while_a_retraining_runs(featuriser, redis_conn, tmp_path, decodes):
    redis_conn.set(p.RETRAIN_RUNNING_KEY, "job-1")
    assert featuriser.sweep() == 0
    assert decodes == [] and not list(tmp_path.glob("help-*.npz"))
    redis_conn.delete(p.RETRAIN_RUNNING_KEY)
    assert featuriser.sweep() == 20


def test_rows_computed_while_a_retraining_began_are_not_written_over_its_cache(
        featuriser, redis_conn, tmp_path, monkeypatch):
    real = retrain_job.decode_ink

    def slow_start(data, limits):   # the retraining takes the slot while the sweep decodes
        redis_conn.set(p.RETRAIN_RUNNING_KEY, "job-1")
        return real(data, limits)

    monkeypatch.setattr(retrain_job, "decode_ink", slow_start)
    assert featuriser.sweep() == 0
    assert not list(tmp_path.glob("help-*.npz"))
    redis_conn.delete(p.RETRAIN_RUNNING_KEY)
    monkeypatch.setattr(retrain_job, "decode_ink", real)
    assert featuriser.sweep() == 20, "the images are featurised after the retraining"


def test_an_unreadable_image_is_reported_once_and_does_not_stop_the_others(
        featuriser, store, config, caplog, decodes):
    bad = store.root / "4" / ("f" * 32 + ".png")
    bad.write_bytes(b"not a png")
    bad.with_suffix(".json").write_text(json.dumps({"sha256": "f" * 64, "label": 4}))
    assert featuriser.sweep() == 20
    assert featuriser.sweep() == 0
    assert len(decodes) == 21, "the bad image was tried once"
    assert sum("cannot be featurised" in r.getMessage() for r in caplog.records) == 1


def test_the_retrain_workers_child_fills_the_cache_and_dies_with_its_parent(config, store, redis_conn):
    """A real child process, forked by a stand-in for the retrain worker."""
    read, write = os.pipe()
    parent = os.fork()
    if parent == 0:   # the stand-in worker: start the featuriser, report its pid, wait to be killed
        os.close(read)
        child = help_featuriser.start(config)
        os.write(write, str(child.pid).encode())
        time.sleep(60)
        os._exit(0)
    os.close(write)
    child_pid = int(os.read(read, 32))
    try:
        cache_dir = feature_cache.directory(config.model_dir)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(HelpFeatureCache(cache_dir).load().rows) < 20:
            time.sleep(0.1)
        assert len(HelpFeatureCache(cache_dir).load().rows) == 20
        os.kill(parent, signal.SIGKILL)
        os.waitpid(parent, 0)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(child_pid):
            time.sleep(0.05)
        assert not _alive(child_pid), "the featuriser outlived the worker"
    finally:   # whatever failed, leave no process behind (it would hold the test run's output open)
        for pid in (parent, child_pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
