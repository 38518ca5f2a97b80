"""The Open Inference Protocol routes (/v2) with Flask's test client over fakeredis.

A test that needs an answer plays the predict worker: it claims what the
request queued (a drawing on the predict stream for one image, chunks on the
batch stream for several) and answers it, so the route's real queue and wait
paths run. The real ``tritonclient`` against a real stack is in
tests/integration/test_inference_v2.py.
"""
from __future__ import annotations

import base64
import dataclasses
import gzip
import json
import struct
import types

import pytest

from shared.messaging import heartbeat
from shared.messaging import protocol as p
from testkit.drawings import digit_png
from web import create_app
from web.inference_tensors import HEADER_LENGTH
from web.services import Services

PRODUCTION = "m-prod"


def probabilities_for(digit: int) -> list[float]:
    return [0.91 if d == digit else 0.01 for d in range(10)]


@pytest.fixture
def served(app, fake_conn):
    """A production model in the store and a live predict worker serving it."""
    s = app.extensions["swagdigits"]
    s.registry = types.SimpleNamespace(production_id=lambda missing_ok=False: PRODUCTION)
    heartbeat.beat(fake_conn, "w1", {"role": "predict", "model_version": PRODUCTION}, s.config.worker_heartbeat)
    return s


@pytest.fixture
def worker(served):
    """Answers every drawing and batch chunk the request queues with the digit it was drawn as.

    Drawings are told apart by their bytes (``digit_png`` is deterministic)."""
    digit_of = {digit_png(d): d for d in range(10)}
    calls = {"predict": 0, "batch": 0, "version": PRODUCTION}
    queue, batches = served.queue, served.batches
    wait_reply, wait_finished = queue.wait_reply, batches.wait_finished

    def answer_drawing(job_id, timeout):
        calls["predict"] += 1
        [job] = queue.claim("w", 1, 10)
        digit = digit_of.get(job.image)
        outcome = (p.PredictionError(job.job_id, "image data is corrupt", 422) if digit is None else
                   p.PredictionResult(job.job_id, digit, probabilities_for(digit), calls["version"]))
        queue.complete([(job, outcome)])
        return wait_reply(job_id, timeout)

    def answer_batch(batch_id, timeout, **kwargs):
        calls["batch"] += 1
        while (chunk := batches.claim("w")) is not None:
            results = [{"error": "image data is corrupt"} if digit_of.get(img) is None else
                       {"digit": digit_of[img], "probabilities": probabilities_for(digit_of[img]),
                        "model_version": calls["version"]} for img in chunk.images]
            batches.record(chunk, results)
        return wait_finished(batch_id, timeout, **kwargs)

    queue.wait_reply = answer_drawing
    batches.wait_finished = answer_batch
    return calls


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def json_request(images: list[str], outputs=None, **extra) -> dict:
    body = {"inputs": [{"name": "images", "datatype": "BYTES", "shape": [len(images)], "data": images}], **extra}
    if outputs is not None:
        body["outputs"] = outputs
    return body


def binary_request(images: list[bytes], header_extra: dict | None = None) -> tuple[bytes, dict]:
    """What tritonclient sends with binary_data=True: a JSON header, then the BYTES tensor."""
    blob = b"".join(struct.pack("<I", len(i)) + i for i in images)
    header = {"inputs": [{"name": "images", "datatype": "BYTES", "shape": [len(images)],
                          "parameters": {"binary_data_size": len(blob)}}], **(header_extra or {})}
    head = json.dumps(header).encode()
    return head + blob, {HEADER_LENGTH: str(len(head))}


def binary_outputs(res) -> dict:
    """Decode an answer with binary outputs as tritonclient does."""
    split = int(res.headers[HEADER_LENGTH])
    header, blob = json.loads(res.data[:split]), res.data[split:]
    out, at = {}, 0
    for tensor in header["outputs"]:
        size = tensor["parameters"]["binary_data_size"]
        fmt = {"FP32": "f", "INT64": "q"}[tensor["datatype"]]
        out[tensor["name"]] = list(struct.unpack(f"<{size // struct.calcsize(fmt)}{fmt}", blob[at:at + size]))
        at += size
    return header, out


# -- health and metadata -------------------------------------------------------

def test_live_always_and_ready_by_the_readyz_rule(client, fake_conn, app):
    assert client.get("/v2/health/live").status_code == 200
    res = client.get("/v2/health/ready")
    assert res.status_code == 503 and res.json["error"].startswith("not ready")
    assert client.get("/readyz").status_code == 503
    heartbeat.beat(fake_conn, "w1", {"role": "predict", "model_version": "v1"}, 5)
    assert client.get("/v2/health/ready").status_code == 200 == client.get("/readyz").status_code


def test_server_metadata_names_the_server_and_its_extensions(client):
    res = client.get("/v2")
    assert res.status_code == 200
    assert res.json["name"] == "swagdigits" and res.json["version"]
    assert res.json["extensions"] == ["binary_tensor_data"]


def test_model_metadata_declares_the_tensors(client, served):
    for url in ("/v2/models/digits", f"/v2/models/digits/versions/{PRODUCTION}"):
        res = client.get(url)
        assert res.status_code == 200, url
        assert res.json["name"] == "digits" and res.json["versions"] == [PRODUCTION] and res.json["platform"]
        assert res.json["inputs"] == [{"name": "images", "datatype": "BYTES", "shape": [-1]}]
        assert res.json["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
                                       {"name": "digit", "datatype": "INT64", "shape": [-1]}]


def test_unknown_models_and_versions_other_than_production_are_404_in_protocol_shape(client, served):
    for method, url in (("GET", "/v2/models/mnist"), ("GET", "/v2/models/digits/versions/old"),
                        ("GET", "/v2/models/mnist/ready"), ("GET", "/v2/models/digits/versions/old/ready"),
                        ("POST", "/v2/models/mnist/infer"), ("POST", "/v2/models/digits/versions/old/infer"),
                        ("GET", "/v2/models/digits/stats")):
        res = client.open(url, method=method, json=json_request([b64(digit_png(1))]))
        assert res.status_code == 404 and isinstance(res.json["error"], str), (url, res.json)
    assert "production" in client.get("/v2/models/digits/versions/old").json["error"]


def test_model_ready_follows_the_workers_and_the_production_version(client, app, fake_conn):
    s = app.extensions["swagdigits"]
    s.registry = types.SimpleNamespace(production_id=lambda missing_ok=False: PRODUCTION)
    assert client.get("/v2/models/digits/ready").status_code == 503
    heartbeat.beat(fake_conn, "w1", {"role": "predict", "model_version": "previous"}, 5)
    res = client.get(f"/v2/models/digits/versions/{PRODUCTION}/ready")
    assert res.status_code == 503 and res.json["missing"] == ["production_model"]
    heartbeat.beat(fake_conn, "w2", {"role": "predict", "model_version": PRODUCTION}, 5)
    for url in ("/v2/models/digits/ready", f"/v2/models/digits/versions/{PRODUCTION}/ready"):
        assert client.get(url).status_code == 200, url


# -- infer ---------------------------------------------------------------------

def test_one_image_in_json_takes_the_interactive_path(client, worker):
    res = client.post("/v2/models/digits/infer", json=json_request([b64(digit_png(7))], id="req-1"))
    assert res.status_code == 200 and res.mimetype == "application/json"
    assert (worker["predict"], worker["batch"]) == (1, 0)
    body = res.json
    assert body["model_name"] == "digits" and body["model_version"] == PRODUCTION and body["id"] == "req-1"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["digit"] == {"name": "digit", "datatype": "INT64", "shape": [1], "data": [7]}
    assert outputs["probabilities"]["shape"] == [1, 10] and outputs["probabilities"]["datatype"] == "FP32"
    assert outputs["probabilities"]["data"] == pytest.approx(probabilities_for(7))


def test_several_images_take_the_batch_path_in_input_order(client, worker, served, fake_conn):
    digits = [3, 1, 4, 1, 5, 9, 2, 6]   # more than one chunk (batch_chunk_size 4)
    images = [f"data:image/png;base64,{b64(digit_png(d))}" for d in digits]
    res = client.post(f"/v2/models/digits/versions/{PRODUCTION}/infer", json=json_request(images))
    assert res.status_code == 200, res.json
    assert (worker["predict"], worker["batch"]) == (0, 1)
    outputs = {o["name"]: o for o in res.json["outputs"]}
    assert outputs["digit"]["data"] == digits and outputs["digit"]["shape"] == [8]
    assert outputs["probabilities"]["shape"] == [8, 10] and len(outputs["probabilities"]["data"]) == 80
    assert not fake_conn.keys(p.BATCH_KEY.format("*")), "answered batches are not kept for a day"


def test_binary_inputs_and_outputs_as_tritonclient_sends_and_reads_them(client, worker):
    body, headers = binary_request([digit_png(2), digit_png(8)])   # no Content-Type, as tritonclient
    res = client.post("/v2/models/digits/infer", data=body, headers=headers)
    assert res.status_code == 200, res.data[:300]
    # no outputs named: binary_data_output decides, JSON by default
    assert HEADER_LENGTH not in res.headers and res.mimetype == "application/json"
    assert {o["name"]: o["data"] for o in res.json["outputs"]}["digit"] == [2, 8]
    body, headers = binary_request([digit_png(2), digit_png(8)],
                                   {"parameters": {"binary_data_output": True}})
    res = client.post("/v2/models/digits/infer", data=body, headers=headers)
    assert res.status_code == 200 and res.mimetype == "application/octet-stream"
    header, out = binary_outputs(res)
    assert out["digit"] == [2, 8]
    assert out["probabilities"] == pytest.approx(probabilities_for(2) + probabilities_for(8), abs=1e-6)
    assert header["outputs"][0]["shape"] == [2, 10]


def test_each_output_is_binary_or_json_as_asked_and_only_the_named_ones_come_back(client, worker):
    outputs = [{"name": "digit", "parameters": {"binary_data": True}}]
    res = client.post("/v2/models/digits/infer", json=json_request([b64(digit_png(4))], outputs))
    header, out = binary_outputs(res)
    assert [o["name"] for o in header["outputs"]] == ["digit"] and out["digit"] == [4]
    outputs = [{"name": "probabilities", "parameters": {"binary_data": False}}, {"name": "digit"}]
    res = client.post("/v2/models/digits/infer", json=json_request([b64(digit_png(4))], outputs))
    assert HEADER_LENGTH not in res.headers
    assert [o["name"] for o in res.json["outputs"]] == ["probabilities", "digit"]


def test_a_gzip_compressed_request_is_read(client, worker):
    body, headers = binary_request([digit_png(6)])
    res = client.post("/v2/models/digits/infer", data=gzip.compress(body),
                      headers={**headers, "Content-Encoding": "gzip"})
    assert res.status_code == 200 and {o["name"]: o for o in res.json["outputs"]}["digit"]["data"] == [6]


def test_a_corrupt_image_is_a_400_naming_it_on_either_path(client, worker):
    broken = digit_png(3)[:60]   # header intact: only the worker finds the rest missing
    res = client.post("/v2/models/digits/infer", json=json_request([b64(broken)]))
    assert res.status_code == 400 and res.json["error"].startswith("image 0:")
    res = client.post("/v2/models/digits/infer", json=json_request([b64(digit_png(1)), b64(broken)]))
    assert res.status_code == 400 and res.json["error"].startswith("image 1:")


def test_a_worker_on_another_version_makes_a_versioned_request_retry(client, worker):
    worker["version"] = "m-next"
    res = client.post(f"/v2/models/digits/versions/{PRODUCTION}/infer", json=json_request([b64(digit_png(1))]))
    assert res.status_code == 503 and res.headers["Retry-After"] == "1"
    res = client.post("/v2/models/digits/infer", json=json_request([b64(digit_png(1))]))
    assert res.status_code == 200 and res.json["model_version"] == "m-next"


GOOD = b64(digit_png(5))
TENSOR = {"name": "images", "datatype": "BYTES", "shape": [1], "data": [GOOD]}


@pytest.mark.parametrize("body, words", [
    ({}, "exactly one tensor"),
    ({"inputs": []}, "exactly one tensor"),
    ({"inputs": [TENSOR, TENSOR]}, "exactly one tensor"),
    ({"inputs": [{**TENSOR, "name": "INPUT0"}]}, "unexpected input"),
    ({"inputs": [{**TENSOR, "datatype": "UINT8"}]}, "datatype"),
    ({"inputs": [{**TENSOR, "shape": [2]}]}, "shape [2] but 1"),
    ({"inputs": [{**TENSOR, "shape": [1, 1]}]}, "shape [N]"),
    ({"inputs": [{**TENSOR, "shape": [0], "data": []}]}, "shape [N]"),
    ({"inputs": [{**TENSOR, "shape": [True]}]}, "shape [N]"),
    ({"inputs": [{**TENSOR, "data": [12]}]}, "strings"),
    ({"inputs": [{**TENSOR, "data": "abc"}]}, "list"),
    ({"inputs": [{k: v for k, v in TENSOR.items() if k != "data"}]}, "needs 'data'"),
    ({"inputs": [{**TENSOR, "data": ["%%%"]}]}, "image 0"),
    ({"inputs": [{**TENSOR, "data": [b64(b"plain text")]}]}, "image 0"),
    ({"inputs": [{**TENSOR, "parameters": {"shared_memory_region": "r"}}]}, "shared memory"),
    ({"inputs": [TENSOR], "outputs": [{"name": "logits"}]}, "unknown output"),
    ({"inputs": [TENSOR], "outputs": [{"name": "digit"}, {"name": "digit"}]}, "twice"),
    ({"inputs": [TENSOR], "outputs": [{"name": "digit", "parameters": {"classification": 3}}]}, "classification"),
    ({"inputs": [TENSOR], "outputs": [{"name": "digit", "parameters": {"binary_data": "yes"}}]}, "true or false"),
    ({"inputs": [TENSOR], "outputs": []}, "non-empty"),
    ({"inputs": [TENSOR], "id": 5}, "'id'"),
    ({"inputs": [TENSOR], "parameters": []}, "parameters"),
    ({"inputs": [TENSOR], "parameters": {"binary_data_output": 1}}, "true or false"),
])
def test_malformed_requests_are_400_and_queue_nothing(client, served, fake_conn, body, words):
    res = client.post("/v2/models/digits/infer", json=body)
    assert res.status_code == 400 and words in res.json["error"], res.json
    assert not fake_conn.exists(p.PREDICT_STREAM) or fake_conn.xlen(p.PREDICT_STREAM) == 0
    assert not fake_conn.exists(p.BATCH_STREAM) or fake_conn.xlen(p.BATCH_STREAM) == 0


@pytest.mark.parametrize("mangle, words", [
    (lambda body, n: (body, {HEADER_LENGTH: "abc"}), "byte count"),
    (lambda body, n: (body, {HEADER_LENGTH: str(len(body) + 1)}), "byte count"),
    (lambda body, n: (body, {HEADER_LENGTH: str(n - 1)}), "not valid JSON"),
    (lambda body, n: (body[:-3], {HEADER_LENGTH: str(n)}), "binary_data_size"),
    (lambda body, n: (body[:n] + b"\xff\xff\xff\x00" + body[n + 4:], {HEADER_LENGTH: str(n)}), "ends inside"),
    (lambda body, n: (body, {}), "not valid JSON"),
    (lambda body, n: (body, {HEADER_LENGTH: str(n), "Content-Encoding": "gzip"}), "gzip"),
])
def test_malformed_binary_requests_are_400(client, served, mangle, words):
    body, headers = binary_request([digit_png(5)])
    data, headers = mangle(body, int(headers[HEADER_LENGTH]))
    res = client.post("/v2/models/digits/infer", data=data, headers=headers)
    assert res.status_code == 400 and words in res.json["error"], res.json


def test_a_json_header_with_no_binary_input_but_binary_data_after_it_is_refused(client, served):
    head = json.dumps(json_request([GOOD])).encode()
    res = client.post("/v2/models/digits/infer", data=head + b"junk", headers={HEADER_LENGTH: str(len(head))})
    assert res.status_code == 400 and "binary_data_size" in res.json["error"]


def test_other_content_types_and_encodings_are_415(client, served):
    res = client.post("/v2/models/digits/infer", data=json.dumps(json_request([GOOD])), content_type="text/plain")
    assert res.status_code == 415
    res = client.post("/v2/models/digits/infer", json=json_request([GOOD]), headers={"Content-Encoding": "br"})
    assert res.status_code == 415


def test_no_worker_answer_is_504_and_a_full_queue_503(client, served):
    res = client.post("/v2/models/digits/infer", json=json_request([GOOD]))
    assert res.status_code == 504
    for _ in range(2):
        assert client.post("/v2/models/digits/infer", json=json_request([GOOD])).status_code == 504
    res = client.post("/v2/models/digits/infer", json=json_request([GOOD]))   # queue_limit 3
    assert res.status_code == 503 and res.headers["Retry-After"] == "1"


def test_an_unfinished_batch_is_504_naming_where_its_results_will_be(web_config, fake_conn):
    config = dataclasses.replace(web_config, infer_timeout=0.1)
    app = create_app(config, services=Services.connect(config, conn=fake_conn))
    res = app.test_client().post("/v2/models/digits/infer", json=json_request([GOOD, GOOD]))
    assert res.status_code == 504 and "/api/batches/" in res.json["error"]


def test_the_batch_cap_applies(client, served, web_config):
    images = [GOOD] * (web_config.batch_max_images + 1)
    res = client.post("/v2/models/digits/infer", json=json_request(images))
    assert res.status_code == 413 and "at most" in res.json["error"]


def test_each_image_costs_one_prediction_of_the_rate_limit(web_config, fake_conn, frozen_rate_clock):
    config = dataclasses.replace(web_config, rate_limit_predict=5, queue_limit=100, infer_timeout=0.05,
                                 predict_timeout=0.05)
    app = create_app(config, services=Services.connect(config, conn=fake_conn))
    client = app.test_client()
    assert client.post("/v2/models/digits/infer", json=json_request([GOOD] * 6)).status_code == 413  # 1 spent
    assert client.post("/v2/models/digits/infer", json=json_request([GOOD] * 3)).status_code == 504  # 4
    res = client.post("/v2/models/digits/infer", json=json_request([GOOD] * 2))                    # 6 > 5
    assert res.status_code == 429 and "Retry-After" in res.headers
    assert client.post("/api/predict?wait=0", json={"image": GOOD}).status_code == 429


def test_a_compressed_bomb_stops_at_the_batch_body_limit(client, served, web_config):
    bomb = gzip.compress(b"{" + b" " * (web_config.batch_max_bytes + 10) + b"}")
    res = client.post("/v2/models/digits/infer", data=bomb, headers={"Content-Encoding": "gzip"})
    assert res.status_code == 413 and "decompressed" in res.json["error"]


def test_cross_site_posts_are_refused_like_every_write(client, served):
    res = client.post("/v2/models/digits/infer", json=json_request([GOOD]),
                      headers={"Origin": "https://evil.example"})
    assert res.status_code == 403
