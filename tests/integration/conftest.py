"""Integration fixtures: real ``swagdigits`` processes against the test redis-server."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from swagdigits.embedded_redis import free_port

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    """Mark every test in this folder ``integration`` (pytestmark in a conftest marks nothing),
    so ``-m "not integration"`` really leaves out the real-process tests."""
    for item in items:
        if Path(str(item.fspath)).resolve().parent == _HERE:
            item.add_marker(pytest.mark.integration)

READY_TIMEOUT_S = 60


class Proc:
    """A ``python -m swagdigits ...`` child whose output is kept in a log file."""

    def __init__(self, args: list[str], env: dict, log_path: Path):
        self.args = args
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.popen = subprocess.Popen([sys.executable, "-m", "swagdigits", *args], env=env,
                                      stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig=signal.SIGTERM, timeout=15) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self._log.close()
        return self.popen.returncode


class Stack:
    """Web and worker processes sharing one Redis and one model store."""

    def __init__(self, env: dict, workdir: Path):
        self.env = env
        self.workdir = workdir
        self.procs: list[Proc] = []

    def start(self, *args: str, env: dict | None = None) -> Proc:
        name = "-".join(args) + f"-{len(self.procs)}"
        proc = Proc(list(args), {**self.env, **(env or {})}, self.workdir / f"{name}.log")
        self.procs.append(proc)
        return proc

    def start_web(self) -> str:
        port = free_port()
        self.start("web", env={"SWAGDIGITS_PORT": str(port)})
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: requests.get(url + "/healthz", timeout=1).ok, "web /healthz")
        return url

    def wait_ready(self, url: str, workers: int = 1, timeout: float = READY_TIMEOUT_S) -> dict:
        def ready():
            res = requests.get(url + "/readyz", timeout=2)
            return res.ok and res.json()["predict_workers"] >= workers and res.json()
        return wait_for(ready, "/readyz", self.procs, timeout=timeout)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def wait_for(check, what: str, procs=(), timeout: float = READY_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except requests.RequestException:
            pass
        time.sleep(0.1)
    logs = "\n".join(f"--- {p.args}\n{p.log()[-3000:]}" for p in procs)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


@pytest.fixture
def stack_env(config, tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWAGDIGITS_", "REDIS_URL"))}
    return {**env, **config.as_env(), "SWAGDIGITS_WORKER_HEARTBEAT": "1"}


@pytest.fixture
def stack(stack_env, tmp_path):
    s = Stack(stack_env, tmp_path)
    yield s
    s.stop()
