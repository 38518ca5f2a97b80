"""Pushed answers across processes: real redis-server, a real predict worker, TWO web processes.

Each browser (a python-socketio client) is connected to one web process; the
worker publishes on the Redis Socket.IO channel, every web process hears it,
and only the one holding the browser's room delivers it.
"""
from __future__ import annotations

import base64
import json
import threading
import time

import requests
import socketio

from shared.messaging import protocol as p
from testkit.socket_page import WAIT_S, Browser, data_url


def test_each_browser_gets_only_its_own_answers_whichever_web_process_holds_it(stack):
    stack.start("worker", "predict")
    url_a, url_b = stack.start_web(), stack.start_web()
    version = stack.wait_ready(url_a)["model_versions"][0]
    a, b = Browser(url_a), Browser(url_b)
    try:
        # WebSocket really works under gunicorn's gthread worker with simple-websocket.
        assert a.sio.transport() == b.sio.transport() == "websocket"

        job_a, job_b = a.predict(3), b.predict(7)
        event, result = a.wait_for(job_a)
        assert (event, result["digit"], result["model_version"]) == (p.EVENT_PREDICTION, 3, version)
        assert set(result) >= {"job_id", "digit", "probabilities", "model_version", "timings"}
        assert b.wait_for(job_b)[1]["digit"] == 7

        # HTTP to web process B, tagged with a socket held by web process A: only with
        # the secret A handed that socket; B's own socket's secret, or none, is a 403.
        for headers in ({}, {"X-Socket-Secret": b.secret()}):
            refused = requests.post(f"{url_b}/api/predict?sid={a.sid}&wait=0", json={"image": data_url(8)},
                                    headers=headers, timeout=5)
            assert refused.status_code == 403 and refused.json()["status"] == 403, headers
        res = requests.post(f"{url_b}/api/predict?sid={a.sid}&wait=0", json={"image": data_url(8)},
                            headers={"X-Socket-Secret": a.secret()}, timeout=5)
        assert res.status_code == 202
        job_http = res.json()["job_id"]
        assert a.wait_for(job_http)[1]["digit"] == 8

        # A last drawing from B: the worker answers in order and both web processes
        # hear the channel in order, so anything misrouted to B would be in by now.
        job_b2 = b.predict(1, seq=2)
        b.wait_for(job_b2)
        assert b.job_ids() == [job_b, job_b2]
        assert a.job_ids() == [job_a, job_http]
    finally:
        a.close()
        b.close()


def test_long_polling_clients_are_served_too_and_bad_drawings_come_back_in_words(stack):
    stack.start("worker", "predict")
    url = stack.start_web()
    stack.wait_ready(url)
    c = Browser(url, transports=("polling",))
    try:
        assert c.sio.transport() == "polling"
        job = c.predict(4)
        assert c.wait_for(job)[1]["digit"] == 4
        ack = c.sio.call(p.EVENT_PREDICT, {"image": "data:image/png;base64,AAAA", "seq": 5}, timeout=WAIT_S)
        assert ack["status"] in (400, 415)
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and not any(d.get("seq") == 5 for _, d in c.got):
            time.sleep(0.02)
        [(event, error)] = [(e, d) for e, d in c.got if d.get("seq") == 5]
        assert event == p.EVENT_PREDICTION_ERROR and error["status"] == ack["status"] and error["error"]
    finally:
        c.close()


class RawSocket:
    """A Socket.IO client over WebSocket that can also send what no client library would.

    ``send_message`` goes out as an Engine.IO message (a Socket.IO packet of
    the test's making); ``send_frame`` as a raw WebSocket frame (an Engine.IO
    packet of the test's making).
    """

    def __init__(self, url: str):
        self.sio = socketio.Client(reconnection=False)
        self.gone = threading.Event()
        self.sio.on("disconnect", lambda *reason: self.gone.set())
        self.sio.connect(url, transports=["websocket"], wait_timeout=WAIT_S)

    def send_message(self, text: str) -> None:
        self.sio.eio.send(text)

    def send_frame(self, text: str) -> None:
        self.sio.eio.ws.send(text)

    def closed_by_server(self) -> bool:
        return self.gone.wait(WAIT_S)


def _log_growth(proc, action, timeout: float = 5.0) -> str:
    """What ``proc`` logs after ``action``: waits for a line about it, then a little for any more."""
    before = len(proc.log())
    action()
    deadline = time.monotonic() + timeout
    while "malformed" not in proc.log()[before:] and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    return proc.log()[before:]


def test_a_malformed_socketio_packet_closes_the_socket_and_logs_one_short_line(stack):
    url = stack.start_web()
    [web] = stack.procs
    sockets = [RawSocket(url) for _ in range(3)]
    for bad, sock in zip(["Z", "9", "2[bad json"], sockets):    # type not a digit, unknown type, bad JSON
        grown = _log_growth(web, lambda: sock.send_message(bad))
        assert sock.closed_by_server(), f"{bad!r}: the socket stayed open"
        lines = grown.strip().splitlines()
        assert len(lines) == 1 and "malformed" in lines[0] and len(grown) < 300, grown
        assert "Traceback" not in grown
    # A well-behaved client is unaffected.
    browser = Browser(url)
    assert browser.sio.connected
    browser.sio.disconnect()


def test_a_malformed_engineio_packet_closes_the_websocket_and_logs_one_short_line(stack):
    url = stack.start_web()
    [web] = stack.procs
    sock = RawSocket(url)
    grown = _log_growth(web, lambda: sock.send_frame("Z"))
    assert sock.closed_by_server()
    lines = grown.strip().splitlines()
    assert len(lines) == 1 and "malformed" in lines[0] and len(grown) < 300, grown
    assert requests.get(url + "/healthz", timeout=5).ok


def test_malformed_packets_over_long_polling_log_one_short_line(stack):
    url = stack.start_web()
    [web] = stack.procs
    base = url + "/socket.io/?EIO=4&transport=polling"

    def session() -> tuple[requests.Session, str]:
        s = requests.Session()
        sid = json.loads(s.get(base, timeout=WAIT_S).text[1:])["sid"]
        assert s.post(f"{base}&sid={sid}", data="40", timeout=WAIT_S).ok
        # the connect ack, after the socket's 'session' event (web.socket_secrets)
        assert any(packet.startswith("40{") for packet in s.get(f"{base}&sid={sid}", timeout=WAIT_S).text.split("\x1e"))
        return s, f"{base}&sid={sid}"

    s, session_url = session()
    grown = _log_growth(web, lambda: s.post(session_url, data="4Z", timeout=WAIT_S))  # Socket.IO level
    assert len(grown.strip().splitlines()) == 1 and "malformed" in grown and "Traceback" not in grown, grown
    assert s.get(session_url, timeout=WAIT_S).status_code == 400, "the session should be gone"
    s, session_url = session()
    grown = _log_growth(web, lambda: s.post(session_url, data="Z", timeout=WAIT_S))   # Engine.IO level
    assert len(grown.strip().splitlines()) == 1 and "malformed" in grown and "Traceback" not in grown, grown


def test_a_socketio_message_larger_than_a_base64_upload_is_refused_and_the_socket_closed(stack, config):
    """README: Socket.IO messages are limited to a base64 image of SWAGDIGITS_MAX_UPLOAD_BYTES."""
    import redis

    url = stack.start_web()
    limit = config.max_upload_bytes

    def image_message(n_bytes: int) -> dict:
        return {"image": "data:image/png;base64," + base64.b64encode(b"\x89PNG" + b"\0" * (n_bytes - 4)).decode(),
                "seq": n_bytes}

    # An image of exactly the upload limit fits: the drawing itself is judged (and refused in words).
    fits = RawSocket(url)
    ack = fits.sio.call(p.EVENT_PREDICT, image_message(limit), timeout=30)
    assert 400 <= ack["status"] < 500 and ack["status"] != 413, ack
    assert fits.sio.connected and not fits.gone.is_set()

    # A tenth more is refused before any handler runs: the server closes the socket.
    too_big = RawSocket(url)
    too_big.sio.emit(p.EVENT_PREDICT, image_message(limit + limit // 10))
    assert too_big.closed_by_server(), "an oversize message was accepted"
    assert redis.Redis.from_url(config.redis_url).xlen(p.PREDICT_STREAM) == 0
    # Nobody else is affected.
    assert fits.sio.call(p.EVENT_PREDICT, {"image": data_url(3), "seq": 1}, timeout=WAIT_S)["job_id"]
    fits.sio.disconnect()
