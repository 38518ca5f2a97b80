"""Pushed answers across processes: real redis-server, a real predict worker, TWO web processes.

Each browser (a python-socketio client) is connected to one web process; the
worker publishes on the Redis Socket.IO channel, every web process hears it,
and only the one holding the browser's room delivers it.
"""
from __future__ import annotations

import base64
import threading
import time

import requests
import socketio

from shared.messaging import protocol as p
from testkit.drawings import digit_png

WAIT_S = 10.0


def data_url(digit: int) -> str:
    return "data:image/png;base64," + base64.b64encode(digit_png(digit)).decode()


class Browser:
    """A Socket.IO client that records every prediction and error pushed to it."""

    def __init__(self, url: str, transports=("websocket",)):
        self.sio = socketio.Client(reconnection=False)
        self.got: list[tuple[str, dict]] = []
        self._cv = threading.Condition()
        for event in (p.EVENT_PREDICTION, p.EVENT_PREDICTION_ERROR):
            self.sio.on(event, lambda data, event=event: self._record(event, data))
        self.sio.connect(url, transports=list(transports), wait_timeout=WAIT_S)

    def _record(self, event: str, data: dict) -> None:
        with self._cv:
            self.got.append((event, data))
            self._cv.notify_all()

    @property
    def sid(self) -> str:
        return self.sio.get_sid()

    def predict(self, digit: int, seq: int = 1) -> str:
        ack = self.sio.call(p.EVENT_PREDICT, {"image": data_url(digit), "seq": seq}, timeout=WAIT_S)
        assert "job_id" in ack, ack
        return ack["job_id"]

    def wait_for(self, job_id: str) -> tuple[str, dict]:
        def found():
            return next(((e, d) for e, d in self.got if d.get("job_id") == job_id), None)
        with self._cv:
            assert self._cv.wait_for(found, WAIT_S), f"nothing for job {job_id}; got {self.got}"
            return found()

    def job_ids(self) -> list[str]:
        with self._cv:
            return [d.get("job_id") for _, d in self.got]

    def close(self) -> None:
        self.sio.disconnect()


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

        # HTTP to web process B, tagged with a socket held by web process A.
        res = requests.post(f"{url_b}/api/predict?sid={a.sid}&wait=0", json={"image": data_url(8)}, timeout=5)
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
