"""Admission by cost: what a request may make a worker do is bounded before it is queued.

Flask test client over fakeredis. The worker's side (large images decoded
cheaply) is in tests/shared/images/test_ink.py.
"""
from __future__ import annotations

import base64
import dataclasses
import io

import pytest
from PIL import Image

from shared.config import Config
from shared.messaging import protocol as p
from testkit.drawings import digit_png
from web import create_app
from web.services import Services


def b64(png: bytes) -> str:
    return base64.b64encode(png).decode()


def blank_png(width: int, height: int) -> bytes:
    """A fully transparent PNG: tiny on the wire, expensive to decode when large."""
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (0, 0, 0, 0)).save(out, "PNG", optimize=True)
    return out.getvalue()


def make_client(cfg, conn):
    app = create_app(cfg, services=Services.connect(cfg, conn=conn))
    app.testing = True
    return app.test_client()


@pytest.fixture
def default_limits_client(web_config, fake_conn):
    """The web tier with the shipped image and upload limits (the fixture's are test-sized)."""
    shipped = Config.from_env({})
    cfg = dataclasses.replace(web_config, max_upload_bytes=shipped.max_upload_bytes,
                              max_image_pixels=shipped.max_image_pixels,
                              max_image_side=shipped.max_image_side, queue_limit=100)
    return make_client(cfg, fake_conn)


def test_the_reviews_4096_pixel_png_is_refused_by_default_and_nothing_is_queued(default_limits_client,
                                                                                 fake_conn):
    attack = blank_png(4096, 4096)
    assert len(attack) < 100_000  # cheap to send: that is the point
    res = default_limits_client.post("/api/predict?wait=0", json={"image": b64(attack)})
    assert res.status_code == 413 and res.json["status"] == 413 and "4096x4096" in res.json["error"]
    assert fake_conn.xlen(p.PREDICT_STREAM) == 0


@pytest.mark.parametrize("size", [(280, 280), (840, 840), (1024, 1024)])
def test_a_canvas_at_up_to_three_times_its_css_size_is_admitted(default_limits_client, size):
    res = default_limits_client.post("/api/predict?wait=0", json={"image": b64(blank_png(*size))})
    assert res.status_code == 202, res.json


@pytest.mark.usefixtures("frozen_rate_clock")   # no window boundary between the requests
def test_a_batch_spends_one_prediction_per_image(web_config, fake_conn):
    client = make_client(dataclasses.replace(web_config, rate_limit_predict=10, queue_limit=100), fake_conn)
    images = [b64(digit_png(d)) for d in range(8)]
    assert client.post("/api/batches", json={"images": images}).status_code == 202
    refused = client.post("/api/batches", json={"images": images})
    assert refused.status_code == 429 and refused.json["status"] == 429 and "Retry-After" in refused.headers
    # A refused batch spends one, like any refused request: the rest still serves a smaller one.
    assert client.post("/api/batches", json={"images": images[:1]}).status_code == 202
    assert client.post("/api/predict?wait=0", json={"image": images[0]}).status_code == 429


def test_a_batch_larger_than_a_whole_window_allowance_is_a_413_naming_the_limit(web_config, fake_conn):
    client = make_client(dataclasses.replace(web_config, rate_limit_predict=5, queue_limit=100), fake_conn)
    res = client.post("/api/batches", json={"images": [b64(digit_png(1))] * 6})
    assert res.status_code == 413 and "at most 5" in res.json["error"]
    fresh = {"REMOTE_ADDR": "192.0.2.44"}  # the refused request spent one of the first address's
    assert client.post("/api/batches", json={"images": [b64(digit_png(1))] * 5},
                       environ_base=fresh).status_code == 202


def test_without_a_rate_limit_batches_are_bounded_by_their_size_setting_only(web_config, fake_conn):
    client = make_client(dataclasses.replace(web_config, rate_limit_predict=0, queue_limit=100), fake_conn)
    images = [b64(digit_png(1))] * web_config.batch_max_images
    assert {client.post("/api/batches", json={"images": images}).status_code for _ in range(3)} == {202}
