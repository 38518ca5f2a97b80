"""GET /metrics on the web tier: request counts by route template, queue state, Socket.IO clients."""
import socketio as python_socketio
from prometheus_client.parser import text_string_to_metric_families

from shared.messaging.predict_queue import PredictQueue
from web import sockets
from web.sockets import socketio


def scrape(client) -> dict:
    res = client.get("/metrics")
    assert res.status_code == 200 and res.content_type.startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(res.get_data(as_text=True)) for s in family.samples}


def count(samples, route, status, method="GET"):
    return samples.get(("swagdigits_http_requests_total",
                        (("method", method), ("route", route), ("status", str(status)))), 0)


def test_requests_are_labelled_by_route_template_not_raw_path(client):
    before = scrape(client)
    for job in ("a" * 32, "b" * 32, "not-an-id"):
        client.get(f"/api/jobs/{job}")
    client.get("/no/such/page/12345")
    after = scrape(client)
    assert count(after, "/api/jobs/<job_id>", 404) - count(before, "/api/jobs/<job_id>", 404) == 3
    assert count(after, "<unmatched>", 404) - count(before, "<unmatched>", 404) == 1
    assert not any("12345" in str(key) or "aaaa" in str(key) for key in after)
    assert after[("swagdigits_http_request_duration_seconds_count",
                  (("method", "GET"), ("route", "/api/jobs/<job_id>"), ("status", "404")))] >= 3


def test_bad_input_is_counted_as_a_4xx_on_its_route(client):
    before = scrape(client)
    client.post("/api/predict", data=b"not json", content_type="application/json")
    after = scrape(client)
    assert count(after, "/api/predict", 400, "POST") - count(before, "/api/predict", 400, "POST") == 1


def test_queue_depth_and_live_workers_come_from_redis(client, fake_conn):
    queue = PredictQueue(fake_conn)
    queue.submit(b"png", limit=3)
    queue.submit(b"png", limit=3)
    samples = scrape(client)
    assert samples[("swagdigits_queue_depth", (("queue", "predict"),))] == 2
    assert samples[("swagdigits_predict_workers_live", ())] == 0
    assert samples[("swagdigits_redis_up", ())] == 1


def test_connected_socketio_clients_are_counted(app, client):
    # Flask-SocketIO's test client refuses a message queue: use an in-process manager.
    sockets.init_app(app, client_manager=python_socketio.Manager())
    before = scrape(client)[("swagdigits_socketio_connected_clients", ())]
    sio = socketio.test_client(app)
    assert sio.is_connected()
    assert scrape(client)[("swagdigits_socketio_connected_clients", ())] == before + 1
    sio.disconnect()
    assert scrape(client)[("swagdigits_socketio_connected_clients", ())] == before


def test_help_images_are_counted_and_pending_help_is_read_at_scrape_time(client):
    import base64

    from testkit.drawings import digit_png

    before = scrape(client)
    image = "data:image/png;base64," + base64.b64encode(digit_png(3)).decode()
    for _ in range(2):  # the second is a duplicate: stored once, counted once
        res = client.post("/helpdata", json={"image": image, "label": 3})
        assert res.status_code in (200, 201), res.get_data(as_text=True)
    after = scrape(client)
    assert after[("swagdigits_help_images_received_total", ())] - before.get(
        ("swagdigits_help_images_received_total", ()), 0) == 1
    assert after[("swagdigits_help_images_pending", ())] == 1
