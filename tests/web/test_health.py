import time

import redis

from shared.messaging import heartbeat


def test_healthz_only_says_the_process_is_up(client):
    assert client.get("/healthz").json == {"status": "ok"}


def test_readyz_names_what_is_missing(client):
    res = client.get("/readyz")
    assert res.status_code == 503
    assert res.json["missing"] == ["predict_worker", "production_model"]


def test_readyz_is_ready_with_a_live_worker_serving_a_model(client, fake_conn):
    heartbeat.beat(fake_conn, "w1", {"role": "predict", "model_version": "v1"}, 5)
    res = client.get("/readyz")
    assert res.status_code == 200
    assert res.json == {"ready": True, "missing": [], "predict_workers": 1, "model_versions": ["v1"]}


def test_readyz_is_503_when_redis_is_down(client, fake_conn, monkeypatch):
    def down():
        raise redis.ConnectionError("down")

    monkeypatch.setattr(fake_conn, "ping", down)
    res = client.get("/readyz")
    assert res.status_code == 503 and res.json["missing"] == ["redis"]


def test_the_page_has_the_canvas_and_no_inline_script(client):
    html = client.get("/").get_data(as_text=True)
    assert '<canvas id="canvas"' in html and 'id="prediction"' in html
    assert "<script>" not in html


def test_readyz_is_503_once_the_only_workers_heartbeat_is_older_than_three_intervals(client, fake_conn,
                                                                                     web_config):
    from shared.messaging import protocol as p

    interval = web_config.worker_heartbeat
    heartbeat.beat(fake_conn, "w1", {"role": "predict", "model_version": "v1"}, interval)
    assert client.get("/readyz").status_code == 200
    # The same worker, last heard of just inside three intervals ago: still ready.
    fake_conn.zadd(p.WORKERS_KEY, {"w1": time.time() - 3 * interval + 2})
    assert client.get("/readyz").status_code == 200
    # Just outside: it is not counted, whatever its hash still says.
    fake_conn.zadd(p.WORKERS_KEY, {"w1": time.time() - 3 * interval - 1})
    res = client.get("/readyz")
    assert res.status_code == 503
    assert res.json["missing"] == ["predict_worker", "production_model"] and res.json["predict_workers"] == 0
