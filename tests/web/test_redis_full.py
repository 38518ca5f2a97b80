"""A Redis at its ``maxmemory`` (noeviction) refuses writes: the web tier answers 503 JSON, not 500.

A private redis-server of this test's own (never the machine's 6379) is
filled to its memory limit; every write route then gets a clear JSON 503
with ``Retry-After`` naming the cause, and nothing half-done is left behind.
"""
from __future__ import annotations

import base64
import dataclasses

import pytest
import redis

from swagdigits.embedded_redis import EmbeddedRedis
from testkit.drawings import digit_png
from web import create_app
from web.services import Services


@pytest.fixture
def full_redis(tmp_path):
    server = EmbeddedRedis(tmp_path / "redis-full", persistent=False).start()
    conn = redis.Redis.from_url(server.url)
    try:
        yield conn
    finally:
        conn.close()
        server.stop()


def _fill(conn: redis.Redis) -> None:
    """Data well past the cap: every write that needs memory is then refused (noeviction)."""
    for i in range(32):
        conn.set(f"ballast:{i}", b"x" * 64 * 1024)
    used = int(conn.info("memory")["used_memory"])
    conn.config_set("maxmemory-policy", "noeviction")
    conn.config_set("maxmemory", used - 1024 * 1024)
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        conn.incr("probe")


@pytest.fixture
def full_app(web_config, full_redis, tmp_path):
    config = dataclasses.replace(web_config, rate_limit_predict=600, rate_limit_help=60)
    app = create_app(config, services=Services.connect(config, conn=full_redis))
    app.testing = True
    client = app.test_client()
    # Warm the rate limiter's salt and the help counters while there is room.
    client.get("/helpdata")
    client.post("/api/predict?wait=0", json={"image": base64.b64encode(digit_png(1)).decode()})
    _fill(full_redis)
    return app


def _b64(d: int) -> str:
    return base64.b64encode(digit_png(d)).decode()


@pytest.mark.parametrize("path, body", [
    ("/api/predict?wait=0", {"image": _b64(3)}),
    ("/api/batches", {"images": [_b64(3), _b64(4)]}),
    ("/helpdata", {"image": _b64(5), "label": 5}),
])
def test_writes_to_a_full_redis_are_503_json_saying_so(full_app, web_config, path, body):
    res = full_app.test_client().post(path, json=body)
    assert res.status_code == 503, (res.status_code, res.get_data(as_text=True)[:300])
    assert res.is_json and res.json["status"] == 503
    assert "memory" in res.json["error"] and res.headers["Retry-After"]
    assert list(web_config.help_dir.rglob("*.png")) == []   # nothing stored half-way


def test_the_embedded_redis_of_swagdigits_up_is_capped_without_eviction(tmp_path):
    from shared.config import Config

    server = EmbeddedRedis(tmp_path / "capped", persistent=False,
                           maxmemory=Config.from_env({}).redis_maxmemory).start()
    try:
        conn = redis.Redis.from_url(server.url)
        assert conn.config_get("maxmemory")["maxmemory"] == str(512 * 1024 * 1024)
        assert conn.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        conn.close()
    finally:
        server.stop()
