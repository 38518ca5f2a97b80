"""Batch benchmark: a 10,000-image batch through the stack vs. the in-process floor.

    .venv/bin/python -m benchmarks.batch [--images 10000] [--probes 200]

Prints, from one run: the in-process vectorised floor (decode + preprocess +
one predict_proba per chunk, one core), batch throughput through
POST /api/batches with 1 and 2 predict workers, and the interactive
POST /api/predict round trip (p50/p99) when idle and while a batch runs.
"""
from __future__ import annotations

import argparse
import threading
import time

import requests

from benchmarks.serving import Client, percentile
from benchmarks.stack import BenchStack
from shared.config import Config
from shared.images.upload import ImageLimits
from shared.model.inference import predict_images
from shared.model.store import ModelRegistry
from testkit.drawings import digit_png

LIMITS = ImageLimits(4 << 20, 1 << 24, 8192)
CHUNK = Config.from_env({}).batch_chunk_size


def images(n: int) -> list[bytes]:
    base = [digit_png(d) for d in range(10)]
    return [base[i % 10] for i in range(n)]


def floor_rate(model_dir, imgs) -> float:
    model = ModelRegistry(model_dir).load_production()
    predict_images(model, imgs[:CHUNK], LIMITS)
    t0 = time.perf_counter()
    for start in range(0, len(imgs), CHUNK):
        predict_images(model, imgs[start:start + CHUNK], LIMITS)
    return len(imgs) / (time.perf_counter() - t0)


def run_batch(url: str, imgs: list[bytes]) -> tuple[float, dict]:
    files = [("file", (f"{i}.png", png, "image/png")) for i, png in enumerate(imgs)]
    t0 = time.perf_counter()
    res = requests.post(url + "/api/batches", files=files, timeout=600)
    res.raise_for_status()
    status_url = url + res.json()["status_url"]
    while True:
        body = requests.get(status_url, timeout=60).json()
        if body["state"] == "finished":
            return time.perf_counter() - t0, body
        time.sleep(0.05)


def probe(port: int, n: int, stop: threading.Event | None = None, pause: float = 0.02) -> list[float]:
    client, png, times = Client(port), digit_png(7), []
    for _ in range(n):
        if stop is not None and stop.is_set():
            break
        t0 = time.perf_counter()
        client.predict(png)
        times.append((time.perf_counter() - t0) * 1000)
        time.sleep(pause)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--probes", type=int, default=200)
    args = parser.parse_args()
    imgs = images(args.images)
    stack = BenchStack()
    try:
        floor = floor_rate(stack.model_dir, imgs)
        print(f"in-process vectorised floor: {floor:.0f} images/s (one core, chunks of {CHUNK})")
        stack.start_web()
        rates = {}
        for workers in (1, 2):
            stack.set_workers(workers)
            seconds, body = run_batch(stack.url, imgs)
            errors = sum("error" in r for r in body["results"])
            rates[workers] = args.images / seconds
            print(f"{args.images}-image batch, {workers} worker(s): {seconds:.1f}s = {rates[workers]:.0f} images/s "
                  f"({rates[workers] / floor:.0%} of floor), {errors} errors")
        print(f"2 workers / 1 worker: {rates[2] / rates[1]:.2f}x")

        stack.set_workers(2)
        idle = probe(stack.port, args.probes)
        print(f"interactive idle: p50 {percentile(idle, 50):.2f} ms  p99 {percentile(idle, 99):.2f} ms")
        stop, during = threading.Event(), []
        prober = threading.Thread(target=lambda: during.extend(probe(stack.port, 100_000, stop)))
        batch = threading.Thread(target=lambda: (run_batch(stack.url, imgs), stop.set()))
        batch.start()
        time.sleep(1.0)  # let the upload finish and chunks start flowing
        prober.start()
        batch.join()
        stop.set()
        prober.join()
        print(f"interactive during the batch ({len(during)} probes): p50 {percentile(during, 50):.2f} ms  "
              f"p99 {percentile(during, 99):.2f} ms  ({percentile(during, 99) / percentile(idle, 99):.1f}x idle p99)")
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
