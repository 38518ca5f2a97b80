"""Web memory under hostile batches: several maximal batch bodies sent at once to one web process.

    .venv/bin/python -m benchmarks.batch_memory [--batches 4] [--mb 0 (= SWAGDIGITS_BATCH_MAX_BYTES)]

Starts a private redis-server and one web process (no predict worker: the
batches only need to be read and queued), then sends ``--batches`` JSON
batches at once, each as large as the web tier accepts, of valid images (a
drawing padded with trailing bytes, so every byte is kept and queued: the
worst case for memory). Prints the web process's resident memory before and
its peak (VmHWM) after, and what each request got. Issue 17's target: under
300 MB with 4 such batches in flight.
"""
from __future__ import annotations

import argparse
import base64
import json
import threading
import time

import requests

from benchmarks.stack import BenchStack
from shared.config import Config
from testkit.drawings import digit_png


def _kib(pid: int, field: str) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _serving_pid(arbiter: int) -> int:
    """gunicorn's one worker process (the one that reads requests), a child of the process we started."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = open(f"/proc/{arbiter}/task/{arbiter}/children").read().split()
        if children:
            return int(children[0])
        time.sleep(0.2)
    return arbiter


def hostile_body(total_bytes: int, max_images: int) -> bytes:
    """A JSON batch of ``total_bytes`` or just under: valid PNGs padded so the body is as large as allowed."""
    per_image = max(1024, total_bytes // max_images)
    png = digit_png(7)
    raw = png + b"\0" * max(0, (per_image - 64) * 3 // 4 - len(png))
    item = "data:image/png;base64," + base64.b64encode(raw).decode()
    n = min(max_images, (total_bytes - 64) // (len(item) + 4))   # quotes, comma and space each
    return json.dumps({"images": [item] * n}).encode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--mb", type=float, default=0, help="body size in MB (0: the configured maximum)")
    args = parser.parse_args()
    config = Config.from_env({})
    size = int(args.mb * 1024 * 1024) if args.mb else config.batch_max_bytes
    body = hostile_body(size, config.batch_max_images)
    stack = BenchStack()
    try:
        stack.start_web()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(stack.url + "/healthz", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        pid = _serving_pid(stack.web.pid)
        before = _kib(pid, "VmRSS")
        answers: list[str] = []

        def send() -> None:
            try:
                res = requests.post(stack.url + "/api/batches", data=body, timeout=300,
                                    headers={"Content-Type": "application/json"})
                answers.append(f"{res.status_code} {res.json().get('size', res.json().get('error', ''))}")
            except requests.RequestException as exc:
                answers.append(f"failed: {exc}")

        threads = [threading.Thread(target=send) for _ in range(args.batches)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.perf_counter() - t0
        peak, after = _kib(pid, "VmHWM"), _kib(pid, "VmRSS")
        print(f"{args.batches} batches of {len(body) / 2**20:.1f} MB at once, {took:.1f} s")
        print(f"  answers: {sorted(answers)}")
        print(f"  web RSS before {before / 1024:.0f} MB, peak {peak / 1024:.0f} MB, after {after / 1024:.0f} MB")
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
