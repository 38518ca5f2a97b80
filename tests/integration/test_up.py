"""``swagdigits up``: the one command that starts everything, and stops it all again."""
import os
import re
import signal
import socket
import time

import psutil
import pytest
import requests

from swagdigits.embedded_redis import free_port
from testkit.drawings import digit_png
from tests.integration.conftest import Proc, wait_for


@pytest.fixture
def up_env(stack_env, tmp_path):
    env = {**stack_env, "SWAGDIGITS_DATA_DIR": str(tmp_path)}
    env.pop("REDIS_URL", None)  # make `up` start its own redis-server
    return env


def test_up_starts_redis_web_and_workers_then_sigterm_stops_them_all(up_env, tmp_path):
    port = free_port()
    up = Proc(["up", "--workers", "2", "--port", str(port)], up_env, tmp_path / "up.log")
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: requests.get(url + "/readyz", timeout=2).json().get("predict_workers") == 2,
                 "2 workers ready", [up])
        children = psutil.Process(up.popen.pid).children(recursive=True)
        roles = sorted(" ".join(c.cmdline()[c.cmdline().index("swagdigits") + 1:])
                       for c in children if "swagdigits" in c.cmdline())
        assert roles.count("worker predict") == 2 and "worker retrain" in roles and "web" in roles
        assert any("redis-server" in c.name() for c in children), "an embedded redis-server runs"
        # The store was empty: one worker trained the first model, in a child process, so
        # neither predict worker holds scikit-learn (its compiled modules are not mapped).
        for worker in (c for c in children if c.cmdline()[-2:] == ["worker", "predict"]):
            mapped = [m.path for m in worker.memory_maps()]
            assert not any("/sklearn/" in path for path in mapped), worker.pid
        res = requests.post(url + "/api/predict", files={"file": ("d.png", digit_png(1), "image/png")},
                            timeout=10)
        assert res.json()["digit"] == 1
        # up logs where every process's metrics are: web on its own port, each worker on its own
        metrics_urls = re.findall(r"metrics on (http://127\.0\.0\.1:\d+/metrics)", up.log())
        assert len(set(metrics_urls)) == 4 and f"{url}/metrics" in metrics_urls, up.log()[-2000:]
        for metrics_url in set(metrics_urls):
            assert "swagdigits_" in requests.get(metrics_url, timeout=5).text, metrics_url
    finally:
        code = up.stop(signal.SIGTERM, timeout=30)
    assert code == 0, up.log()[-2000:]
    leftovers = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert leftovers == [], f"left behind: {leftovers}"
    assert "all stopped" in up.log()


def test_up_with_a_redis_url_starts_no_redis(up_env, tmp_path, redis_url):
    port = free_port()
    up = Proc(["up", "--workers", "1", "--port", str(port), "--redis-url", redis_url], up_env,
              tmp_path / "up.log")
    try:
        wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).ok, "ready", [up])
        children = psutil.Process(up.popen.pid).children(recursive=True)
        assert not any("redis-server" in c.name() for c in children)
    finally:
        up.stop()


def _children(up: Proc, role: str) -> list[psutil.Process]:
    """The live ``swagdigits <role>`` processes ``up`` started (role e.g. "worker predict", "web");
    not their own children (gunicorn's worker has its master's command line)."""
    found = []
    for c in psutil.Process(up.popen.pid).children(recursive=False):
        try:
            cmd = c.cmdline()
            if c.status() != psutil.STATUS_ZOMBIE and "swagdigits" in cmd and \
                    " ".join(cmd[cmd.index("swagdigits") + 1:]) == role:
                found.append(c)
        except psutil.NoSuchProcess:
            pass
    return found


def test_up_restarts_a_child_that_dies(up_env, tmp_path, redis_url):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    up = Proc(["up", "--workers", "1", "--port", str(port), "--redis-url", redis_url], up_env,
              tmp_path / "up.log")
    try:
        wait_for(lambda: requests.get(url + "/readyz", timeout=2).ok, "ready", [up])
        for role in ("worker predict", "web"):
            [child] = _children(up, role)
            orphans = child.children(recursive=True)   # gunicorn's worker outlives its master briefly
            child.kill()
            child.wait(10)
            psutil.wait_procs(orphans, timeout=30)      # until then it may still answer on the port
            replaced = wait_for(lambda: _children(up, role), f"a new {role} process", [up])
            assert [c.pid for c in replaced] != [child.pid]
        assert up.log().count("exited with -9; restarting") == 2, up.log()[-3000:]
        # The restarted worker and web serve again: a drawing is answered.
        wait_for(lambda: requests.get(url + "/readyz", timeout=2).ok, "ready again", [up])
        res = wait_for(lambda: requests.post(url + "/api/predict", timeout=30,
                                             files={"file": ("d.png", digit_png(4), "image/png")}),
                       "a drawing answered", [up])
        assert res.status_code == 200 and res.json()["digit"] == 4
    finally:
        assert up.stop(signal.SIGTERM, timeout=30) == 0, up.log()[-3000:]


def test_sigterm_lets_a_predict_worker_finish_the_drawings_it_holds(up_env, tmp_path, redis_url, redis_conn):
    from shared.messaging import protocol as p
    from shared.messaging.predict_queue import PredictQueue

    # 1,000 drawings wait before the worker starts; it claims them in one group (SWAGDIGITS_MAX_BATCH)
    # and holds them for the second or so their prediction takes.
    queue = PredictQueue(redis_conn)
    job_ids = [queue.submit(digit_png(d % 10), limit=5000) for d in range(1000)]
    port = free_port()
    env = {**up_env, "SWAGDIGITS_MAX_BATCH": "1000", "SWAGDIGITS_QUEUE_LIMIT": "5000"}
    up = Proc(["up", "--workers", "1", "--port", str(port), "--redis-url", redis_url], env,
              tmp_path / "up.log")
    try:
        def held():
            summary = redis_conn.xpending(p.PREDICT_STREAM, p.PREDICT_GROUP)
            return summary["pending"] >= 100 and summary

        deadline = time.monotonic() + 120
        while not held():
            assert time.monotonic() < deadline, "the worker never claimed the drawings\n" + up.log()[-3000:]
            time.sleep(0.01)
        os.kill(up.popen.pid, signal.SIGTERM)
        entries = redis_conn.xpending_range(p.PREDICT_STREAM, p.PREDICT_GROUP, "-", "+", 5000)
    finally:
        code = up.stop(signal.SIGTERM, timeout=30)
    assert code == 0, up.log()[-3000:]
    assert len(entries) >= 100, "the worker held nothing when SIGTERM came"
    assert redis_conn.xpending(p.PREDICT_STREAM, p.PREDICT_GROUP)["pending"] == 0, "drawings left held"
    states = dict(zip(job_ids, queue.states(job_ids)))
    assert p.STARTED not in states.values(), "a claimed drawing was never answered"
    finished = sum(s == p.FINISHED for s in states.values())
    assert finished >= len(entries), (finished, len(entries))
    assert "killing it" not in up.log()


def test_clients_sending_their_headers_a_byte_at_a_time_do_not_stop_service(up_env, tmp_path, redis_url):
    """Issue 15: 200 slow clients, three times the web tier's threads, while a normal client draws.

    Straight to gunicorn, each would hold a thread and every drawing would wait for ever
    (``python -m benchmarks.slow_clients`` measures both ways in); ``up``'s front reads
    each request whole first, so the web tier never sees them.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    up = Proc(["up", "--workers", "1", "--port", str(port), "--redis-url", redis_url], up_env,
              tmp_path / "up.log")
    slow: list[socket.socket] = []
    try:
        wait_for(lambda: requests.get(url + "/readyz", timeout=2).ok, "ready", [up])
        for _ in range(200):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            slow.append(sock)
        answers = []
        for i in range(40):
            for sock in slow[i * 5:(i + 1) * 5]:
                sock.sendall(b"x")                               # still sending, a byte at a time
            res = requests.post(url + "/api/predict", files={"file": ("d.png", digit_png(7), "image/png")},
                                timeout=10)
            answers.append((res.status_code, res.json().get("digit")))
        assert answers == [(200, 7)] * 40
        for sock in slow[:5]:                                    # and they were really held open
            sock.sendall(b"x")
    finally:
        for sock in slow:
            sock.close()
        assert up.stop(signal.SIGTERM, timeout=30) == 0, up.log()[-3000:]


def test_sockets_through_the_front_get_their_answers_over_websocket_and_long_polling(up_env, tmp_path,
                                                                                      redis_url):
    """The front relays an accepted WebSocket upgrade both ways, and long-polling as plain requests."""
    from testkit.socket_page import Browser

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    up = Proc(["up", "--workers", "1", "--port", str(port), "--redis-url", redis_url], up_env,
              tmp_path / "up.log")
    browsers = []
    try:
        wait_for(lambda: requests.get(url + "/readyz", timeout=2).ok, "ready", [up])
        browsers = [Browser(url), Browser(url, transports=("polling",))]
        assert [b.sio.transport() for b in browsers] == ["websocket", "polling"]
        for browser, digit in zip(browsers, (2, 6)):
            job = browser.predict(digit)
            assert browser.wait_for(job)[1]["digit"] == digit
    finally:
        for browser in browsers:
            browser.close()
        assert up.stop(signal.SIGTERM, timeout=30) == 0, up.log()[-3000:]
