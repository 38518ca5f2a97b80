"""Shadow benchmark: what scoring live drawings with a shadow model costs interactive latency.

    .venv/bin/python -m benchmarks.shadow [--clients 4] [--seconds 15] [--rounds 3] [--share 1.0]

One predict worker, ``--clients`` keep-alive clients posting drawings as fast
as they are answered (the worker is saturated: the hardest case, since a
shadow's work then delays the next group). Rounds alternate without and with
a shadow (a copy of the production model, so it costs exactly what production
costs; ``--share`` of the drawings), so slow drift of the machine's load hits
both sides alike. Prints p50/p99 and throughput of each side and the p99
ratio with/without, from one run. ``SWAGDIGITS_SHADOW_MAX_CPU`` (0.5 by
default) caps the shadow's CPU at half of production's.
"""
from __future__ import annotations

import argparse
import threading
import time

import redis

from benchmarks.serving import Client, drawings, percentile
from benchmarks.stack import BenchStack
from shared.messaging import shadows
from shared.model.store import ModelRegistry


def load(port: int, images: list[bytes], clients: int, seconds: float) -> list[float]:
    """Latencies (ms) of every request ``clients`` closed-loop clients made in ``seconds``."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    stop = time.monotonic() + seconds

    def run(k: int) -> None:
        client, i = Client(port), k
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            client.predict(images[i % len(images)])
            latencies[k].append((time.perf_counter() - t0) * 1000)
            i += 1

    threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [x for per_client in latencies for x in per_client]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--share", type=float, default=1.0)
    args = parser.parse_args()

    stack = BenchStack()
    try:
        registry = ModelRegistry(stack.model_dir)
        production = registry.production_id()
        copy = registry.publish(registry.load_trained(production), {"source": "shadow benchmark copy"})
        conn = redis.Redis.from_url(stack.redis.url)
        stack.start_web()
        stack.set_workers(1)
        images = drawings(10)
        load(stack.port, images, args.clients, 3.0)    # warm-up
        without, with_shadow = [], []
        for _ in range(args.rounds):
            shadows.stop(conn, copy)
            time.sleep(0.5)
            without += load(stack.port, images, args.clients, args.seconds)
            shadows.start(conn, copy, args.share)
            time.sleep(0.5)
            with_shadow += load(stack.port, images, args.clients, args.seconds)
        seen = shadows.stats(conn, copy)["seen"]
        total = args.rounds * args.seconds
        for name, lat in (("without shadow", without), (f"with shadow (share {args.share:g})", with_shadow)):
            print(f"{name}: {len(lat) / total:.0f} drawings/s, p50 {percentile(lat, 50):.2f} ms, "
                  f"p99 {percentile(lat, 99):.2f} ms")
        print(f"shadow scored {seen} of {len(with_shadow)} drawings ({seen / max(1, len(with_shadow)):.0%})")
        print(f"p99 with/without: {percentile(with_shadow, 99) / percentile(without, 99):.2f}x; "
              f"p50 {percentile(with_shadow, 50) / percentile(without, 50):.2f}x")
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
