"""Many idle sockets from one address cannot take the web tier offline (issue 17, finding 3).

A real ``swagdigits web`` (gunicorn ``gthread``, 64 threads, as ``swagdigits up``
runs it) and a real predict worker. Each WebSocket holds a web thread for as
long as it is open; before the per-address cap, 64 complete, well-formed
WebSockets from one address used every thread and ``/healthz`` timed out.
Here one address opens 500: past ``SWAGDIGITS_SOCKETS_PER_CLIENT`` each
handshake is refused at once with a 429, and ``/healthz`` and a prediction
still answer promptly while the admitted ones stay open.
"""
from __future__ import annotations

import base64
import logging
import time

import requests
import websocket

from testkit.drawings import digit_png

log = logging.getLogger(__name__)

ATTEMPTS = 500
PROMPT_S = 2.0


def _open(url: str, timeout: float = 3.0):
    """One Engine.IO WebSocket (the transport the page uses), or the HTTP status that refused it."""
    ws_url = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    try:
        ws = websocket.create_connection(ws_url, timeout=timeout)
    except websocket.WebSocketBadStatusException as exc:
        return exc.status_code
    except (websocket.WebSocketTimeoutException, OSError):
        return "timeout"
    ws.recv()  # the Engine.IO open packet: the session really exists
    ws.send("40")  # and a Socket.IO connect, as a browser sends
    return ws


def test_500_idle_sockets_from_one_address_leave_healthz_and_predictions_answering(stack):
    stack.start("worker", "predict")
    url = stack.start_web()
    stack.wait_ready(url)
    held, refused = [], []
    try:
        started = time.monotonic()
        for _ in range(ATTEMPTS):
            got = _open(url)
            if got == "timeout":
                break  # no thread left to answer: the bug this test is about
            (refused if isinstance(got, int) else held).append(got)
        opening_s = time.monotonic() - started

        t0 = time.monotonic()
        health = requests.get(url + "/healthz", timeout=PROMPT_S * 5)
        health_s = time.monotonic() - t0
        t0 = time.monotonic()
        png = base64.b64encode(digit_png(3)).decode()
        answer = requests.post(url + "/api/predict", json={"image": png}, timeout=PROMPT_S * 5)
        predict_s = time.monotonic() - t0

        log.info("%d sockets held, %d refused %s in %.2f s; /healthz %.1f ms, prediction %.1f ms",
                 len(held), len(refused), sorted(set(refused)), opening_s, health_s * 1000,
                 predict_s * 1000)
        assert len(held) + len(refused) == ATTEMPTS, (
            f"a handshake hung after {len(held)} open sockets (no web thread left)")
        assert len(held) == 20, len(held)            # SWAGDIGITS_SOCKETS_PER_CLIENT's default
        assert set(refused) == {429}, set(refused)
        assert opening_s < 60, opening_s             # refusals are quick, not timeouts
        assert health.status_code == 200 and health_s < PROMPT_S, health_s
        assert answer.status_code == 200 and predict_s < PROMPT_S, (answer.status_code, predict_s)
        assert answer.json()["digit"] == 3
    finally:
        for ws in held:
            ws.close()

    # Closed sockets give their places back: the address may connect again.
    def reopened():
        got = _open(url)
        if isinstance(got, websocket.WebSocket):
            got.close()
            return True
        return False

    deadline = time.monotonic() + 10
    while not reopened():
        assert time.monotonic() < deadline, "closed sockets never gave their places back"
        time.sleep(0.2)
