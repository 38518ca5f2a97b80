"""``swagdigits up``: Redis, front, web, N predict workers and the retrain worker as child processes.

The front (``swagdigits.front``) owns SWAGDIGITS_HOST:SWAGDIGITS_PORT and hands
whole requests to the web tier on a private loopback port, as compose's nginx
does; the web tier trusts one more proxy hop for the client's address.

Each child is ``python -m swagdigits <role>`` so ``ps`` shows what it is. A
child that dies is restarted (with a pause, so a crash loop cannot spin);
Ctrl-C or SIGTERM stops every child, then the embedded Redis.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field

from shared.config import SETTINGS, Config
from swagdigits.embedded_redis import EmbeddedRedis, detach_from_terminal_signals, free_port

log = logging.getLogger("swagdigits.up")

STOP_GRACE_S = 10.0
RESTART_PAUSE_S = 2.0
READY_TIMEOUT_S = 180.0


@dataclass
class Child:
    role: str
    args: list[str]
    env: dict
    process: subprocess.Popen | None = None
    restarts: int = 0
    metrics_port: int | None = None
    started_at: float = field(default=0.0)

    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "swagdigits", *self.args], env=self.env,
                                        preexec_fn=detach_from_terminal_signals)
        self.started_at = time.monotonic()
        log.info("started %-10s pid %d%s", self.role, self.process.pid,
                 f", metrics on http://127.0.0.1:{self.metrics_port}/metrics" if self.metrics_port else "")


class Supervisor:
    def __init__(self, config: Config, workers: int, redis_url: str | None):
        self.config = config
        self.workers = workers
        self.redis_url = redis_url
        self.redis: EmbeddedRedis | None = None
        self.children: list[Child] = []
        self.stopping = threading.Event()

    def run(self) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stopping.set())
        try:
            self._start_all()
            self._wait_ready()
            while not self.stopping.wait(0.5):
                self._restart_dead()
        finally:
            self._stop_all()
        return 0

    def _start_all(self) -> None:
        url = self.redis_url
        if not url:
            self.redis = EmbeddedRedis(self.config.data_dir / "redis",
                                       maxmemory=self.config.redis_maxmemory).start()
            url = self.redis.url
        base = {**os.environ, **self.config.as_env(), SETTINGS["redis_url"].env: url}
        # The web tier serves /metrics on its own HTTP port (through the front); workers on the
        # free port each gets.
        web_bind = f"127.0.0.1:{free_port()}"
        self.children.append(Child("front", ["front", "--upstream", web_bind], base))
        self.children.append(Child("web", ["web"], {
            **base, SETTINGS["web_bind"].env: web_bind,
            SETTINGS["proxy_hops"].env: str(self.config.proxy_hops + 1)}, metrics_port=self.config.port))
        for i in range(self.workers):
            self.children.append(self._worker("predict", i + 1, base))
        self.children.append(self._worker("retrain", 1, base))
        for child in self.children:
            child.start()
        log.info("Redis at %s", url)
        log.info("Prometheus targets: %s", ", ".join(f"127.0.0.1:{c.metrics_port}" for c in self.children
                                                     if c.metrics_port))

    def _worker(self, kind: str, index: int, base: dict) -> Child:
        port = free_port()
        env = {**base, SETTINGS["metrics_port"].env: str(port)}
        return Child(f"{kind}-{index}", ["worker", kind], env, metrics_port=port)

    def _wait_ready(self) -> None:
        url = f"http://{self.config.host}:{self.config.port}/readyz"
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.stopping.is_set() and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        log.info("ready: open http://%s:%d/ (metrics at /metrics)",
                                 self.config.host, self.config.port)
                        return
            except OSError:
                pass
            self._restart_dead()
            time.sleep(0.5)
        if not self.stopping.is_set():
            log.warning("not ready after %.0fs; see the logs above (%s)", READY_TIMEOUT_S, url)

    def _restart_dead(self) -> None:
        for child in self.children:
            code = child.process.poll()
            if code is None or self.stopping.is_set():
                continue
            if time.monotonic() - child.started_at < RESTART_PAUSE_S:
                continue
            child.restarts += 1
            log.warning("%s exited with %s; restarting (restart %d)", child.role, code, child.restarts)
            child.start()

    def _stop_all(self) -> None:
        log.info("stopping %d processes", len(self.children))
        for child in self.children:
            if child.process and child.process.poll() is None:
                child.process.terminate()
        deadline = time.monotonic() + STOP_GRACE_S
        for child in self.children:
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", child.role)
                child.process.kill()
                child.process.wait()
        if self.redis:
            self.redis.stop()
        log.info("all stopped")
