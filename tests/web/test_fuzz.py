"""Hostile input against every documented operation: never a 5xx it does not document, always JSON.

Two parts: a fixed corpus of known-nasty requests (oversized bodies,
decompression bombs, truncated and non-image files, wrong content types,
extreme dimensions, out-of-range labels, deep or huge JSON, unknown fields),
each with the exact status it must get; then hypothesis generating requests
for every operation of ``web.openapi.SPEC`` (bounded: a few hundred examples,
well under a minute) and checking each answer is a status the document lists
for that operation, with a JSON ``{error, status}`` body when it is an error.
The same corpus goes to a real web process in tests/integration/test_faults.py.
"""
from __future__ import annotations

import base64
import dataclasses
import io
import json
import re
import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testkit.drawings import digit_png
from web import create_app
from web.openapi import SPEC
from web.services import Services


def png_header_only(width: int, height: int, payload: bytes = b"\0" * 64) -> bytes:
    """A tiny PNG claiming ``width`` x ``height`` pixels: a decompression bomb if it were decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(payload, 9))
            + chunk(b"IEND", b""))


def b64(data: bytes, data_url: bool = True) -> str:
    text = base64.b64encode(data).decode()
    return "data:image/png;base64," + text if data_url else text


GOOD = digit_png(3)
HOSTILE_IMAGES = {
    # name: (bytes, status the web tier gives /api/predict?wait=0)
    "good": (GOOD, 202),
    "bomb_sides": (png_header_only(60_000, 60_000), 413),
    "bomb_pixels": (png_header_only(1_999, 1_999), 413),      # sides allowed, pixel count not
    "extreme_wide": (png_header_only(3_000, 1), 413),
    "zero_width": (png_header_only(0, 10), 415),   # Pillow does not recognise it as a PNG
    "truncated_header": (GOOD[:20], 400),
    "truncated_body": (GOOD[:60], 202),  # header intact: the worker finds the rest missing (422)
    "not_an_image": (b"hello, this is not a picture", 415),
    "gif": (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", 415),
    "html": (b"<html><script>alert(1)</script></html>", 415),
    "empty": (b"", 400),
}


@pytest.fixture
def fuzz_config(web_config):
    return dataclasses.replace(web_config, predict_timeout=0.05, queue_limit=100_000,
                               rate_limit_predict=0, rate_limit_help=0, admin_token="fuzz-token")


@pytest.fixture
def fuzz_client(fuzz_config, fake_conn):
    app = create_app(fuzz_config, services=Services.connect(fuzz_config, conn=fake_conn))
    app.testing = True
    return app.test_client()


def assert_json_error(res, status: int | None = None, error_schema: bool = True):
    if status is not None:
        assert res.status_code == status, (res.status_code, res.data[:200])
    if res.status_code >= 400:
        assert res.mimetype == "application/json", res.data[:200]
        body = res.get_json()
        assert isinstance(body, dict) and ("error" in body or not error_schema), body
        if "status" in body:
            assert body["status"] == res.status_code


@pytest.mark.parametrize("name", HOSTILE_IMAGES)
def test_hostile_images_as_json_get_the_right_status(fuzz_client, name):
    data, status = HOSTILE_IMAGES[name]
    status = 400 if name == "empty" else status
    assert_json_error(fuzz_client.post("/api/predict?wait=0", json={"image": b64(data)}), status)


@pytest.mark.parametrize("name", [n for n in HOSTILE_IMAGES if n != "empty"])
def test_hostile_images_as_files_get_the_same_status(fuzz_client, name):
    data, status = HOSTILE_IMAGES[name]
    res = fuzz_client.post("/api/predict?wait=0", data={"file": (io.BytesIO(data), "x.png")},
                           content_type="multipart/form-data")
    assert_json_error(res, status)


@pytest.mark.parametrize("name", ["bomb_sides", "bomb_pixels", "not_an_image", "truncated_header"])
def test_hostile_help_images_are_refused_and_nothing_is_stored(fuzz_client, fuzz_config, name):
    data, status = HOSTILE_IMAGES[name]
    assert_json_error(fuzz_client.post("/helpdata", json={"image": b64(data), "label": 1}), status)
    assert not list(fuzz_config.help_dir.rglob("*.png"))


def test_hostile_images_in_a_batch_get_their_own_error_and_the_batch_is_accepted(fuzz_client):
    names = ["good", "bomb_sides", "not_an_image", "truncated_header"]
    res = fuzz_client.post("/api/batches", json={"images": [b64(HOSTILE_IMAGES[n][0]) for n in names]})
    assert res.status_code == 202 and res.json["invalid"] == 3


@pytest.mark.parametrize("path, kwargs, status", [
    ("/api/predict", {"data": b"x" * 250_000, "content_type": "application/json"}, 413),
    ("/api/predict", {"data": GOOD, "content_type": "image/png"}, 415),
    ("/api/predict", {"data": "image=abc", "content_type": "application/x-www-form-urlencoded"}, 415),
    ("/api/predict", {"data": "<image/>", "content_type": "application/xml"}, 415),
    ("/api/predict", {"data": "{\"image\": ", "content_type": "application/json"}, 400),
    ("/api/predict", {"data": "[" * 50_000 + "]" * 50_000, "content_type": "application/json"}, 400),
    ("/api/predict", {"data": json.dumps({"image": "[" * 30_000}), "content_type": "application/json"}, 400),
    ("/api/predict", {"json": {"image": [[[[["x"]]]]]}}, 400),
    ("/api/predict", {"json": {"image": 12}}, 400),
    ("/api/predict", {"json": {"image": None}}, 400),
    ("/api/predict", {"json": ["image"]}, 400),
    ("/api/predict", {"json": {f"k{i}": i for i in range(8_000)}}, 400),   # huge, no image
    ("/api/predict?wait=0", {"json": {"image": b64(GOOD), "extra": {"unknown": True}}}, 202),
    ("/api/predict?wait=0", {"json": {"image": b64(GOOD, data_url=False)}}, 202),
    ("/api/predict", {"json": {"image": "data:image/png,notbase64"}}, 400),
    ("/api/predict", {"json": {"image": "data:image/png;base64,@@@@"}}, 400),
    ("/api/predict", {"data": {"nofile": "1"}, "content_type": "multipart/form-data"}, 400),
    ("/helpdata", {"json": {"image": b64(GOOD), "label": 10}}, 400),
    ("/helpdata", {"json": {"image": b64(GOOD), "label": -1}}, 400),
    ("/helpdata", {"json": {"image": b64(GOOD), "label": 1e308}}, 400),
    ("/helpdata", {"json": {"image": b64(GOOD), "label": "9" * 5000}}, 400),
    ("/helpdata", {"json": {"image": b64(GOOD), "label": 3, "predicted": 99}}, 400),
    ("/helpdata", {"json": {"image": b64(GOOD), "label": 3, "job_id": "../../etc/passwd"}}, 400),
    ("/helpdata", {"json": {"image": b64(GOOD), "label": 3, "whatever": [1, 2]}}, 201),
    ("/helpdata", {"data": "[" * 50_000, "content_type": "application/json"}, 400),
    ("/api/batches", {"json": {"images": "notalist"}}, 400),
    ("/api/batches", {"json": {"images": []}}, 400),
    ("/api/batches", {"json": {"images": [b64(GOOD)] * 21}}, 413),
    ("/api/batches", {"data": "[" * 50_000, "content_type": "application/json"}, 400),
    ("/api/batches", {"data": "x", "content_type": "text/csv"}, 415),
])
def test_malformed_requests_get_the_documented_4xx(fuzz_client, path, kwargs, status):
    assert_json_error(fuzz_client.post(path, **kwargs), status)


@pytest.mark.parametrize("path", ["/api/jobs/" + "z" * 5000, "/api/jobs/..%2f..%2fetc", "/api/jobs/%00",
                                  "/api/batches/%E2%98%83", "/api/batches/" + "a" * 32 + "?format=xml",
                                  "/api/models/..%2fx/promote"])
def test_hostile_paths_are_4xx_json(fuzz_client, path):
    res = fuzz_client.post(path) if path.endswith("promote") else fuzz_client.get(path)
    assert 400 <= res.status_code < 500
    assert_json_error(res)


# -- generated requests ---------------------------------------------------------
def _operations():
    for path, ops in SPEC["paths"].items():
        for method, op in ops.items():
            yield pytest.param(path, method, op, id=f"{method.upper()} {path}")


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False),
                      st.text(max_size=40), st.sampled_from([b64(d) for d, _ in HOSTILE_IMAGES.values()]))
json_values = st.recursive(json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)), max_leaves=12)
image_fields = st.sampled_from([b64(d) for d, _ in HOSTILE_IMAGES.values()]) | json_values


@st.composite
def request_for(draw, path: str, op: dict):
    url = path
    for name in re.findall(r"{([^}]+)}", path):
        url = url.replace("{" + name + "}", draw(st.sampled_from(["a" * 32, "0" * 31, "m1"]) |
                                                 st.text(alphabet="abcdef0123456789-_.%", min_size=1,
                                                         max_size=70)))
    query = draw(st.dictionaries(st.sampled_from(["wait", "sid", "format", "x"]),
                                 st.text(max_size=20), max_size=3))
    query.setdefault("wait", "0")  # no worker here: do not wait for one on every example
    kwargs = {"query_string": query}
    if draw(st.booleans()):
        kwargs["headers"] = {"Authorization": draw(st.sampled_from(
            ["Bearer fuzz-token", "Bearer nope", "Basic Zm9vOmJhcg==", "Bearer", ""]))}
    if "requestBody" in op:
        kind = draw(st.sampled_from(["json", "multipart", "raw"]))
        properties = {}
        for media in op["requestBody"]["content"].values():
            properties.update(media["schema"].get("properties", {}))
        if kind == "json":
            body = {name: draw(image_fields if name in ("image", "images") else json_values)
                    for name in properties if draw(st.booleans())}
            if "images" in properties and draw(st.booleans()):
                body["images"] = draw(st.lists(image_fields, max_size=5))
            body.update(draw(st.dictionaries(st.text(max_size=8), json_values, max_size=3)))
            kwargs["json"] = body
        elif kind == "multipart":
            files = {"file": (io.BytesIO(draw(st.sampled_from([d for d, _ in HOSTILE_IMAGES.values()])
                                              | st.binary(max_size=200))), "x.png")}
            form = draw(st.dictionaries(st.sampled_from(["label", "predicted", "job_id", "image", "y"]),
                                        st.text(max_size=12), max_size=3))
            kwargs["data"] = {**form, **(files if draw(st.booleans()) else {})}
            kwargs["content_type"] = "multipart/form-data"
        else:
            kwargs["data"] = draw(st.binary(max_size=300))
            kwargs["content_type"] = draw(st.sampled_from(
                ["application/json", "text/plain", "image/png", "application/octet-stream",
                 "multipart/form-data", "multipart/form-data; boundary=xyz", ""]))
    return url, kwargs


@pytest.mark.parametrize("path, method, op", list(_operations()))
def test_generated_requests_get_documented_statuses_and_json_errors(fuzz_config, fake_conn, path, method, op):
    app = create_app(fuzz_config, services=Services.connect(fuzz_config, conn=fake_conn))
    app.testing = True
    client = app.test_client()
    documented = {int(code) for code in op["responses"]}

    @settings(max_examples=120, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(request_for(path, op))
    def check(req):
        url, kwargs = req
        res = client.open(url, method=method.upper(), **kwargs)
        # 404/405 can come from routing (a path parameter the route's pattern refuses).
        assert res.status_code in documented | {404, 405}, (url, kwargs, res.status_code, res.data[:300])
        assert res.status_code < 500 or res.status_code in (503, 504, 507), res.data[:300]
        documented_as = op["responses"].get(str(res.status_code), {})
        error_schema = "Error" in json.dumps(documented_as) or not documented_as
        assert_json_error(res, error_schema=error_schema)

    check()
