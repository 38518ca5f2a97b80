"""Issue 17's first attack, replayed: one address queues the costliest images it may, at 9.5 a second.

    .venv/bin/python -m benchmarks.attack [--seconds 30] [--workers 2]

The review sent an 82 KB transparent 4096x4096 PNG with ``?wait=0`` at
9.5 requests/s (under the 600-a-minute limit) to a stack of 2 predict
workers: the queue reached 178 and a legitimate user's p50 was 5.0 s. Here,
against a private stack (redis-server, web, ``--workers`` predict workers):

1. the same 4096x4096 PNG, once: its status (refused before queueing);
2. a legitimate client drawing every 100 ms alone, ``--seconds``: p50/p99;
3. the same client while an attacker sends the costliest image admitted
   (a drawing enlarged to 1024x1024, PNG: ~14 ms to decode) with
   ``?wait=0`` at 9.5/s: p50/p99 and the ratio to 2, the attacker's
   statuses, and the longest predict queue seen.
Target (issue 17): the legitimate p99 under 50 ms during the attack.
"""
from __future__ import annotations

import argparse
import http.client
import threading
import time

import redis

from benchmarks.decode_cost import blank_png, enlarged
from benchmarks.serving import Client, percentile
from benchmarks.stack import BenchStack
from shared.messaging import queue_state
from testkit.drawings import digit_png

RATE = 9.5


def post_nowait(port: int, png: bytes) -> int:
    boundary = "swagattack"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + png + f"\r\n--{boundary}--\r\n".encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/api/predict?wait=0", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    status = conn.getresponse().status
    conn.close()
    return status


def legitimate(port: int, seconds: float) -> list[float]:
    client, images, times = Client(port), [digit_png(d) for d in range(10)], []
    stop_at = time.monotonic() + seconds
    i = 0
    while time.monotonic() < stop_at:
        t0 = time.perf_counter()
        client.predict(images[i % 10])
        times.append((time.perf_counter() - t0) * 1000)
        i += 1
        time.sleep(max(0.0, 0.1 - (time.perf_counter() - t0)))
    return times


def attacker(port: int, png: bytes, stop: threading.Event, statuses: dict) -> None:
    next_at = time.monotonic()
    while not stop.is_set():
        status = post_nowait(port, png)
        statuses[status] = statuses.get(status, 0) + 1
        next_at += 1 / RATE
        time.sleep(max(0.0, next_at - time.monotonic()))


def queue_watch(redis_url: str, stop: threading.Event, seen: list[int]) -> None:
    conn = redis.Redis.from_url(redis_url)
    while not stop.is_set():
        seen.append(queue_state.read(conn, 1).streams["predict"].depth)
        time.sleep(0.25)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    heavy = enlarged(digit_png(8), 1024, "PNG")
    stack = BenchStack()
    try:
        stack.start_web()
        stack.set_workers(args.workers)
        print(f"the review's 4096x4096 transparent PNG ({len(blank_png(4096))} bytes): "
              f"HTTP {post_nowait(stack.port, blank_png(4096))}")
        legitimate(stack.port, 3)   # warm-up
        alone = legitimate(stack.port, args.seconds)
        stop, statuses, depths = threading.Event(), {}, []
        threads = [threading.Thread(target=attacker, args=(stack.port, heavy, stop, statuses)),
                   threading.Thread(target=queue_watch, args=(stack.redis.url, stop, depths))]
        for t in threads:
            t.start()
        attacked = legitimate(stack.port, args.seconds)
        stop.set()
        for t in threads:
            t.join()
        p50a, p99a = percentile(alone, 50), percentile(alone, 99)
        p50b, p99b = percentile(attacked, 50), percentile(attacked, 99)
        print(f"legitimate alone:          {len(alone)} drawings, p50 {p50a:.1f} ms, p99 {p99a:.1f} ms")
        print(f"legitimate under attack:   {len(attacked)} drawings, p50 {p50b:.1f} ms, p99 {p99b:.1f} ms "
              f"(p99 {p99b / p99a:.2f}x; target under 50 ms)")
        print(f"attacker: {len(heavy)}-byte 1024x1024 PNGs at {RATE}/s with ?wait=0, statuses {statuses}; "
              f"longest predict queue seen {max(depths, default=0)}")
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
