"""Feedback-loop benchmark: real pen digits as help data, retraining, live swap.

    .venv/bin/python -m benchmarks.feedback_loop /work/shared/data/pendigits-train.csv \
        --mnist /work/shared/data/mnist-dev.npz

Starts a private stack (redis-server, web, 2 predict workers, retrain worker),
then:

1. accuracy of the production model on held-out pendigits rows (a later,
   disjoint block) and on MNIST-dev, through the production prediction path;
2. sends rows 0..N as help data through POST /helpdata from 20 concurrent
   clients (each row rendered as a canvas draws it; ``--renderings 2`` draws
   each row twice with different brushes to reach ~10,000 images), then
   checks every accepted image is on disk once and no partial file exists;
3. the last upload reaches the retrain threshold; while the retrain worker
   trains, one client keeps predicting: p99 idle vs during retraining, and
   failures across the swap;
4. retrain duration, time from promotion to the new version serving in every
   worker (their heartbeats, polled every 5 ms), and accuracy after.

Prints figures; asserts nothing (targets are printed next to them).
"""
from __future__ import annotations

import argparse
import base64
import itertools
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import numpy as np
import redis
import requests

from benchmarks.stack import BenchStack
from shared.messaging import heartbeat
from shared.images.upload import ImageLimits
from shared.model.inference import predict_images
from shared.model.store import ModelRegistry

TOKEN = "bench-token"
LIMITS = ImageLimits(4 << 20, 1 << 24, 8192)


def render_row(points16, brush: float) -> bytes:
    try:
        from shared.images.drawing import render_pendigits_row
    except ImportError:  # fallback: the 8 points as one round-brush polyline on a 280 canvas
        return _polyline_png(points16, brush)
    return render_pendigits_row(points16, brush=brush)


def _polyline_png(points16, brush: float, size: int = 280) -> bytes:
    import io

    from PIL import Image, ImageDraw

    pts = np.asarray(points16, dtype=float).reshape(8, 2)
    xs, ys = pts[:, 0], 100 - pts[:, 1]
    scale = size * 0.6 / max(np.ptp(xs), np.ptp(ys), 1)
    px = (xs - (xs.max() + xs.min()) / 2) * scale + size / 2
    py = (ys - (ys.max() + ys.min()) / 2) * scale + size / 2
    img = Image.new("LA", (size, size), (0, 0))
    draw = ImageDraw.Draw(img)
    line = list(zip(px, py))
    draw.line(line, fill=(17, 255), width=int(brush), joint="curve")
    for x, y in line:
        draw.ellipse((x - brush / 2, y - brush / 2, x + brush / 2, y + brush / 2), fill=(17, 255))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def accuracy(model, images: list[bytes], labels) -> float:
    right = 0
    for start in range(0, len(images), 256):
        outcomes, _ = predict_images(model, images[start:start + 256], LIMITS)
        right += sum(getattr(o, "digit", -1) == int(y) for o, y in zip(outcomes, labels[start:start + 256]))
    return right / len(images)


def mnist_images(path: str, limit: int):
    from shared.images.drawing import render_mnist

    data = np.load(path)
    images, labels = data["images"][:limit], data["labels"][:limit]
    return [render_mnist(img) for img in images], labels


def percentile(values, q):
    return float(np.percentile(values, q)) if values else float("nan")


class Prober:
    """One client predicting in a loop; latencies, failures and versions, by time."""

    def __init__(self, url: str, image: bytes):
        self.url, self.image = url, base64.b64encode(image).decode()
        self.samples: list[tuple[float, float, int, str | None]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        session = requests.Session()
        while not self.stop.is_set():
            t0 = time.perf_counter()
            try:
                res = session.post(self.url + "/api/predict", json={"image": self.image}, timeout=10)
                status, version = res.status_code, (res.json().get("model_version") if res.ok else None)
            except requests.RequestException:
                status, version = 0, None
            self.samples.append((time.time(), (time.perf_counter() - t0) * 1000, status, version))

    def latencies(self, since: float, until: float) -> list[float]:
        return [ms for t, ms, s, _ in self.samples if since <= t <= until and s == 200]


_CLIENT_ADDRESSES = itertools.count(2)


class _SourceAddressAdapter(requests.adapters.HTTPAdapter):
    def __init__(self, source: str):
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kwargs)


def _client_session() -> requests.Session:
    """A session from its own loopback address (127.0.0.2, .3, ...): each client is
    another person to the service, as the per-address quotas, share caps and the
    corroboration rule of the retraining (issue 17) count people by address."""
    session = requests.Session()
    adapter = _SourceAddressAdapter(f"127.0.0.{next(_CLIENT_ADDRESSES)}")
    session.mount("http://", adapter)
    return session


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pendigits", help="path to pendigits-train.csv")
    parser.add_argument("--mnist", help="path to mnist-dev.npz (accuracy before/after)")
    parser.add_argument("--mnist-limit", type=int, default=2000)
    parser.add_argument("--help-rows", type=int, default=5000, help="rows 0..N-1 become help data")
    parser.add_argument("--renderings", type=int, default=2, help="brushes per row (distinct images)")
    parser.add_argument("--eval-rows", type=int, default=1000, help="held-out block: the last N rows")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--help-weight", type=float, default=None,
                        help="SWAGDIGITS_HELP_WEIGHT for the retraining (default: the setting's default)")
    args = parser.parse_args(argv)

    rows = np.loadtxt(args.pendigits, delimiter=",", dtype=int)
    if args.help_rows + args.eval_rows > len(rows):
        parser.error(f"only {len(rows)} rows: help rows and the held-out block must not overlap")
    help_rows, eval_rows = rows[:args.help_rows], rows[-args.eval_rows:]
    brushes = [18, 13, 24, 10][:args.renderings]
    t = time.perf_counter()
    help_items = [(render_row(r[:16], b), int(r[16])) for b in brushes for r in help_rows]
    eval_images = [render_row(r[:16], 18) for r in eval_rows]
    print(f"rendered {len(help_items)} help + {len(eval_images)} held-out drawings "
          f"in {time.perf_counter() - t:.1f}s")
    mnist = mnist_images(args.mnist, args.mnist_limit) if args.mnist else None

    stack = BenchStack()
    stack.env.update({"SWAGDIGITS_ADMIN_TOKEN": TOKEN, "SWAGDIGITS_RETRAIN_THRESHOLD": str(len(help_items)),
                      "SWAGDIGITS_LOG_LEVEL": "INFO",
                      # BenchStack's Config sets DATA_DIR as an override, which does not move help_dir
                      "SWAGDIGITS_HELP_DIR": str(stack.tmp / "help_data"),
                      # every simulated user comes from 127.0.0.1: per-address limits would refuse them
                      "SWAGDIGITS_RATE_LIMIT_HELP": "0", "SWAGDIGITS_RATE_LIMIT_PREDICT": "0"})
    if args.help_weight is not None:
        stack.env["SWAGDIGITS_HELP_WEIGHT"] = str(args.help_weight)
    retrainer = None
    try:
        registry = ModelRegistry(stack.model_dir)
        before = registry.load_production()
        acc_before = accuracy(before, eval_images, eval_rows[:, 16])
        mnist_before = accuracy(before, *mnist) if mnist else None
        retrainer = stack._spawn("worker", "retrain")
        stack.start_web()
        stack.set_workers(args.workers)
        conn = redis.Redis.from_url(stack.redis.url)

        # -- help data from concurrent clients ---------------------------------
        def send(item):
            image, label = item
            session = getattr(local, "s", None) or setattr(local, "s", _client_session()) or local.s
            res = session.post(stack.url + "/helpdata", timeout=30, json={
                "image": base64.b64encode(image).decode(), "label": label})
            return res.status_code, res.json()

        local = threading.local()
        prober = Prober(stack.url, eval_images[0])
        prober.thread.start()
        time.sleep(3.0)
        idle_until = time.time()
        t = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            answers = list(pool.map(send, help_items[:-1]))
        upload_s = time.perf_counter() - t
        accepted = [a for s, a in answers if s in (200, 201)]
        failed = [s for s, _ in answers if s not in (200, 201)]
        help_dir = stack.tmp / "help_data"
        pngs = list(help_dir.rglob("*.png"))
        partial = [f for f in help_dir.rglob("*") if f.name.endswith(".tmp")]
        distinct = {a["id"] for a in accepted}
        print(f"help upload: {len(answers)} POST /helpdata from {args.clients} clients in {upload_s:.1f}s "
              f"({len(answers) / upload_s:.0f}/s); {len(failed)} refused; {len(distinct)} distinct accepted, "
              f"{len(pngs)} PNGs on disk, {len(partial)} partial files "
              f"(target: every accepted image on disk once, none partial)")

        # -- the last image crosses the threshold: retraining starts -------------
        old = registry.production_id()
        retrain_started = time.time()
        status, last = send(help_items[-1])
        job_id = last.get("retrain_job_id")
        print(f"threshold reached: POST /helpdata {status}, pending {last.get('pending')}, retrain job {job_id}")
        new, promoted_at, all_serving_at = None, None, None
        deadline = time.time() + 600
        while time.time() < deadline and all_serving_at is None:
            if new is None:
                current = registry.production_id()
                if current != old:
                    new = current
                    promoted_at = _promotion_time(stack.model_dir, new)
            if new is not None:
                versions = [w.get("model_version") for w in
                            heartbeat.live_workers(conn, 1, role="predict")]
                if len(versions) == args.workers and set(versions) == {new}:
                    all_serving_at = time.time()
            if new is None and (json.loads(requests.get(stack.url + "/api/models", timeout=5).text)
                                ["retrain"] == {"waiting": None, "running": None}) and \
                    registry.list()[0].states == ("rejected",):
                break
            time.sleep(0.005)
        time.sleep(2.0)
        prober.stop.set()
        prober.thread.join(15)

        from shared.messaging.retrain_trigger import fetch_job
        result = fetch_job(conn, job_id).return_value() if job_id else None
        idle = prober.latencies(0, idle_until)
        uploading = prober.latencies(idle_until, retrain_started)
        during = prober.latencies(retrain_started, promoted_at or time.time())
        failures = [s for _, _, s, _ in prober.samples if s != 200]
        print(f"retrain result: {json.dumps(result)}")
        if result:
            print(f"retrain duration: {result['total_seconds']:.1f}s total, {result['train_seconds']:.1f}s "
                  f"features+fit, on shipped digits + {result['help_images']} help images "
                  f"({result['n_help_holdout']} held back) (target < 60s for 10,000)")
        print(f"prediction p50/p99 idle: {percentile(idle, 50):.1f}/{percentile(idle, 99):.1f} ms "
              f"(n={len(idle)}); during help upload: {percentile(uploading, 50):.1f}/"
              f"{percentile(uploading, 99):.1f} ms (n={len(uploading)}); during retraining: "
              f"{percentile(during, 50):.1f}/"
              f"{percentile(during, 99):.1f} ms (n={len(during)}) (target p99 <= 2x idle)")
        print(f"failed predictions across the run and swap: {len(failures)} of {len(prober.samples)} (target 0)")
        if new and promoted_at and all_serving_at:
            print(f"promotion -> new version serving in all {args.workers} workers: "
                  f"{(all_serving_at - promoted_at) * 1000:.0f} ms (target < 1000 ms)")
            after = registry.load(new)
            print(f"held-out pendigits rows ({len(eval_images)}): {acc_before:.4f} before -> "
                  f"{accuracy(after, eval_images, eval_rows[:, 16]):.4f} after")
            if mnist:
                print(f"MNIST-dev ({len(mnist[0])}): {mnist_before:.4f} before -> {accuracy(after, *mnist):.4f} after")
        else:
            print(f"no new version went live (held-out pendigits accuracy {acc_before:.4f}); "
                  f"see {stack.tmp}/retrain.log")
    finally:
        if retrainer is not None and retrainer.poll() is None:
            retrainer.terminate()
            retrainer.wait(30)
        stack.stop()
    return 0


def _promotion_time(model_dir: Path, model_id: str) -> float:
    for path in sorted((model_dir / "promotions").glob(f"*-{model_id}.json"), reverse=True):
        return datetime.fromisoformat(json.loads(path.read_text())["at"]).timestamp()
    return time.time()


if __name__ == "__main__":
    sys.exit(main())
