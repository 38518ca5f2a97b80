"""A Socket.IO client standing in for the drawing page, for tests of pushed answers.

It speaks the page's protocol (``shared.messaging.protocol``) with python-socketio,
so a test can hold many pages open, through any web process or the front, without
a real browser.
"""
from __future__ import annotations

import base64
import threading

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
        self.session: dict = {}
        self._cv = threading.Condition()
        for event in (p.EVENT_PREDICTION, p.EVENT_PREDICTION_ERROR):
            self.sio.on(event, lambda data, event=event: self._record(event, data))
        self.sio.on(p.EVENT_SESSION, self._on_session)
        self.sio.connect(url, transports=list(transports), wait_timeout=WAIT_S)

    def _on_session(self, data: dict) -> None:
        with self._cv:
            self.session = data
            self._cv.notify_all()

    def secret(self) -> str:
        """The secret this socket was handed on connect (``session`` event)."""
        with self._cv:
            assert self._cv.wait_for(lambda: self.session, WAIT_S), "no session event"
            assert self.session["sid"] == self.sid
            return self.session["secret"]

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
