"""Soak: a steady mix of predictions, help data and batches against a private stack.

    .venv/bin/python -m benchmarks.soak [--minutes 10] [--rate 8] [--workers 2]

Starts its own stack (benchmarks.stack.BenchStack: redis-server, web, predict
workers, all on 127.0.0.1), warms it up, then for the given time keeps: HTTP
predictions at ``--rate`` per second, a distinct help image every
``--help-every`` seconds, and one batch of ``--batch-size`` images at a time
(the next submitted when the last finished). Bounded by ``--max-requests``.

Prints requests by kind and outcome, failures (anything but a success or a
refusal the rate limits make by design: 429 + Retry-After), the RSS of the web
and every worker at the start and the end, and the deepest the queues got.
A 503 is a failure here: the soak never stops Redis and stays below what the
workers can answer, so a full queue or an unreachable Redis is a fault. The
429s must stay under ``MAX_REFUSED_SHARE`` of each kind's requests.
Exit status 1 if any request failed, too many were refused, or any process
grew more than 20%.
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import random
import threading
import time
from collections import Counter

import psutil
import redis
import requests
from PIL import Image

from benchmarks.stack import BenchStack
from shared.messaging import protocol as p
from testkit.drawings import digit_png

MAX_GROWTH = 0.20
REFUSED_BY_DESIGN = {429}        # per-address rate limits; a 503 (queue full, Redis down) is a failure
MAX_REFUSED_SHARE = 0.05         # of one kind's requests: the mix is paced to stay inside the limits


def distinct_drawing(digit: int, rng: random.Random) -> bytes:
    """A drawing of ``digit`` with a few random pixels, so no two help images are the same."""
    img = Image.open(io.BytesIO(digit_png(digit))).convert("RGBA")
    for _ in range(3):
        img.putpixel((rng.randrange(img.width), rng.randrange(img.height)), (0, 0, 0, 255))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


class Soak:
    def __init__(self, stack: BenchStack, rate: float, help_every: float, batch_size: int,
                 max_requests: int, seed: int = 8):
        self.stack, self.url = stack, stack.url
        self.rate, self.help_every, self.batch_size = rate, help_every, batch_size
        self.max_requests = max_requests
        self.rng = random.Random(seed)
        self.outcomes: Counter = Counter()      # (kind, "ok" | "refused" | "failed")
        self.failures: list[str] = []
        self.max_depth = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.drawings = [digit_png(d) for d in range(10)]

    # -- clients ---------------------------------------------------------------
    def _record(self, kind: str, status: int, ok: set[int], detail: str = "") -> None:
        outcome = "ok" if status in ok else "refused" if status in REFUSED_BY_DESIGN else "failed"
        with self.lock:
            self.outcomes[(kind, outcome)] += 1
            if outcome == "failed" and len(self.failures) < 20:
                self.failures.append(f"{kind}: {status} {detail[:200]}")

    def _budget(self) -> bool:
        return not self.stop.is_set() and sum(self.outcomes.values()) < self.max_requests

    def _paced(self, interval: float, action) -> None:
        session = requests.Session()
        next_at = time.monotonic()
        while self._budget():
            action(session)
            next_at += interval
            self.stop.wait(max(0.0, next_at - time.monotonic()))

    def predict(self, session) -> None:
        digit = self.rng.randrange(10)
        try:
            res = session.post(self.url + "/api/predict", timeout=15,
                               files={"file": ("d.png", self.drawings[digit], "image/png")})
            self._record("predict", res.status_code, {200}, res.text)
        except requests.RequestException as exc:
            self._record("predict", 0, set(), repr(exc))

    def help(self, session) -> None:
        digit = self.rng.randrange(10)
        image = base64.b64encode(distinct_drawing(digit, self.rng)).decode()
        try:
            res = session.post(self.url + "/helpdata", json={"image": image, "label": digit}, timeout=15)
            self._record("help", res.status_code, {200, 201}, res.text)
        except requests.RequestException as exc:
            self._record("help", 0, set(), repr(exc))

    def batches(self) -> None:
        session = requests.Session()
        images = [base64.b64encode(self.drawings[i % 10]).decode() for i in range(self.batch_size)]
        next_at = time.monotonic()
        while self._budget():
            # Paced at one batch a second at most, like the drawings: an unpaced loop
            # submits as fast as batches finish, so the share the limits refuse would
            # measure the machine's speed, not the service.
            self.stop.wait(max(0.0, next_at - time.monotonic()))
            next_at = time.monotonic() + 1.0
            try:
                res = session.post(self.url + "/api/batches", json={"images": images}, timeout=30)
                self._record("batch_submit", res.status_code, {202}, res.text)
                if res.status_code != 202:
                    self.stop.wait(1.0)
                    continue
                status_url = self.url + res.json()["status_url"]
                deadline = time.monotonic() + 120
                while not self.stop.is_set() and time.monotonic() < deadline:
                    body = session.get(status_url, timeout=15).json()
                    if body["state"] == p.FINISHED:
                        good = sum("digit" in r for r in body["results"])
                        self._record("batch_result", 200 if good == self.batch_size else 500, {200},
                                     json.dumps(body)[:200])
                        break
                    self.stop.wait(0.5)
                else:
                    if not self.stop.is_set():
                        self._record("batch_result", 504, {200}, "batch did not finish in 120 s")
            except requests.RequestException as exc:
                self._record("batch_submit", 0, set(), repr(exc))

    # -- observation -----------------------------------------------------------
    def processes(self) -> dict[str, psutil.Process]:
        procs = {"web": psutil.Process(self.stack.web.pid)}
        procs.update({f"worker-{i}": psutil.Process(w.pid) for i, w in enumerate(self.stack.workers)})
        return procs

    def rss_mb(self) -> dict[str, float]:
        out = {}
        for name, proc in self.processes().items():
            out[name] = sum(q.memory_info().rss for q in [proc, *proc.children(recursive=True)]) / 2**20
        return out

    def watch_queues(self, conn: redis.Redis) -> None:
        while not self.stop.wait(0.5):
            depth = int(conn.xlen(p.PREDICT_STREAM)) + int(conn.xlen(p.BATCH_STREAM))
            self.max_depth = max(self.max_depth, depth)

    # -- run ---------------------------------------------------------------------
    def run(self, seconds: float, warmup: float) -> dict:
        conn = redis.Redis.from_url(self.stack.redis.url)
        threads = [threading.Thread(target=self._paced, args=(1.0 / self.rate, self.predict), daemon=True),
                   threading.Thread(target=self._paced, args=(self.help_every, self.help), daemon=True),
                   threading.Thread(target=self.batches, daemon=True),
                   threading.Thread(target=self.watch_queues, args=(conn,), daemon=True)]
        for t in threads:
            t.start()
        time.sleep(warmup)
        with self.lock:   # measure from here: warm-up requests are not counted
            self.outcomes.clear()
            self.failures.clear()
            self.max_depth = 0
        rss_start = self.rss_mb()
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds and self._budget():
            time.sleep(0.5)
        rss_end = self.rss_mb()
        elapsed = time.monotonic() - t0
        self.stop.set()
        for t in threads:
            t.join(30)
        growth = {name: rss_end[name] / rss_start[name] - 1 for name in rss_start}
        requests_by_kind: dict = {}
        for (kind, outcome), n in sorted(self.outcomes.items()):
            requests_by_kind.setdefault(kind, {})[outcome] = n
        refused_share = {kind: round(c.get("refused", 0) / sum(c.values()), 4)
                         for kind, c in requests_by_kind.items()}
        return {"seconds": round(elapsed, 1), "requests": requests_by_kind,
                "failed": sum(n for (_, o), n in self.outcomes.items() if o == "failed"),
                "refused_by_design": sum(n for (_, o), n in self.outcomes.items() if o == "refused"),
                "refused_share": refused_share,
                "failures": self.failures, "max_queue_depth": self.max_depth,
                "rss_mb_start": {k: round(v, 1) for k, v in rss_start.items()},
                "rss_mb_end": {k: round(v, 1) for k, v in rss_end.items()},
                "rss_growth": {k: round(v, 4) for k, v in growth.items()},
                "ok": (not any(o == "failed" for (_, o) in self.outcomes)
                       and all(s <= MAX_REFUSED_SHARE for s in refused_share.values())
                       and all(g < MAX_GROWTH for g in growth.values()))}


def soak(seconds: float, rate: float = 8.0, workers: int = 2, help_every: float = 2.0,
         batch_size: int = 50, max_requests: int = 200_000, warmup: float = 10.0,
         model_dir=None) -> dict:
    stack = BenchStack(model_dir, rate_limits=True)  # the soak checks what the limits refuse
    # No retrain worker here, and none wanted: help images must not queue retrainings.
    stack.env["SWAGDIGITS_RETRAIN_THRESHOLD"] = "0"
    stack.env["SWAGDIGITS_QUEUE_LIMIT"] = "1000"
    # Every simulated user shares 127.0.0.1, and a batch spends one prediction per
    # image: allow the mix itself (drawings at `rate`, about one batch a second), so
    # what the limits refuse are its bursts, as before batches were charged per image.
    # A quarter of headroom: at exactly the mean rate a fixed window refuses any jitter.
    stack.env["SWAGDIGITS_RATE_LIMIT_PREDICT"] = str(int(1.25 * 60 * (rate + batch_size)))
    try:
        stack.start_web()
        stack.set_workers(workers)
        return Soak(stack, rate, help_every, batch_size, max_requests).run(seconds, warmup)
    finally:
        stack.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=8.0, help="HTTP predictions per second")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--help-every", type=float, default=2.0, help="seconds between help images")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--max-requests", type=int, default=200_000)
    args = parser.parse_args()
    report = soak(args.minutes * 60, args.rate, args.workers, args.help_every, args.batch_size, args.max_requests)
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
