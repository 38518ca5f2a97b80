"""Faults injected into real processes: a worker killed holding a job, a retrain killed
mid-training, read-only storage, and hostile input against the real web process.

Each test starts real redis-server / web / worker processes (tests/integration/conftest.py),
injects the fault and checks what the client sees and what is stored.
"""
from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import numpy as np
import psutil
import pytest
import redis
import requests
from rq.job import JobStatus

from shared.images.ink import decode_ink
from shared.images.upload import ImageLimits
from shared.messaging import protocol as p
from shared.messaging import retrain_trigger
from shared.model.store import ModelRegistry
from testkit.drawings import digit_png
from tests.integration.conftest import wait_for

LIMITS = ImageLimits(4 * 1024 * 1024, 1024 * 1024, 8192)
from tests.web.test_fuzz import HOSTILE_IMAGES, b64

TOKEN = "faults-token-5c1e0b"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def consumer_name(proc) -> str:
    return f"predict-{socket.gethostname()}-{proc.popen.pid}"


def pending_owner(conn: redis.Redis) -> list[str]:
    rows = conn.xpending_range(p.PREDICT_STREAM, p.PREDICT_GROUP, min="-", max="+", count=10)
    return [row["consumer"].decode() for row in rows]


def test_a_predict_worker_killed_holding_a_job_has_it_retried_on_another_in_time(stack, config):
    stack.env["SWAGDIGITS_PREDICT_TIMEOUT"] = "5"
    doomed, survivor = stack.start("worker", "predict"), stack.start("worker", "predict")
    url = stack.start_web()
    stack.wait_ready(url, workers=2)
    conn = redis.Redis.from_url(config.redis_url)

    # Freeze the survivor and let its blocking read lapse, so only the doomed worker,
    # frozen *while blocked in XREADGROUP*, can be handed the next drawing by Redis.
    survivor.popen.send_signal(signal.SIGSTOP)
    time.sleep(1.3)
    answer: dict = {}
    for _attempt in range(6):
        doomed.popen.send_signal(signal.SIGSTOP)

        def post():
            t0 = time.monotonic()
            res = requests.post(url + "/api/predict", files={"file": ("d.png", digit_png(4), "image/png")},
                                timeout=30)
            answer.update(status=res.status_code, body=res.json(), seconds=time.monotonic() - t0)
        client = threading.Thread(target=post)
        client.start()
        held = wait_for_value(lambda: pending_owner(conn), 1.0)
        if held == [consumer_name(doomed)]:
            break
        doomed.popen.send_signal(signal.SIGCONT)  # it was between reads: let it answer, try again
        client.join(10)
        answer.clear()
        time.sleep(1.3)
    else:
        pytest.fail("could not catch the worker holding a job")
    doomed.popen.send_signal(signal.SIGKILL)
    doomed.popen.wait()
    survivor.popen.send_signal(signal.SIGCONT)
    client.join(15)

    assert answer["status"] == 200, answer
    assert answer["seconds"] < 5.0 + 0.5, "the answer must come within the client's timeout"
    assert answer["body"]["digit"] == 4
    job = requests.get(f"{url}/api/jobs/{answer['body']['job_id']}", timeout=5).json()
    assert job["state"] == p.FINISHED and job["result"]["digit"] == 4
    assert pending_owner(conn) == [] and conn.xlen(p.PREDICT_STREAM) == 0
    assert "Traceback" not in survivor.log()


def wait_for_value(fn, timeout: float):
    deadline = time.monotonic() + timeout
    value = fn()
    while not value and time.monotonic() < deadline:
        time.sleep(0.02)
        value = fn()
    return value


# -- retrain worker ---------------------------------------------------------------
def _retrain_state(url) -> dict:
    return requests.get(url + "/api/models", timeout=5).json()["retrain"]


def _models(url) -> list[dict]:
    return requests.get(url + "/api/models", timeout=5).json()["models"]


def test_a_retrain_killed_mid_training_publishes_nothing_and_frees_its_slot(stack, config):
    stack.env["SWAGDIGITS_ADMIN_TOKEN"] = TOKEN
    stack.start("worker", "predict")
    retrainer = stack.start("worker", "retrain")
    url = stack.start_web()
    stack.wait_ready(url)
    before = {m["model_id"] for m in _models(url)}
    # Its warm-up computes the fixed training features (~30 s quiet, minutes on a busy machine).
    wait_for(lambda: "listening on queue" in retrainer.log(), "retrain worker", stack.procs, timeout=300)

    first = requests.post(url + "/api/retrain", headers=AUTH, timeout=5).json()["job_id"]
    wait_for(lambda: _retrain_state(url)["running"] == first, "training to start", stack.procs)
    horses = wait_for(lambda: psutil.Process(retrainer.popen.pid).children(), "work horse", stack.procs)
    for horse in horses:
        horse.send_signal(signal.SIGKILL)
    conn = redis.Redis.from_url(config.redis_url)
    wait_for(lambda: retrain_trigger.fetch_job(conn, first).get_status(refresh=True) == JobStatus.FAILED,
             "RQ to mark the killed job failed", stack.procs)
    assert {m["model_id"] for m in _models(url)} == before, "nothing published by the killed job"

    # The next retraining runs at once (not after the slot's lease) and completes.
    second = requests.post(url + "/api/retrain", headers=AUTH, timeout=5).json()["job_id"]
    assert second != first
    wait_for(lambda: _retrain_state(url) == {"waiting": None, "running": None},
             "the second retraining to finish", stack.procs, timeout=180)
    after = _models(url)
    assert len(after) == len(before) + 1
    registry = ModelRegistry(config.model_dir)
    for m in after:   # every model in the store is whole: its artifact matches its checksum
        registry.load(m["model_id"])
    assert retrainer.popen.poll() is None


# -- read-only storage --------------------------------------------------------------
@contextlib.contextmanager
def read_only(path):
    """Make ``path`` (and all below it) unwritable, even for root (chattr +i), or skip."""
    paths = [path, *path.rglob("*")]
    if os.geteuid() != 0:
        modes = {q: q.stat().st_mode for q in paths}
        for q in paths:
            if q.is_dir():
                q.chmod(0o555)
        try:
            yield
        finally:
            for q, mode in modes.items():
                q.chmod(mode)
        return
    if shutil.which("chattr") is None or subprocess.run(
            ["chattr", "-R", "+i", str(path)], capture_output=True).returncode != 0:
        subprocess.run(["chattr", "-R", "-i", str(path)], capture_output=True)
        pytest.skip("cannot make a directory read-only for root here (no chattr +i)")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-R", "-i", str(path)], check=True)


def _files(root):
    return sorted(str(f.relative_to(root)) for f in root.rglob("*") if f.is_file())


def test_a_read_only_help_dir_is_a_clear_error_and_nothing_half_written(stack, config):
    stack.start("worker", "predict")
    url = stack.start_web()
    stack.wait_ready(url)
    help_dir = config.help_dir
    help_dir.mkdir(parents=True, exist_ok=True)
    body = {"image": b64(digit_png(6)), "label": 6}
    with read_only(help_dir):
        res = requests.post(url + "/helpdata", json=body, timeout=10)
        assert res.status_code == 503 and res.headers["Content-Type"] == "application/json"
        assert res.json()["status"] == 503 and "read-only" in res.json()["error"]
        assert _files(help_dir) == []
        assert requests.get(url + "/helpdata", timeout=5).status_code == 200
        assert requests.post(url + "/api/predict", json={"image": body["image"]}, timeout=10).json()["digit"] == 6
    res = requests.post(url + "/helpdata", json=body, timeout=10)
    assert res.status_code in (200, 201), res.text
    png = help_dir / "6" / f"{res.json()['id']}.png"
    # Stored whole once the folder is writable again (re-encoded: the same ink, not the same bytes).
    np.testing.assert_array_equal(decode_ink(png.read_bytes(), LIMITS), decode_ink(digit_png(6), LIMITS))


def test_a_read_only_model_dir_fails_retrain_and_promotion_cleanly(stack, config):
    stack.env["SWAGDIGITS_ADMIN_TOKEN"] = TOKEN
    stack.start("worker", "predict")
    retrainer = stack.start("worker", "retrain")
    url = stack.start_web()
    stack.wait_ready(url)
    registry = ModelRegistry(config.model_dir)
    production = registry.production_id()
    spare = registry.publish(registry.load_trained(production), {"source": "spare"})
    assert len(_models(url)) == 2   # the web tier has opened the store before the disk turns read-only
    before = _files(config.model_dir)
    with read_only(config.model_dir):
        res = requests.post(f"{url}/api/models/{spare}/promote", headers=AUTH, timeout=10)
        assert res.status_code == 503 and "read-only" in res.json()["error"], res.text
        job = requests.post(url + "/api/retrain", headers=AUTH, timeout=5).json()["job_id"]
        wait_for(lambda: _retrain_state(url) == {"waiting": None, "running": None},
                 "the retraining to give up", stack.procs, timeout=180)
        assert _files(config.model_dir) == before, "nothing written, not even half a model"
        res = requests.post(url + "/api/predict", json={"image": b64(digit_png(2))}, timeout=10)
        assert res.status_code == 200 and res.json()["model_version"] == production
    assert job in retrainer.log() or "Read-only" in retrainer.log() or "Operation not permitted" in retrainer.log()
    assert ModelRegistry(config.model_dir).production_id() == production
    # Writable again: the next retraining publishes a whole model.
    requests.post(url + "/api/retrain", headers=AUTH, timeout=5)
    wait_for(lambda: len(_models(url)) == 3 and _retrain_state(url)["running"] is None,
             "a retraining to publish", stack.procs, timeout=180)
    for m in _models(url):
        ModelRegistry(config.model_dir).load(m["model_id"])


# -- hostile input and access against the real web process ---------------------------
def test_hostile_input_and_access_against_the_real_web_process(stack, config):
    stack.env["SWAGDIGITS_ADMIN_TOKEN"] = TOKEN
    # The image limits of tests/web/conftest.py, which HOSTILE_IMAGES' statuses assume.
    stack.env.update(SWAGDIGITS_MAX_UPLOAD_BYTES="200000", SWAGDIGITS_MAX_IMAGE_PIXELS="1000000",
                     SWAGDIGITS_MAX_IMAGE_SIDE="2000")
    worker = stack.start("worker", "predict")
    url = stack.start_web()
    stack.wait_ready(url)
    for name, (data, status) in HOSTILE_IMAGES.items():
        expected = {"good": 200, "truncated_body": 422}.get(name, status)
        res = requests.post(url + "/api/predict", json={"image": b64(data)}, timeout=10)
        assert res.status_code == expected, (name, res.text)
        assert res.headers["Content-Type"] == "application/json"
        if expected >= 400:
            assert res.json()["status"] == expected and res.json()["error"]
    oversized = requests.post(url + "/api/predict", data=b"{" + b" " * 200_010,
                              headers={"Content-Type": "application/json"}, timeout=10)
    assert oversized.status_code == 413 and oversized.json()["status"] == 413
    deep = requests.post(url + "/api/predict", data="[" * 100_000, headers={"Content-Type": "application/json"},
                         timeout=10)
    assert deep.status_code == 400 and deep.json()["error"]
    wrong_type = requests.post(url + "/api/predict", data=digit_png(1), headers={"Content-Type": "image/png"},
                               timeout=10)
    assert wrong_type.status_code == 415

    # Operator routes: no token, a wrong one (same length), then the right one.
    assert requests.post(url + "/api/models/rollback", timeout=5).status_code == 401
    wrong = {"Authorization": "Bearer " + "x" * len(TOKEN)}
    assert requests.post(url + "/api/retrain", headers=wrong, timeout=5).status_code == 403
    assert requests.post(url + "/api/models/rollback", headers=AUTH, timeout=5).status_code == 409

    # Security headers on the page and on API errors; Socket.IO refuses foreign origins.
    for res in (requests.get(url + "/", timeout=5), wrong_type):
        assert "frame-ancestors 'none'" in res.headers["Content-Security-Policy"]
        assert res.headers["X-Content-Type-Options"] == "nosniff"
    handshake = url + "/socket.io/?EIO=4&transport=polling"
    assert requests.get(handshake, headers={"Origin": "https://evil.example"}, timeout=5).status_code == 400
    assert requests.get(handshake, headers={"Origin": url}, timeout=5).status_code == 200

    # The processes are alive and their logs keep no token and no image content.
    assert all(proc.popen.poll() is None for proc in stack.procs)
    logs = "".join(proc.log() for proc in stack.procs)
    assert TOKEN not in logs and base64.b64encode(digit_png(1)).decode()[40:100] not in logs
    assert "Traceback" not in worker.log()
