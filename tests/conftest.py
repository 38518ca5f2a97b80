"""Fixtures shared by every test: a private redis-server, a trained model store, a config.

Tests never touch a Redis they did not start: ``redis_server`` runs its own
``redis-server`` on a free port for the session and only that one is flushed.

Under CI (``CI=true``, set by ``.ci/run``) a skipped test fails the run unless
it is in ``CI_SKIP_ALLOWED``: a green CI must mean every promise was checked,
not that the tool a test needed was missing.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import redis

from shared.config import Config
from shared.model.store import ModelRegistry
from swagdigits.embedded_redis import EmbeddedRedis


# node id -> why it may skip even under CI (empty: nothing may).
CI_SKIP_ALLOWED: dict[str, str] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI") == "true" and item.nodeid not in CI_SKIP_ALLOWED:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = (f"skipped under CI=true ({reason}); install what it needs in .ci/run "
                           f"or list it in tests/conftest.py CI_SKIP_ALLOWED with the reason")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), persistent=False).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server) -> str:
    return redis_server.url


@pytest.fixture
def redis_conn(redis_server):
    conn = redis.Redis.from_url(redis_server.url)
    yield conn
    conn.flushdb()  # our own server only
    conn.close()


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory) -> Path:
    """A model store holding one production model, trained once per session."""
    from shared.model.training.publishing import train_initial

    root = tmp_path_factory.mktemp("store") / "models"
    train_initial(ModelRegistry(root), source="test fixture")
    return root


@pytest.fixture
def model_dir(trained_store, tmp_path) -> Path:
    """A private copy of the trained store, so a test may change it freely."""
    target = tmp_path / "models"
    # The feature cache the first training leaves beside the models is tens of MB: not copied.
    shutil.copytree(trained_store, target, ignore=shutil.ignore_patterns("feature-cache"))
    _rewrite_store_paths(target, trained_store)
    return target


def _rewrite_store_paths(target: Path, original: Path) -> None:
    """ModelStore metadata records absolute artifact paths; point them at the copy."""
    for meta in target.rglob("*.json"):
        text = meta.read_text()
        if str(original) in text:
            meta.write_text(text.replace(str(original), str(target)))


@pytest.fixture
def clean_redis(redis_server):
    """Start each test on an empty database of our own server: nothing leaks between tests."""
    conn = redis.Redis.from_url(redis_server.url)
    conn.flushdb()
    conn.close()
    return redis_server


@pytest.fixture
def config(tmp_path, clean_redis, model_dir) -> Config:
    redis_server = clean_redis
    return Config.from_env({}, redis_url=redis_server.url, data_dir=tmp_path, model_dir=model_dir,
                           help_dir=tmp_path / "help_data", predict_timeout=3.0)


@pytest.fixture
def help_store(config, redis_conn):
    """A help store holding 40 drawings: each digit drawn with four brushes."""
    from shared.help_store import HelpStore
    from testkit.drawings import digit_png

    store = HelpStore.from_config(config, redis_conn)
    for brush in (12, 16, 20, 24):
        for d in range(10):
            store.add(digit_png(d, brush=brush), d)
    return store
