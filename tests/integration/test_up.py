"""``swagdigits up``: the one command that starts everything, and stops it all again."""
import re
import signal
import subprocess

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
        wait_for(lambda: requests.get(url + "/readyz", timeout=2).json()["predict_workers"] == 2,
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
