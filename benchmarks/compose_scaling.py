"""Compose on one machine: time to ready, then predictions per second with 1, 2 and 3 worker containers.

    .venv/bin/python -m benchmarks.compose_scaling [--workers 1,2,3] [--seconds 30] [--clients 8]

Needs a Docker engine and the images (`deploy/offline-images.sh`, then
`docker-compose -f docker-compose.yaml -f deploy/offline.yaml build web`;
where a registry is reachable, drop the override). Starts its own compose
project on a fresh volume set with the default model family, ports published
on 127.0.0.1 only, and removes everything afterwards (`down -v`).

Prints the time from `up -d` to `/readyz` ready (the first predict worker
trains the first model: no model is shipped), then, for each worker count,
closed-loop clients posting drawings to `POST /api/predict` through the
nginx proxy: answers per second and p50/p99 round trip. The clients run on
the same 2 cores as the stack, as a user on this machine would.
"""
from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import threading
import time
from pathlib import Path

import requests

from benchmarks.serving import Client, drawings, percentile

ROOT = Path(__file__).resolve().parent.parent
FILES = ["-f", "docker-compose.yaml", "-f", "deploy/offline.yaml"]


class Project:
    def __init__(self, name: str, env: dict[str, str]):
        self.name, self.env = name, env

    def __call__(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run(["docker-compose", "-p", self.name, *FILES, *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"docker-compose {' '.join(args)}: {done.stderr[-2000:]}")
        return done.stdout

    def scale(self, workers: int) -> None:
        self("up", "-d", "--no-build", "--no-recreate", "--scale", f"predict-worker={workers}")


def wait_ready(url: str, workers: int, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            body = requests.get(url + "/readyz", timeout=2).json()
            if body.get("ready") and body.get("predict_workers") == workers:
                return time.monotonic() - start
        except (requests.RequestException, ValueError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"not ready with {workers} workers after {timeout:.0f} s")


def load(port: int, clients: int, seconds: float) -> tuple[float, list[float], int]:
    """Closed-loop clients for ``seconds``: answers per second, round trips, errors."""
    images = drawings(50)
    times: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(offset: int) -> None:
        http = Client(port)
        mine, i = [], offset
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            try:
                http.predict(images[i % len(images)])
                mine.append(time.perf_counter() - t0)
            except (RuntimeError, OSError):
                with lock:
                    errors[0] += 1
                http = Client(port)
            i += 1
        with lock:
            times.extend(mine)

    threads = [threading.Thread(target=client, args=(k * 7,)) for k in range(clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(times) / (time.monotonic() - start), times, errors[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    env = {**os.environ, "SWAGDIGITS_BIND_ADDR": "127.0.0.1", "SWAGDIGITS_WEB_PORT": "",
           "PROMETHEUS_PORT": "", "GRAFANA_PORT": "", "SWAGDIGITS_REDIS_PASSWORD": secrets.token_hex(16),
           "SWAGDIGITS_RATE_LIMIT_PREDICT": "0"}   # every client here is one address
    project = Project(f"swagbench{secrets.token_hex(3)}", env)
    try:
        started = time.monotonic()
        project("up", "-d", "--no-build", "--scale", f"predict-worker={counts[0]}")
        address = project("port", "proxy", "8080").strip()
        port = int(address.rsplit(":", 1)[1])
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, counts[0], timeout=900)
        print(f"up -d to ready (fresh volumes, first model trained by a worker): "
              f"{time.monotonic() - started:.1f} s")
        load(port, 2, 5)   # warm-up: connections, the web's first requests
        for n in counts:
            project.scale(n)
            took = wait_ready(url, n, timeout=300)
            rate, times, errors = load(port, args.clients, args.seconds)
            print(f"{n} predict worker container(s) (ready in {took:.1f} s): {rate:.0f} predictions/s, "
                  f"p50 {percentile(times, 50) * 1000:.1f} ms, p99 {percentile(times, 99) * 1000:.1f} ms, "
                  f"{errors} errors ({args.clients} closed-loop clients, {args.seconds:.0f} s)")
    finally:
        project("down", "-v", "--remove-orphans", "--timeout", "10")


if __name__ == "__main__":
    main()
