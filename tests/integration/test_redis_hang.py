"""Redis stops answering (SIGSTOP) instead of going away: answers stay fast, nothing is lost.

A stopped redis-server still accepts connections in the kernel and never
replies, so only timeouts notice it: readiness and new predictions (HTTP and
Socket.IO) must answer 503 JSON within a second, not after the 10 s command
timeout they used to wait. After SIGCONT the same processes answer again
(no restart), and every drawing queued before the stall is answered.
Real redis-server of this test's own, real worker and web processes.
"""
from __future__ import annotations

import base64
import logging
import signal
import time

import requests
import socketio

from shared.messaging import protocol as p
from swagdigits.embedded_redis import EmbeddedRedis
from testkit.drawings import digit_png
from tests.integration.conftest import Stack, wait_for

log = logging.getLogger(__name__)

FAST_S = 1.0        # target: a 503 within a second of asking
PROBES = 4          # requests of each kind while Redis is stopped


def _data_url(digit: int) -> str:
    return "data:image/png;base64," + base64.b64encode(digit_png(digit)).decode()


def _timed(call):
    t0 = time.monotonic()
    result = call()
    return result, time.monotonic() - t0


def test_a_hanging_redis_gives_fast_503s_and_everything_recovers_without_loss(stack_env, tmp_path):
    server = EmbeddedRedis(tmp_path / "hang-redis", persistent=False).start()
    stack = Stack({**stack_env, "REDIS_URL": server.url, "SWAGDIGITS_PREDICT_TIMEOUT": "5"}, tmp_path)
    sio = socketio.Client(reconnection=False)
    try:
        worker = stack.start("worker", "predict")
        url = stack.start_web()
        stack.wait_ready(url)
        assert requests.post(url + "/api/predict", json={"image": _data_url(2)}, timeout=10).json()["digit"] == 2
        sio.connect(url, transports=["websocket"], wait_timeout=10)
        ack = sio.call(p.EVENT_PREDICT, {"image": _data_url(4), "seq": 1}, timeout=10)
        assert "job_id" in ack, ack

        # Drawings queued and not yet taken: the worker is frozen while they are sent.
        worker.popen.send_signal(signal.SIGSTOP)
        queued = []
        for digit in (0, 1, 3, 5, 6, 8):
            res = requests.post(url + "/api/predict?wait=0", json={"image": _data_url(digit)}, timeout=5)
            assert res.status_code == 202, res.text
            queued.append((res.json()["job_id"], digit))

        server.process.send_signal(signal.SIGSTOP)
        worker.popen.send_signal(signal.SIGCONT)   # it now waits on the stopped Redis too
        slowest: dict[str, float] = {}
        for i in range(PROBES):
            ready, took = _timed(lambda: requests.get(url + "/readyz", timeout=15))
            assert ready.status_code == 503 and "redis" in ready.json()["missing"], ready.text
            slowest["readyz"] = max(slowest.get("readyz", 0.0), took)

            for name, query in (("predict", ""), ("predict_wait0", "?wait=0")):
                res, took = _timed(lambda: requests.post(url + "/api/predict" + query,
                                                         json={"image": _data_url(7)}, timeout=15))
                assert res.status_code == 503 and res.headers["Content-Type"] == "application/json", res.text
                assert res.json()["status"] == 503 and int(res.headers["Retry-After"]) > 0
                slowest[name] = max(slowest.get(name, 0.0), took)

            ack, took = _timed(lambda: sio.call(p.EVENT_PREDICT, {"image": _data_url(9), "seq": 10 + i},
                                                timeout=15))
            assert ack["status"] == 503 and ack["seq"] == 10 + i, ack
            slowest["socket_predict"] = max(slowest.get("socket_predict", 0.0), took)
        assert all(took < FAST_S for took in slowest.values()), slowest

        server.process.send_signal(signal.SIGCONT)
        resumed = time.monotonic()
        wait_for(lambda: requests.get(url + "/readyz", timeout=5).status_code == 200, "readiness again",
                 stack.procs, timeout=30)
        # Nothing queued before the stall is lost: every drawing gets its answer.
        for job_id, digit in queued:
            job = wait_for(lambda: (r := requests.get(f"{url}/api/jobs/{job_id}", timeout=5).json())
                           .get("state") in (p.FINISHED, p.FAILED) and r, f"job {job_id}", stack.procs,
                           timeout=30)
            assert job["state"] == p.FINISHED and job["result"]["digit"] == digit, job
        res = requests.post(url + "/api/predict", json={"image": _data_url(3)}, timeout=10)
        assert res.status_code == 200 and res.json()["digit"] == 3
        ack = sio.call(p.EVENT_PREDICT, {"image": _data_url(6), "seq": 99}, timeout=10)
        assert "job_id" in ack, ack
        recovered = time.monotonic() - resumed
        assert all(proc.popen.poll() is None for proc in stack.procs), "recovered without a restart"
        assert recovered < 30
        log.info("slowest answers while Redis was stopped: %s; recovered in %.1fs",
                 {k: round(v, 3) for k, v in slowest.items()}, recovered)
    finally:
        if server.process is not None and server.process.poll() is None:
            server.process.send_signal(signal.SIGCONT)
        if sio.connected:
            sio.disconnect()
        stack.stop()
        server.stop()
