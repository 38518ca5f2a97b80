"""Batches end to end: real redis-server, real worker processes, real web, the real CLI."""
import csv
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests
import socketio

from testkit.drawings import digit_png
from tests.integration.conftest import wait_for


@pytest.fixture
def stack_env(stack_env):
    """Batches of thousands: a batch spends one prediction per image, so the per-address limit is off."""
    return {**stack_env, "SWAGDIGITS_RATE_LIMIT_PREDICT": "0"}


def submit(url, images):
    files = [("file", (f"{i}.png", png, "image/png")) for i, png in enumerate(images)]
    res = requests.post(url + "/api/batches", files=files, timeout=60)
    assert res.status_code == 202, res.text
    return res.json()


def status(url, batch):
    return requests.get(url + batch["status_url"], timeout=30).json()


def test_the_cli_sends_a_folder_and_writes_results_in_order(stack, tmp_path):
    stack.start("worker", "predict")
    url = stack.start_web()
    stack.wait_ready(url)
    folder = tmp_path / "scans"
    folder.mkdir()
    digits = [7, 1, 0, 4, 2, 8]
    for i, d in enumerate(digits):
        (folder / f"{i:02d}.png").write_bytes(digit_png(d))
    (folder / "99-broken.png").write_bytes(b"not really a png")
    out = tmp_path / "results.csv"
    proc = subprocess.run([sys.executable, "-m", "swagdigits", "batch", str(folder), "--url", url,
                           "--out", str(out)], env=stack.env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr  # one image could not be read
    rows = list(csv.DictReader(out.open()))
    assert [r["file"].rsplit("/", 1)[-1] for r in rows] == sorted(p.name for p in folder.iterdir())
    assert sum(r["digit"] == str(d) for r, d in zip(rows, digits)) >= 5
    assert rows[-1]["digit"] == "" and rows[-1]["error"]


def test_a_worker_killed_mid_batch_loses_and_duplicates_nothing(stack):
    first = stack.start("worker", "predict")
    url = stack.start_web()
    stack.wait_ready(url)
    import redis

    from shared.messaging import protocol as p

    conn = redis.Redis.from_url(stack.env["REDIS_URL"])
    batch = submit(url, [digit_png(i % 10) for i in range(1500)])

    def held_chunks():   # chunks the first worker has claimed and not yet finished
        return [e for e in conn.xpending_range(p.BATCH_STREAM, p.PREDICT_GROUP, "-", "+", 100)
                if e["consumer"].decode().endswith(f"-{first.popen.pid}")]

    def chunk_in_flight():
        return status(url, batch)["done"] > 0 and held_chunks()

    deadline = time.monotonic() + 60
    while not chunk_in_flight():
        assert time.monotonic() < deadline, "the worker never held a chunk"
        time.sleep(0.005)
    first.stop(signal.SIGKILL)
    # Still held after the kill: the worker died with a chunk in flight, delivered once so far.
    lost = held_chunks()
    assert lost, "the killed worker held no chunk: nothing was lost for the retry to find"
    assert all(e["times_delivered"] == 1 for e in lost)
    stack.start("worker", "predict")
    final = wait_for(lambda: (s := status(url, batch))["state"] == "finished" and s, "batch finished",
                     stack.procs, timeout=120)
    assert final["done"] == final["total"] == 1500
    indexes = [r["index"] for r in final["results"]]
    assert indexes == list(range(1500)), "every image answered exactly once, in order"
    assert all("digit" in r for r in final["results"]), "the lost chunk was retried, not failed"
    assert not conn.xpending(p.BATCH_STREAM, p.PREDICT_GROUP)["pending"], "a chunk is still held"


def test_a_drawing_sent_during_a_large_batch_is_answered_before_the_batch_ends(stack):
    stack.start("worker", "predict")
    url = stack.start_web()
    stack.wait_ready(url)
    batch = submit(url, [digit_png(i % 10) for i in range(3000)])
    wait_for(lambda: status(url, batch)["done"] > 0, "batch started")
    res = requests.post(url + "/api/predict", files={"file": ("d.png", digit_png(7), "image/png")}, timeout=30)
    progress = status(url, batch)
    assert res.status_code == 200 and res.json()["digit"] == 7
    assert progress["state"] != "finished" and progress["done"] < 3000, \
        "the drawing waited behind the whole batch"


def test_socketio_subscribers_get_progress_until_finished(stack):
    stack.start("worker", "predict")
    url = stack.start_web()
    stack.wait_ready(url)
    events, finished = [], threading.Event()
    client = socketio.Client(reconnection=False)

    @client.on("batch_progress")
    def on_progress(data):
        events.append(data)
        if data["state"] == "finished":
            finished.set()

    client.connect(url, transports=["websocket"])
    try:
        batch = submit(url, [digit_png(i % 10) for i in range(200)])
        ack = client.call("subscribe_batch", {"batch_id": batch["batch_id"]}, timeout=10)
        assert ack["total"] == 200
        assert finished.wait(60), f"no finished event; got {events[-3:]}"
    finally:
        client.disconnect()
    done = [e["done"] for e in events]
    assert done == sorted(done) and done[-1] == 200
    assert {e["batch_id"] for e in events} == {batch["batch_id"]}
