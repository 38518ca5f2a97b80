"""Security headers, rate limits, Socket.IO origins, storage errors and what the logs keep.

Flask test client over fakeredis; the same properties against real processes
are in tests/integration/test_faults.py.
"""
from __future__ import annotations

import base64
import dataclasses
import errno
import io
import logging

import pytest

from shared.messaging import protocol as p
from testkit.drawings import digit_png
from web import create_app
from web.services import Services

PAGE_AND_API = ["/", "/healthz", "/readyz", "/api/jobs/" + "a" * 32, "/api/nope", "/openapi.json", "/helpdata"]


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def make_client(cfg, conn):
    app = create_app(cfg, services=Services.connect(cfg, conn=conn))
    app.testing = True
    return app.test_client()


@pytest.mark.parametrize("path", PAGE_AND_API)
def test_every_response_carries_the_security_headers(client, path):
    res = client.get(path)
    csp = res.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert res.headers["X-Content-Type-Options"] == "nosniff"
    assert res.headers["X-Frame-Options"] == "DENY"
    assert res.headers["Referrer-Policy"] == "same-origin"


@pytest.mark.usefixtures("frozen_rate_clock")   # no window boundary between the requests
def test_predictions_over_the_limit_get_429_with_retry_after_per_client(web_config, fake_conn):
    client = make_client(dataclasses.replace(web_config, rate_limit_predict=3, queue_limit=100), fake_conn)
    body = {"image": data_url(digit_png(1))}
    statuses = [client.post("/api/predict?wait=0", json=body).status_code for _ in range(4)]
    assert statuses == [202, 202, 202, 429]
    refused = client.post("/api/predict?wait=0", json=body)
    assert refused.status_code == 429 and refused.json["status"] == 429 and "too many" in refused.json["error"]
    assert 1 <= int(refused.headers["Retry-After"]) <= web_config.rate_limit_window
    # Refused before anything is queued; another address has its own allowance.
    assert fake_conn.xlen(p.PREDICT_STREAM) == 3
    other = client.post("/api/predict?wait=0", json=body, environ_base={"REMOTE_ADDR": "192.0.2.9"})
    assert other.status_code == 202
    # Batches spend the same allowance: they are predictions too.
    assert client.post("/api/batches", json={"images": [body["image"]]}).status_code == 429


@pytest.mark.usefixtures("frozen_rate_clock")
@pytest.mark.parametrize("hops, separate", [(0, False), (1, True)])
def test_forwarded_for_names_the_client_only_behind_a_declared_proxy(web_config, fake_conn, hops, separate):
    """Behind compose's nginx every request comes from the proxy: with one trusted hop the
    limit counts each forwarded client; without, a forged header gains nothing."""
    client = make_client(dataclasses.replace(web_config, rate_limit_predict=2, queue_limit=100,
                                             proxy_hops=hops), fake_conn)
    body = {"image": data_url(digit_png(1))}
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    def send(client_address):
        return client.post("/api/predict?wait=0", json=body, environ_base=proxy,
                           headers={"X-Forwarded-For": client_address}).status_code
    assert [send("192.0.2.1") for _ in range(3)] == [202, 202, 429]
    assert (send("192.0.2.2") == 202) is separate


@pytest.mark.usefixtures("frozen_rate_clock")   # no window boundary between the requests
def test_help_data_has_its_own_limit_and_the_keys_never_hold_the_address(web_config, fake_conn):
    client = make_client(dataclasses.replace(web_config, rate_limit_help=2), fake_conn)
    env = {"REMOTE_ADDR": "198.51.100.23"}
    statuses = [client.post("/helpdata", json={"image": data_url(digit_png(d)), "label": d},
                            environ_base=env).status_code for d in (1, 2, 3)]
    assert statuses == [201, 201, 429]
    assert client.post("/api/predict?wait=0", json={"image": data_url(digit_png(1))},
                       environ_base=env).status_code == 202
    keys = [k.decode() for k in fake_conn.keys(p.PREFIX + ":rate:*")]
    assert keys and not any("198.51.100.23" in k for k in keys)


def test_a_zero_limit_turns_rate_limiting_off(web_config, fake_conn):
    client = make_client(dataclasses.replace(web_config, rate_limit_predict=0, queue_limit=100), fake_conn)
    body = {"image": data_url(digit_png(1))}
    assert {client.post("/api/predict?wait=0", json=body).status_code for _ in range(8)} == {202}


def _polling_handshake(client, origin: str | None):
    headers = {"Origin": origin} if origin else {}
    return client.get("/socket.io/?EIO=4&transport=polling", headers=headers)


def test_socketio_accepts_only_the_page_origin_by_default(client):
    assert _polling_handshake(client, "http://localhost").status_code == 200  # test client's host
    assert _polling_handshake(client, "https://evil.example").status_code == 400


def test_socketio_accepts_the_configured_origins(web_config, fake_conn):
    cfg = dataclasses.replace(web_config, allowed_origins="https://digits.example, https://b.example")
    client = make_client(cfg, fake_conn)
    assert _polling_handshake(client, "https://digits.example").status_code == 200
    assert _polling_handshake(client, "https://evil.example").status_code == 400
    assert _polling_handshake(client, "http://localhost").status_code == 400


@pytest.mark.parametrize("code, status", [(errno.ENOSPC, 507), (errno.EROFS, 503), (errno.EACCES, 503)])
def test_a_full_or_read_only_disk_is_a_clear_json_error_and_nothing_is_half_written(
        client, web_config, monkeypatch, code, status):
    import os

    import shared.atomic

    def failing_fsync(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(shared.atomic.os, "fsync", failing_fsync)
    res = client.post("/helpdata", json={"image": data_url(digit_png(5)), "label": 5})
    assert res.status_code == status and res.json["status"] == status
    assert "not saved" in res.json["error"]
    written = [f for f in web_config.help_dir.rglob("*") if f.is_file() and not f.parent.name == ".claims"]
    assert written == []  # no image, no metadata, no temp file
    monkeypatch.undo()
    again = client.post("/helpdata", json={"image": data_url(digit_png(5)), "label": 5})
    assert again.status_code in (200, 201), again.json
    assert len(list(web_config.help_dir.rglob("5/*.png"))) == 1


def test_logs_of_a_request_path_hold_no_secret_address_or_image(web_config, fake_conn, caplog):
    token, address = "tok-3f9a1c77e0", "203.0.113.77"
    cfg = dataclasses.replace(web_config, admin_token=token, redis_url="redis://:pw-91bd2@127.0.0.1:1/0")
    caplog.set_level(logging.DEBUG)
    client = make_client(cfg, fake_conn)
    env = {"REMOTE_ADDR": address}
    image = data_url(digit_png(7))
    client.post("/api/predict", json={"image": image}, environ_base=env)  # no worker: 504
    client.post("/helpdata", json={"image": image, "label": 7}, environ_base=env)
    client.post("/api/retrain", headers={"Authorization": f"Bearer {token}"}, environ_base=env)
    client.post("/api/retrain", headers={"Authorization": f"Bearer {token}x"}, environ_base=env)
    client.post("/api/predict", data=b"\x89PNG" + token.encode(), content_type="image/png", environ_base=env)
    text = "\n".join(r.getMessage() + str(r.exc_info or "") for r in caplog.records)
    assert caplog.records, "the request path logged nothing at DEBUG: the check would prove nothing"
    for secret in (token, "pw-91bd2", address, image[22:80]):
        assert secret not in text


# -- cross-site writes: a form on another site must not post through a visitor's browser --

WRITES = [("/helpdata", {"label": "7"}), ("/api/predict?wait=0", {}), ("/api/batches", {})]


def _form_post(client, path, fields, headers):
    """What an HTML form on any site can send without a CORS preflight."""
    data = {**fields, "file": (io.BytesIO(digit_png(7)), "d.png", "image/png")}
    return client.post(path, data=data, content_type="multipart/form-data", headers=headers)


@pytest.mark.parametrize("path, fields", WRITES)
@pytest.mark.parametrize("headers", [{"Origin": "http://evil.example"},
                                     {"Sec-Fetch-Site": "cross-site"},
                                     {"Origin": "null"},
                                     {"Origin": "http://localhost.evil.example", "Sec-Fetch-Site": "same-site"}])
def test_cross_site_writes_are_refused_with_a_clear_403_and_change_nothing(client, fake_conn, web_config,
                                                                           path, fields, headers):
    res = _form_post(client, path, fields, headers)
    assert res.status_code == 403 and res.json["status"] == 403, res.json
    assert "cross-site" in res.json["error"]
    assert fake_conn.xlen(p.PREDICT_STREAM) == 0 and not fake_conn.keys(p.PREFIX + ":batch*")
    assert not list(web_config.help_dir.rglob("*.png"))


@pytest.mark.parametrize("path, fields", WRITES)
@pytest.mark.parametrize("headers", [{},                                        # curl, Python
                                     {"Origin": "http://localhost"},            # the page itself
                                     {"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"},
                                     {"Sec-Fetch-Site": "same-site"},
                                     {"Sec-Fetch-Site": "none"}])               # typed by the user
def test_same_origin_and_non_browser_writes_still_work(client, path, fields, headers):
    res = _form_post(client, path, fields, headers)
    assert res.status_code in (201, 202), res.json


def test_configured_origins_may_write(web_config, fake_conn):
    cfg = dataclasses.replace(web_config, allowed_origins="https://digits.example")
    client = make_client(cfg, fake_conn)
    ok = _form_post(client, "/helpdata", {"label": "7"}, {"Origin": "https://digits.example"})
    assert ok.status_code == 201, ok.json
    refused = _form_post(client, "/helpdata", {"label": "3"}, {"Origin": "https://other.example"})
    assert refused.status_code == 403


def test_reads_are_not_checked_for_their_origin(client):
    assert client.get("/helpdata", headers={"Origin": "http://evil.example",
                                            "Sec-Fetch-Site": "cross-site"}).status_code == 200


def test_socketio_responses_carry_the_security_headers_too(client):
    for res in (_polling_handshake(client, "http://localhost"), _polling_handshake(client, "https://evil.example"),
                client.get("/socket.io/?EIO=4&transport=polling&sid=nope")):
        assert res.headers["X-Content-Type-Options"] == "nosniff", res.status_code
        assert res.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in res.headers["Content-Security-Policy"]
        assert res.headers["Referrer-Policy"] == "same-origin"
