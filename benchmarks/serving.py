"""Serving benchmark: in-process floor vs. POST /api/predict through the whole stack.

    .venv/bin/python -m benchmarks.serving [--requests 500] [--seconds 10] [--clients 8]

Prints, from one run on this machine: the in-process floor (decode +
preprocess + predict of one 280x280 canvas PNG), the sequential round trip
through web -> Redis -> worker -> web with 1 worker (p50/p99), saturated
throughput with 1 and 2 workers, and idle RSS of the web and worker processes.
"""
from __future__ import annotations

import argparse
import http.client
import json
import statistics
import threading
import time

import psutil

from benchmarks.stack import BenchStack
from shared.images.upload import ImageLimits
from shared.model.inference import predict_images
from shared.model.store import ModelRegistry
from testkit.drawings import digit_png

LIMITS = ImageLimits(4 << 20, 1 << 24, 8192)


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def drawings(n: int) -> list[bytes]:
    # Vary the position a little so no two consecutive requests are identical.
    return [digit_png(i % 10) for i in range(min(n, 10))]


def floor(model_dir, images, n) -> list[float]:
    model = ModelRegistry(model_dir).load_production()
    times = []
    for i in range(n + 20):
        t0 = time.perf_counter()
        predict_images(model, [images[i % len(images)]], LIMITS)
        if i >= 20:  # warm-up
            times.append((time.perf_counter() - t0) * 1000)
    return times


class Client:
    """A keep-alive HTTP client posting multipart PNGs (cheaper per request than requests)."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def predict(self, png: bytes) -> dict:
        boundary = "swagbench"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"d.png\"\r\n"
                f"Content-Type: image/png\r\n\r\n").encode() + png + f"\r\n--{boundary}--\r\n".encode()
        self.conn.request("POST", "/api/predict", body,
                          {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        response = self.conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"{response.status}: {data[:200]!r}")
        return json.loads(data)


def sequential(port, images, n) -> list[float]:
    client = Client(port)
    for png in images:  # warm-up
        client.predict(png)
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        client.predict(images[i % len(images)])
        times.append((time.perf_counter() - t0) * 1000)
    return times


def saturate(port, images, clients: int, seconds: float) -> tuple[float, int, list[int]]:
    done, errors, batch_sizes = [0] * clients, [0] * clients, []
    stop = time.monotonic() + seconds

    def run(k):
        client = Client(port)
        i = k
        while time.monotonic() < stop:
            try:
                reply = client.predict(images[i % len(images)])
                done[k] += 1
                if k == 0:
                    batch_sizes.append(reply["timings"]["batch_size"])
            except Exception:
                errors[k] += 1
                client = Client(port)
            i += 1

    threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.monotonic() - t0), sum(errors), batch_sizes


def rss_mb(proc) -> float:
    return psutil.Process(proc.pid).memory_info().rss / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()

    stack = BenchStack()
    try:
        images = drawings(10)
        f = floor(stack.model_dir, images, args.requests)
        floor_rate = 1000 / statistics.mean(f)
        print(f"in-process floor (decode+preprocess+predict, 1 drawing): "
              f"p50 {percentile(f, 50):.2f} ms  p99 {percentile(f, 99):.2f} ms  "
              f"=> {floor_rate:.0f} drawings/s on one core")

        stack.start_web()
        stack.set_workers(1)
        time.sleep(1.0)
        web_children = psutil.Process(stack.web.pid).children()
        web_rss = max([rss_mb(stack.web)] + [rss_mb(c) for c in web_children])
        print(f"idle RSS: web {web_rss:.0f} MB (largest web process), "
              f"predict worker {rss_mb(stack.workers[0]):.0f} MB")

        s = sequential(stack.port, images, args.requests)
        p50, p99 = percentile(s, 50), percentile(s, 99)
        print(f"POST /api/predict, 1 worker, {args.requests} sequential: p50 {p50:.2f} ms "
              f"(floor + {p50 - percentile(f, 50):.2f} ms)  p99 {p99:.2f} ms")

        for workers in (1, 2):
            stack.set_workers(workers)
            rate, errors, sizes = saturate(stack.port, images, args.clients, args.seconds)
            print(f"saturated, {workers} worker(s), {args.clients} clients, {args.seconds:.0f}s: "
                  f"{rate:.0f} drawings/s ({rate / floor_rate:.0%} of the one-core floor), "
                  f"{errors} errors, mean batch {statistics.mean(sizes or [0]):.1f}")
        web_rss = max([rss_mb(stack.web)] + [rss_mb(c) for c in psutil.Process(stack.web.pid).children()])
        print(f"RSS after the load: web {web_rss:.0f} MB, predict workers "
              f"{', '.join(f'{rss_mb(w):.0f}' for w in stack.workers)} MB")
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
