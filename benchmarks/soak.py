"""Soak: a steady mix of predictions, help data and batches against a private stack.

    .venv/bin/python -m benchmarks.soak [--minutes 10] [--rate 8] [--workers 2] [--faults]

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

``--faults`` (issue 15's 30-minute soak): a Socket.IO page drawing too (an
answer whose push is lost is fetched from /api/jobs/{id}, as the page does,
and counted in ``socket_answers_fetched``), one
predict worker killed (SIGKILL) a third of the way in and started again 2 s
later, as ``swagdigits up`` would, and Redis (append-only file) stopped and
started again two thirds of the way in. Then a 429, 503 or 504 with a JSON
error is a clear refusal, not a failure; help images refused are sent again
until stored; and the run also checks that every help image the service
accepted is in the help store (per label), that every finished batch has each
of its items exactly once, and that no process that lived through the run,
measured from its first minute, grew more than 10%.
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import logging
import random
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import redis
import requests
import socketio
from PIL import Image

from benchmarks.stack import BenchStack
from shared.help_store import HelpStore
from shared.server_secrets import ServerSecrets
from shared.messaging import protocol as p
from testkit.drawings import digit_png

log = logging.getLogger("benchmarks.soak")

MAX_GROWTH = 0.20
REFUSED_BY_DESIGN = {429}        # per-address rate limits; a 503 (queue full, Redis down) is a failure
MAX_REFUSED_SHARE = 0.05         # of one kind's requests: the mix is paced to stay inside the limits
MAX_GROWTH_WITH_FAULTS = 0.10    # issue 15: RSS growth over the 30-minute soak
CLEAR_REFUSALS = {429, 503, 504}  # with faults: Redis away, a worker gone; each answered in JSON
SETTLE_S = 60.0                  # a process's RSS is measured from this long after it started
PUSH_WAIT_S = 5.0                # a socket answer not pushed by then is fetched, as the page does
FETCH_WAIT_S = 10.0              # ... for this long


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
                 max_requests: int, seed: int = 8, faults: bool = False, socket_rate: float = 2.0):
        self.stack, self.url = stack, stack.url
        self.faults, self.socket_rate = faults, socket_rate
        self.refused_ok = REFUSED_BY_DESIGN | (CLEAR_REFUSALS if faults else set())
        self.help_accepted: Counter = Counter()     # label -> images the service said it stored
        self.batch_items = {"checked": 0, "lost": 0, "duplicated": 0}
        self.events: list[str] = []
        self.fetched_answers = 0                    # socket answers whose push was lost, fetched instead
        self.refusals: Counter = Counter()          # "kind status" -> refusals
        self._unsent_help: tuple[int, str] | None = None   # (label, base64) refused, to send again
        self.refusal_examples: dict[str, str] = {}  # "kind status" -> the first refusal's answer
        self.t0 = time.monotonic()                  # the measured run's start (set again after warm-up)
        self.rss_samples: dict[int, list[tuple[float, str, float]]] = {}   # pid -> (time, name, MB)
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
        outcome = "ok" if status in ok else "refused" if self._clear_refusal(status, detail) else "failed"
        with self.lock:
            self.outcomes[(kind, outcome)] += 1
            if outcome == "refused":
                self.refusals[f"{kind} {status}"] += 1
                self.refusal_examples.setdefault(f"{kind} {status}", detail[:200])
            if outcome == "failed" and len(self.failures) < 20:
                self.failures.append(f"{time.monotonic() - self.t0:.0f}s {kind}: {status} {detail[:200]}")

    def _clear_refusal(self, status: int, detail: str) -> bool:
        if status not in self.refused_ok:
            return False
        try:
            return bool(json.loads(detail).get("error"))
        except (ValueError, AttributeError):
            return False

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
        """One distinct labelled image; with faults, one refused is sent again until stored."""
        if self._unsent_help is None:
            digit = self.rng.randrange(10)
            self._unsent_help = (digit, base64.b64encode(distinct_drawing(digit, self.rng)).decode())
        digit, image = self._unsent_help
        try:
            res = session.post(self.url + "/helpdata", json={"image": image, "label": digit}, timeout=15)
            self._record("help", res.status_code, {200, 201}, res.text)
            if res.status_code in (200, 201):
                with self.lock:
                    self.help_accepted[digit] += 1
            if res.status_code in (200, 201) or not self.faults:
                self._unsent_help = None
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
                    res = session.get(status_url, timeout=15)
                    if res.status_code != 200:                 # Redis away: ask again
                        self._record("batch_status", res.status_code, {200}, res.text)
                        self.stop.wait(0.5)
                        continue
                    body = res.json()
                    if body["state"] == p.FINISHED:
                        self._check_items(body["results"])
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

    def _check_items(self, results: list[dict]) -> None:
        """Each of the batch's items exactly once: none lost, none answered twice."""
        seen = Counter(r.get("index") for r in results)
        with self.lock:
            self.batch_items["checked"] += self.batch_size
            self.batch_items["lost"] += sum(1 for i in range(self.batch_size) if seen[i] == 0)
            self.batch_items["duplicated"] += sum(n - 1 for n in seen.values() if n > 1)

    def sockets(self) -> None:
        """A page's Socket.IO client: a drawing every 1/socket_rate s, each answer waited for."""
        answers: dict[str, threading.Event] = {}
        session = requests.Session()
        sio = socketio.Client(reconnection=True, reconnection_delay=0.5, reconnection_delay_max=2)
        for event in (p.EVENT_PREDICTION, p.EVENT_PREDICTION_ERROR):
            sio.on(event, lambda data: answers.setdefault(data.get("job_id"), threading.Event()).set())
        image = "data:image/png;base64," + base64.b64encode(self.drawings[5]).decode()
        next_at = time.monotonic()
        while self._budget():
            self.stop.wait(max(0.0, next_at - time.monotonic()))
            next_at = time.monotonic() + 1.0 / self.socket_rate
            try:
                if not sio.connected:
                    sio.connect(self.url, transports=["websocket"], wait_timeout=10)
                ack = sio.call(p.EVENT_PREDICT, {"image": image, "seq": 1}, timeout=15)
            except (socketio.exceptions.ConnectionError, socketio.exceptions.TimeoutError) as exc:
                self._record("socket_predict", 0, set(), repr(exc))
                continue
            if "job_id" not in ack:
                self._record("socket_predict", int(ack.get("status", 0)), set(), json.dumps(ack))
                continue
            done = answers.setdefault(ack["job_id"], threading.Event())
            if done.wait(PUSH_WAIT_S):
                self._record("socket_predict", 200, {200})
            else:
                self._record("socket_predict", *self._fetch_answer(session, ack["job_id"]))
            answers.pop(ack["job_id"], None)
        sio.disconnect()

    def _fetch_answer(self, session: requests.Session, job_id: str) -> tuple[int, set[int], str]:
        """What the page does when a pushed answer does not come (``pollLater`` in static/app.js):
        ask GET /api/jobs/{id}, where the worker stores every answer. A push can be lost by
        design: Redis pub/sub drops what is published while the web's subscriber reconnects."""
        deadline = time.monotonic() + FETCH_WAIT_S
        detail = "no answer pushed or stored"
        while time.monotonic() < deadline:
            try:
                res = session.get(f"{self.url}/api/jobs/{job_id}", timeout=5)
                body = res.json()
            except (requests.RequestException, ValueError) as exc:
                detail = repr(exc)
            else:
                if body.get("result"):
                    with self.lock:
                        self.fetched_answers += 1
                    return 200, {200}, ""
                if res.status_code == 404 or body.get("state") == "failed":
                    return res.status_code, set(), json.dumps(body)[:200]
                detail = json.dumps(body)[:200]
            time.sleep(0.5)
        return 0, set(), f"no answer pushed in {PUSH_WAIT_S:.0f} s nor stored within {FETCH_WAIT_S:.0f} s: {detail}"

    def inject_faults(self, seconds: float) -> None:
        """A predict worker killed at a third of the run (started again 2 s later), Redis restarted at two."""
        t0 = self.t0
        if self.stop.wait(seconds / 3):
            return
        victim = self.stack.workers[0]
        victim.kill()
        victim.wait()
        self.events.append(f"{time.monotonic() - t0:.0f}s: predict worker pid {victim.pid} killed (SIGKILL)")
        self.stop.wait(2.0)
        self.stack.workers[0] = self.stack._spawn("worker", "predict")
        self.events.append(f"{time.monotonic() - t0:.0f}s: a new predict worker started")
        if self.stop.wait(max(0.0, t0 + 2 * seconds / 3 - time.monotonic())):
            return
        self.stack.redis.stop()
        self.events.append(f"{time.monotonic() - t0:.0f}s: Redis stopped")
        self.stop.wait(3.0)
        self.stack.redis.start()
        self.events.append(f"{time.monotonic() - t0:.0f}s: Redis started again (same port, append-only file)")
        # redis-server dies with the thread that started it (PR_SET_PDEATHSIG, as under `up`):
        # this thread lives until the run ends.
        self.stop.wait()

    # -- observation -----------------------------------------------------------
    def processes(self) -> dict[str, psutil.Process]:
        procs = {"web": psutil.Process(self.stack.web.pid)}
        for i, w in enumerate(self.stack.workers):
            try:
                procs[f"worker-{i}"] = psutil.Process(w.pid)
            except psutil.NoSuchProcess:      # killed on purpose a moment ago
                pass
        return procs

    def rss_mb(self) -> dict[str, float]:
        out = {}
        for name, proc in self.processes().items():
            out[name] = sum(q.memory_info().rss for q in [proc, *proc.children(recursive=True)]) / 2**20
        return out

    def watch_queues(self, conn: redis.Redis) -> None:
        while not self.stop.wait(0.5):
            try:
                depth = int(conn.xlen(p.PREDICT_STREAM)) + int(conn.xlen(p.BATCH_STREAM))
            except redis.RedisError:                  # stopped on purpose (--faults)
                continue
            self.max_depth = max(self.max_depth, depth)

    def sample_rss(self) -> None:
        """Every process's RSS every 10 s, by pid: a restarted worker is a new series."""
        try:
            self._sample_rss()
        except Exception:
            log.exception("RSS sampling failed")

    def _sample_rss(self) -> None:
        while True:
            now = time.monotonic()
            for name, proc in self.processes().items():
                try:
                    mb = sum(q.memory_info().rss for q in [proc, *proc.children(recursive=True)]) / 2**20
                except psutil.NoSuchProcess:
                    continue
                self.rss_samples.setdefault(proc.pid, []).append((now, name, mb))
            if self.stop.wait(10.0):
                return

    def settled_growth(self, started: float) -> dict[str, dict]:
        """Per process: RSS from its first minute (or the run's start) to the last sample."""
        out = {}
        for pid, samples in self.rss_samples.items():
            first_t = samples[0][0]
            born_during_run = first_t > started + 5.0          # a worker started again by the faults
            settled = [s for s in samples if s[0] >= first_t + (SETTLE_S if born_during_run else 0.0)]
            if len(settled) < 2:
                continue
            name = f"{settled[0][1]} (pid {pid})"
            out[name] = {"mb_from": round(settled[0][2], 1), "mb_to": round(settled[-1][2], 1),
                         "growth": round(settled[-1][2] / settled[0][2] - 1, 4),
                         "minutes": round((settled[-1][0] - settled[0][0]) / 60, 1)}
        return out

    # -- run ---------------------------------------------------------------------
    def run(self, seconds: float, warmup: float) -> dict:
        conn = redis.Redis.from_url(self.stack.redis.url)
        threads = [threading.Thread(target=self._paced, args=(1.0 / self.rate, self.predict), daemon=True),
                   threading.Thread(target=self._paced, args=(self.help_every, self.help), daemon=True),
                   threading.Thread(target=self.batches, daemon=True),
                   threading.Thread(target=self.watch_queues, args=(conn,), daemon=True)]
        if self.faults:
            threads.append(threading.Thread(target=self.sockets, daemon=True))
        for t in threads:
            t.start()
        time.sleep(warmup)
        with self.lock:   # measure from here: warm-up requests are not counted
            self.outcomes.clear()
            self.failures.clear()
            self.refusals.clear()
            self.max_depth = 0
            self.t0 = t0 = time.monotonic()
        watchers = [threading.Thread(target=self.sample_rss, daemon=True)]
        if self.faults:
            watchers.append(threading.Thread(target=self.inject_faults, args=(seconds,), daemon=True))
        for t in watchers:
            t.start()
        while time.monotonic() - t0 < seconds and self._budget():
            time.sleep(0.5)
        elapsed = time.monotonic() - t0
        self.stop.set()
        for t in threads + watchers:
            t.join(30)
        growth = self.settled_growth(t0)
        requests_by_kind: dict = {}
        for (kind, outcome), n in sorted(self.outcomes.items()):
            requests_by_kind.setdefault(kind, {})[outcome] = n
        refused_share = {kind: round(c.get("refused", 0) / sum(c.values()), 4)
                         for kind, c in requests_by_kind.items()}
        help_store = HelpStore(self.stack.config.help_dir, secrets=ServerSecrets.from_config(self.stack.config))
        stored = Counter(e.label for e in help_store.entries())
        help_lost = sum(max(0, n - stored[label]) for label, n in self.help_accepted.items())
        max_growth = MAX_GROWTH_WITH_FAULTS if self.faults else MAX_GROWTH
        return {"seconds": round(elapsed, 1), "requests": requests_by_kind,
                "failed": sum(n for (_, o), n in self.outcomes.items() if o == "failed"),
                "refused_by_design": sum(n for (_, o), n in self.outcomes.items() if o == "refused"),
                "refused_share": refused_share, "refusals": dict(self.refusals),
                "refusal_examples": self.refusal_examples,
                "failures": self.failures, "max_queue_depth": self.max_depth, "faults": self.events,
                "socket_answers_fetched": self.fetched_answers,
                "help_accepted": sum(self.help_accepted.values()), "help_stored": sum(stored.values()),
                "help_lost": help_lost, "batch_items": dict(self.batch_items),
                "rss": growth,
                "ok": (not any(o == "failed" for (_, o) in self.outcomes)
                       and (self.faults or all(s <= MAX_REFUSED_SHARE for s in refused_share.values()))
                       and help_lost == 0 and self.batch_items["lost"] == self.batch_items["duplicated"] == 0
                       and all(g["growth"] < max_growth for g in growth.values()))}


def soak(seconds: float, rate: float = 8.0, workers: int = 2, help_every: float = 2.0,
         batch_size: int = 50, max_requests: int = 200_000, warmup: float = 10.0,
         model_dir=None, faults: bool = False) -> dict:
    # The soak checks what the limits refuse; with faults Redis restarts from its append-only file.
    stack = BenchStack(model_dir, rate_limits=True, persistent_redis=faults)
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
        return Soak(stack, rate, help_every, batch_size, max_requests, faults=faults).run(seconds, warmup)
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
    parser.add_argument("--faults", action="store_true", help="kill a predict worker, restart Redis")
    parser.add_argument("--model-dir", help="a model store to reuse (default: train one first)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    report = soak(args.minutes * 60, args.rate, args.workers, args.help_every, args.batch_size, args.max_requests,
                  faults=args.faults, model_dir=Path(args.model_dir) if args.model_dir else None)
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
