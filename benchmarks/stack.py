"""Start a private stack (redis-server, predict workers, web) for a benchmark run."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from shared.config import Config
from shared.model.store import ModelRegistry
from shared.model.training.publishing import train_initial
from swagdigits.embedded_redis import EmbeddedRedis, free_port


class BenchStack:
    def __init__(self, model_dir: Path | None = None, rate_limits: bool = False, persistent_redis: bool = False):
        """``rate_limits=False``: every simulated client shares 127.0.0.1, so per-address limits are off.

        ``persistent_redis``: an append-only file, so a Redis stopped and started again keeps its data.
        """
        self.tmp = Path(tempfile.mkdtemp(prefix="swagdigits-bench-"))
        self.redis = EmbeddedRedis(self.tmp / "redis", persistent=persistent_redis).start()
        self.model_dir = model_dir or self.tmp / "models"
        registry = ModelRegistry(self.model_dir)
        if registry.production_id(missing_ok=True) is None:
            train_initial(registry, source="benchmark")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = Config.from_env({}, redis_url=self.redis.url, data_dir=self.tmp,
                                      model_dir=self.model_dir, port=self.port, queue_limit=100_000)
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("SWAGDIGITS_")},
                    **self.config.as_env(),
                    **({} if rate_limits else {"SWAGDIGITS_RATE_LIMIT_PREDICT": "0",
                                               "SWAGDIGITS_RATE_LIMIT_HELP": "0"}),
                    "SWAGDIGITS_WORKER_HEARTBEAT": "1", "SWAGDIGITS_LOG_LEVEL": "WARNING"}
        self.web = None
        self.workers: list[subprocess.Popen] = []

    def _spawn(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "swagdigits", *args], env=self.env,
                                stdout=subprocess.DEVNULL, stderr=open(self.tmp / f"{args[-1]}.log", "ab"))

    def start_web(self) -> None:
        self.web = self._spawn("web")

    def set_workers(self, n: int) -> None:
        while len(self.workers) < n:
            self.workers.append(self._spawn("worker", "predict"))
        while len(self.workers) > n:
            proc = self.workers.pop()
            proc.terminate()
            proc.wait()
        self.wait_ready(n)

    def wait_ready(self, workers: int, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                body = requests.get(self.url + "/readyz", timeout=1).json()
                if body["ready"] and body["predict_workers"] == workers:
                    return
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"stack not ready; logs in {self.tmp}")

    def stop(self) -> None:
        for proc in [*self.workers, self.web]:
            if proc and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=15)
        self.redis.stop()
