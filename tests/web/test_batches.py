"""POST /api/batches and GET /api/batches/<id> through the Flask test client."""
import base64
import csv
import io

import pytest

from shared.messaging import protocol as p
from shared.messaging.batch_queue import BatchQueue
from testkit.drawings import digit_png


@pytest.fixture
def batches(app, fake_conn, web_config):
    return BatchQueue(fake_conn, web_config.batch_chunk_size, web_config.batch_ttl)


def b64(png):
    return base64.b64encode(png).decode()


def finish(batches, batch_id):
    while (chunk := batches.claim("w")) is not None:
        batches.record(chunk, [{"digit": 3, "probabilities": [0.1] * 10, "model_version": "v1"}
                               for _ in chunk.indexes])


def test_json_batch_is_accepted_with_size_status_url_and_expiry(client, batches):
    res = client.post("/api/batches", json={"images": [b64(digit_png(d)) for d in range(5)]})
    assert res.status_code == 202
    body = res.json
    assert body["size"] == 5 and body["invalid"] == 0 and body["expires_at"]
    assert res.headers["Location"] == body["status_url"] == f"/api/batches/{body['batch_id']}"
    status = client.get(body["status_url"]).json
    assert (status["state"], status["done"], status["total"]) == ("queued", 0, 5)
    assert "results" not in status


def test_multipart_keeps_file_order_and_bad_files_get_their_own_error(client, batches):
    files = [(io.BytesIO(digit_png(1)), "a.png"), (io.BytesIO(b"garbage"), "b.png"),
             (io.BytesIO(digit_png(2)), "c.png")]
    res = client.post("/api/batches", data={"file": files}, content_type="multipart/form-data")
    assert res.status_code == 202 and res.json["invalid"] == 1
    batch_id = res.json["batch_id"]
    finish(batches, batch_id)
    results = client.get(f"/api/batches/{batch_id}").json["results"]
    assert [r["index"] for r in results] == [0, 1, 2]
    assert "error" in results[1] and results[0]["digit"] == 3 and results[2]["digit"] == 3


def test_csv_has_one_row_per_image_in_order(client, batches):
    batch_id = client.post("/api/batches", json={"images": [b64(digit_png(1)), "%%%"]}).json["batch_id"]
    assert client.get(f"/api/batches/{batch_id}?format=csv").status_code == 409, "not finished yet"
    finish(batches, batch_id)
    res = client.get(f"/api/batches/{batch_id}?format=csv")
    assert res.status_code == 200 and res.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(res.get_data(as_text=True))))
    assert [r["index"] for r in rows] == ["0", "1"]
    assert rows[0]["digit"] == "3" and rows[0]["model_version"] == "v1"
    assert rows[1]["digit"] == "" and "base64" in rows[1]["error"]


@pytest.mark.parametrize("kwargs, status", [
    ({"json": {"images": []}}, 400),
    ({"json": {"images": "nope"}}, 400),
    ({"json": {"pictures": []}}, 400),
    ({"data": b"x", "content_type": "text/plain"}, 415),
])
def test_malformed_batches_are_refused_and_nothing_is_queued(client, fake_conn, kwargs, status):
    res = client.post("/api/batches", **kwargs)
    assert res.status_code == status and res.json["error"]
    assert fake_conn.xlen(p.BATCH_STREAM) == 0


def test_too_many_images_is_413_and_nothing_is_queued(client, fake_conn, web_config):
    images = [b64(digit_png(1))] * (web_config.batch_max_images + 1)
    res = client.post("/api/batches", json={"images": images})
    assert res.status_code == 413 and str(web_config.batch_max_images) in res.json["error"]
    assert fake_conn.xlen(p.BATCH_STREAM) == 0


def test_a_body_over_the_batch_limit_is_413(app, client, fake_conn):
    limit = app.extensions["swagdigits"].config.batch_max_bytes
    res = client.post("/api/batches", data=b"x" * (limit + 1), content_type="application/json")
    assert res.status_code == 413 and res.is_json


def test_unknown_batches_are_404(client):
    assert client.get("/api/batches/" + "0" * 32).status_code == 404
    assert client.get("/api/batches/nope").status_code == 404


def test_a_json_batch_item_that_is_not_a_string_is_a_malformed_request(client, batches):
    res = client.post("/api/batches", json={"images": [b64(digit_png(1)), {}]})
    assert res.status_code == 400 and res.json["status"] == 400


def test_past_the_batch_bodies_one_process_reads_at_once_a_batch_gets_503_and_retry_after(app, client):
    from testkit.drawings import digit_png
    import base64

    images = [base64.b64encode(digit_png(d)).decode() for d in range(3)]
    slots = app.extensions["swagdigits"].batch_bodies
    held = [slots.acquire(blocking=False) for _ in range(app.extensions["swagdigits"].config.batch_bodies)]
    assert all(held)                                   # other requests are reading their bodies
    try:
        res = client.post("/api/batches", json={"images": images})
        assert res.status_code == 503 and res.headers["Retry-After"] == "1" and res.json["error"]
    finally:
        for _ in held:
            slots.release()
    assert client.post("/api/batches", json={"images": images}).status_code == 202
    # every request gave its slot back, refused or not
    assert client.post("/api/batches", json={"images": []}).status_code == 400
    assert all(slots.acquire(blocking=False) for _ in held)


def test_a_json_batch_is_not_kept_three_times_over_while_it_is_read(client, batches):
    """The body, its text and its parsed strings were all alive at once (three copies: 1.5 GB for two
    maximal batches); now the bytes are dropped before parsing and each string as its image is decoded."""
    import json
    import tracemalloc

    padded = b64(digit_png(7) + b"\0" * 60_000)     # kept byte for byte, like a hostile batch's images
    body = json.dumps({"images": [padded] * 20}).encode()      # 1.6 MB: the test config's largest
    tracemalloc.start()
    try:
        res = client.post("/api/batches", data=body, content_type="application/json")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert res.status_code == 202 and res.json["size"] == 20
    assert peak < 3.0 * len(body), f"peak {peak / len(body):.2f} x the body"   # was 3.85; now 2.4 with the queued copy
