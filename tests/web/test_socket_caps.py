"""Socket.IO connection caps: per client address, and per process so HTTP keeps threads.

Engine.IO long-polling handshakes through the Flask test client (each opens a
real engine session); the real-process check with 500 WebSockets is
tests/integration/test_socket_caps.py.
"""
from __future__ import annotations

import dataclasses
import json

import pytest

from web import create_app
from web.services import Services
from web.socket_caps import Refused, SocketCaps
from web.sockets import socketio

HANDSHAKE = "/socket.io/?EIO=4&transport=polling"


@pytest.fixture
def capped_config(web_config):
    # 8 threads, 4 kept for HTTP: at most 4 connections in the process, 3 per address.
    return dataclasses.replace(web_config, sockets_per_client=3, web_threads=8, http_threads=4)


@pytest.fixture
def capped_app(capped_config, fake_conn):
    app = create_app(capped_config, services=Services.connect(capped_config, conn=fake_conn))
    app.testing = True
    return app


def handshake(app, addr: str):
    res = app.test_client().get(HANDSHAKE, environ_base={"REMOTE_ADDR": addr})
    sid = None
    if res.status_code == 200:
        sid = json.loads(res.get_data(as_text=True)[1:])["sid"]  # "0{...}": the open packet
    return res, sid


def test_one_address_gets_its_cap_then_a_429_json_with_retry_after(capped_app):
    sids = [handshake(capped_app, "10.0.0.1")[1] for _ in range(3)]
    assert all(sids)
    res, _ = handshake(capped_app, "10.0.0.1")
    assert res.status_code == 429
    assert res.headers["Retry-After"] == "5"
    assert res.get_json()["status"] == 429 and "at most 3" in res.get_json()["error"]
    # Security headers still go on, as on every answer.
    assert res.headers["X-Content-Type-Options"] == "nosniff"
    # Another address is not affected.
    assert handshake(capped_app, "10.0.0.2")[0].status_code == 200


def test_the_process_keeps_http_threads_whatever_the_number_of_addresses(capped_app):
    for i in range(4):
        assert handshake(capped_app, f"10.0.1.{i}")[0].status_code == 200
    res, _ = handshake(capped_app, "10.0.1.99")
    assert res.status_code == 503 and res.get_json()["status"] == 503
    assert res.headers["Retry-After"] == "5"
    # HTTP is not capped: health and every other route still answer.
    assert capped_app.test_client().get("/healthz").status_code == 200


def test_a_closed_session_gives_its_place_back(capped_app):
    sids = [handshake(capped_app, "10.0.0.1")[1] for _ in range(3)]
    assert handshake(capped_app, "10.0.0.1")[0].status_code == 429
    # Closed by the server (as a ping timeout or a bad packet closes it); without waiting
    # for the client to read its queue, which a test client never does.
    socketio.server.eio.sockets[sids[0]].close(wait=False)
    assert capped_app.extensions["swagdigits"].socket_caps.open_count("10.0.0.1") == 2
    assert handshake(capped_app, "10.0.0.1")[0].status_code == 200


def test_requests_of_an_open_session_are_not_counted_again(capped_app):
    _, sid = handshake(capped_app, "10.0.0.1")
    client = capped_app.test_client()
    for _ in range(5):  # the session's own polls carry its sid
        res = client.post(f"{HANDSHAKE}&sid={sid}", data="40", environ_base={"REMOTE_ADDR": "10.0.0.1"})
        assert res.status_code == 200
    assert capped_app.extensions["swagdigits"].socket_caps.open_count("10.0.0.1") == 1


def test_a_refused_engine_handshake_gives_its_place_back(capped_app):
    caps = capped_app.extensions["swagdigits"].socket_caps
    res = capped_app.test_client().get("/socket.io/?EIO=3&transport=polling",
                                       environ_base={"REMOTE_ADDR": "10.0.0.1"})
    assert res.status_code == 400   # wrong protocol version: the engine never opened a session
    assert caps.open_count() == 0


def test_caps_count_and_release_exactly():
    caps = SocketCaps(per_client=2, total=3)
    a1, a2 = caps.reserve("a"), caps.reserve("a")
    with pytest.raises(Refused) as refused:
        caps.reserve("a")
    assert refused.value.status == 429
    b1 = caps.reserve("b")
    with pytest.raises(Refused) as refused:
        caps.reserve("c")
    assert refused.value.status == 503
    caps.bind(a1, "sid-a1")
    caps.session_ended("sid-a1")
    a1.release()                      # twice is harmless
    caps.session_ended("sid-a1")
    assert caps.open_count() == 2 and caps.open_count("a") == 1
    caps.reserve("c")
    for place in (a2, b1):
        place.release()
    assert caps.open_count() == 1


def test_zero_turns_the_per_address_cap_off():
    caps = SocketCaps(per_client=0, total=50)
    for _ in range(50):
        caps.reserve("a")
    with pytest.raises(Refused) as refused:
        caps.reserve("a")
    assert refused.value.status == 503
