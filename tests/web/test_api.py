"""POST /api/predict and GET /api/jobs/<id> as a client sees them (no worker running)."""
import base64
import io

import pytest
from PIL import Image

from shared.messaging import protocol as p
from testkit.drawings import digit_png


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def test_wait_0_queues_the_drawing_and_points_at_its_status(client, app):
    res = client.post("/api/predict?wait=0", json={"image": data_url(digit_png(3))})
    assert res.status_code == 202
    job_id = res.json["job_id"]
    assert res.headers["Location"] == f"/api/jobs/{job_id}"
    status = client.get(res.headers["Location"])
    assert status.status_code == 200 and status.json["state"] == "queued"
    queue = app.extensions["swagdigits"].queue
    assert queue.claim("w", 10, 10)[0].image == digit_png(3), "the exact bytes are queued"


def test_multipart_upload_and_bare_base64_are_accepted(client):
    res = client.post("/api/predict?wait=0", data={"file": (io.BytesIO(digit_png(1)), "one.png")})
    assert res.status_code == 202
    res = client.post("/api/predict?wait=0", json={"image": base64.b64encode(digit_png(1)).decode()})
    assert res.status_code == 202


def test_a_result_pushed_by_a_worker_is_returned(client, app):
    queue = app.extensions["swagdigits"].queue
    # Play the worker: answer the drawing as soon as it is queued.
    original_wait = queue.wait_reply

    def answer_then_wait(job_id, timeout):
        [job] = queue.claim("w", 1, 10)
        queue.complete([(job, p.PredictionResult(job.job_id, 7, [0.0] * 7 + [1.0, 0.0, 0.0], "v9",
                                                 {"queue_wait_ms": 1.0}))])
        return original_wait(job_id, timeout)

    queue.wait_reply = answer_then_wait
    res = client.post("/api/predict", json={"image": data_url(digit_png(7))})
    assert res.status_code == 200
    assert res.json["digit"] == 7 and res.json["model_version"] == "v9"
    assert set(res.json) >= {"digit", "probabilities", "model_version", "job_id", "timings"}


def test_no_worker_gives_504_with_a_message(client):
    res = client.post("/api/predict", json={"image": data_url(digit_png(2))})
    assert res.status_code == 504
    assert "no worker answered" in res.json["error"]


def test_full_queue_gives_503_with_retry_after(client):
    for _ in range(3):
        assert client.post("/api/predict?wait=0", json={"image": data_url(digit_png(2))}).status_code == 202
    res = client.post("/api/predict?wait=0", json={"image": data_url(digit_png(2))})
    assert res.status_code == 503 and res.headers["Retry-After"] == "1"
    assert "waiting" in res.json["error"]


def gif() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "GIF")
    return buf.getvalue()


@pytest.mark.parametrize("kwargs, status", [
    ({"json": {"image": ""}}, 400),
    ({"json": {"picture": "abc"}}, 400),
    ({"json": {"image": 12}}, 400),
    ({"json": ["not", "an", "object"]}, 400),
    ({"json": {"image": "%%%"}}, 400),
    ({"json": {"image": base64.b64encode(b"plain text").decode()}}, 415),
    ({"json": {"image": base64.b64encode(gif()).decode()}}, 415),
    ({"data": b"raw bytes", "content_type": "application/octet-stream"}, 415),
    ({"data": {"other": (io.BytesIO(b"x"), "x.png")}}, 400),
    ({"data": "{not json", "content_type": "application/json"}, 400),
])
def test_bad_input_gets_a_4xx_json_error_and_nothing_is_queued(client, app, kwargs, status):
    res = client.post("/api/predict?wait=0", **kwargs)
    assert res.status_code == status
    assert res.is_json and res.json["error"]
    assert app.extensions["swagdigits"].queue.conn.exists(p.PREDICT_STREAM) == 0 or \
        app.extensions["swagdigits"].queue.depth() == 0


def test_oversized_body_gets_413_json(client):
    res = client.post("/api/predict", data=b"x" * 300_000, content_type="application/json")
    assert res.status_code == 413 and res.is_json


def test_unknown_or_malformed_job_ids_are_404(client):
    for job_id in ("0" * 32, "abc", "..%2F..%2Fetc"):
        res = client.get(f"/api/jobs/{job_id}")
        assert res.status_code == 404 and res.is_json and res.json["error"]


def test_unknown_routes_and_methods_answer_json(client):
    assert client.get("/api/nope").json["status"] == 404
    res = client.get("/api/predict")
    assert res.status_code == 405 and res.is_json


def test_wait_takes_only_0_or_1_and_sid_is_bounded(client, app):
    for query in ("wait=null", "wait=false", "wait=", "sid=" + "s" * 65):
        res = client.post(f"/api/predict?{query}", json={"image": data_url(digit_png(2))})
        assert res.status_code == 400 and res.json["status"] == 400, query
    assert app.extensions["swagdigits"].queue.depth() == 0


def test_a_finished_job_is_readable_until_the_result_ttl_then_404(web_config, fake_conn):
    import time
    from dataclasses import replace

    from web import create_app
    from web.services import Services

    ttl = 2
    cfg = replace(web_config, result_ttl=ttl)
    app = create_app(cfg, services=Services.connect(cfg, conn=fake_conn))
    client = app.test_client()
    job_id = client.post("/api/predict?wait=0", json={"image": data_url(digit_png(7))}).json["job_id"]
    queue = app.extensions["swagdigits"].queue
    [job] = queue.claim("w", 1, 10)
    queue.complete([(job, p.PredictionResult(job.job_id, 7, [0.0] * 7 + [1.0, 0.0, 0.0], "v9", {}))])
    finished_at = time.monotonic()
    res = client.get(f"/api/jobs/{job_id}")
    assert res.status_code == 200 and res.json["state"] == "finished" and res.json["result"]["digit"] == 7
    deadline = finished_at + ttl + 10   # generous: the TTL is what is checked, not the scheduler
    while client.get(f"/api/jobs/{job_id}").status_code == 200:
        assert time.monotonic() < deadline, f"job still readable {ttl + 10}s after a {ttl}s TTL"
        time.sleep(0.2)
    assert time.monotonic() - finished_at >= ttl - 1, "expired before its TTL"
    assert client.get(f"/api/jobs/{job_id}").json["error"]
