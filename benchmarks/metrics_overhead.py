"""What the predict worker's metrics cost per group of drawings, and what a /metrics scrape costs.

    .venv/bin/python benchmarks/metrics_overhead.py [--redis-url URL]

Prints microseconds per ``PredictMetrics.observe_batch`` call for groups of
1, 8 and 64 drawings (the worker calls it once per group, after answering),
and milliseconds per scrape of the Redis state collector (one pipelined round
trip; starts a private redis-server unless --redis-url is given).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from shared import metrics  # noqa: E402
from shared.messaging import protocol as p  # noqa: E402
from shared.messaging.predict_queue import PredictQueue  # noqa: E402
from swagdigits.embedded_redis import EmbeddedRedis  # noqa: E402
from web.metrics import QueueStateCollector  # noqa: E402


def bench_observe(group: int, rounds: int = 2000) -> float:
    m = metrics.PredictMetrics.build(CollectorRegistry())
    now = time.time()
    enqueued = [now - 0.002] * group
    digits = [i % 10 for i in range(group)]
    conf = [0.9] * group
    t0 = time.perf_counter()
    for _ in range(rounds):
        m.observe_batch(now, 0.003, now + 0.004, enqueued, digits, conf, {"bad_image": 0, "worker_died": 0})
    return (time.perf_counter() - t0) / rounds * 1e6


def bench_scrape(url: str, rounds: int = 300) -> list[float]:
    conn = redis.Redis.from_url(url)
    queue = PredictQueue(conn)
    for _ in range(20):
        queue.submit(b"x" * 2000, limit=10_000)
    registry = CollectorRegistry()
    registry.register(QueueStateCollector(conn, heartbeat_s=5))
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        metrics.render(registry)
        times.append((time.perf_counter() - t0) * 1000)
    conn.delete(*p.STREAMS.values())
    return times


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis-url")
    args = parser.parse_args()
    for group in (1, 8, 64):
        print(f"observe_batch, group of {group:2d}: {bench_observe(group):7.1f} us per call")
    server = None
    url = args.redis_url
    if not url:
        server = EmbeddedRedis(Path(tempfile.mkdtemp()), persistent=False).start()
        url = server.url
    try:
        times = sorted(bench_scrape(url))
        print(f"Redis state scrape: p50 {statistics.median(times):.2f} ms, "
              f"p99 {times[int(len(times) * 0.99)]:.2f} ms")
    finally:
        if server:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
