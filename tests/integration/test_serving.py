"""The serving core end to end: real redis-server, real worker process, real gunicorn web."""
import base64

import requests

from testkit.drawings import digit_png
from tests.integration.conftest import wait_for


def test_drawings_over_http_are_recognised_by_a_worker_process(stack):
    stack.start("worker", "predict")
    url = stack.start_web()
    ready = stack.wait_ready(url)
    assert ready["ready"] and len(ready["model_versions"]) == 1
    right = 0
    for digit in range(10):
        res = requests.post(url + "/api/predict", files={"file": ("d.png", digit_png(digit), "image/png")},
                            timeout=10)
        assert res.status_code == 200, res.text
        body = res.json()
        assert body["model_version"] == ready["model_versions"][0]
        right += body["digit"] == digit
    assert right >= 8, f"only {right}/10 clearly drawn digits recognised"


def test_wait_0_then_poll_the_job(stack):
    stack.start("worker", "predict")
    url = stack.start_web()
    stack.wait_ready(url)
    image = "data:image/png;base64," + base64.b64encode(digit_png(4)).decode()
    res = requests.post(url + "/api/predict?wait=0", json={"image": image}, timeout=5)
    assert res.status_code == 202
    status_url = url + res.headers["Location"]
    for _ in range(50):
        status = requests.get(status_url, timeout=5).json()
        if status["state"] == "finished":
            break
    assert status["state"] == "finished" and status["result"]["digit"] == 4


def test_without_a_worker_the_web_tier_answers_504_then_readyz_503(stack):
    url = stack.start_web()
    res = requests.post(url + "/api/predict", files={"file": ("d.png", digit_png(1), "image/png")}, timeout=10)
    assert res.status_code == 504 and "no worker" in res.json()["error"]
    ready = requests.get(url + "/readyz", timeout=5)
    assert ready.status_code == 503 and "predict_worker" in ready.json()["missing"]


def test_a_worker_that_starts_on_an_empty_store_trains_the_first_model(stack, tmp_path):
    """...and a retrain worker started with it waits for that training and reads the fixed
    training set it leaves on disk, instead of computing the same set at the same time."""
    fresh = {"SWAGDIGITS_MODEL_DIR": str(tmp_path / "fresh")}
    worker = stack.start("worker", "predict", env=fresh)
    retrainer = stack.start("worker", "retrain", env=fresh)
    url = stack.start_web()
    # Training the first model takes about 75 s of CPU (benchmarks.first_start): its own bound.
    stack.wait_ready(url, timeout=400)
    assert "no production model" in worker.log()
    res = requests.post(url + "/api/predict", files={"file": ("d.png", digit_png(7), "image/png")}, timeout=10)
    assert res.json()["digit"] == 7
    wait_for(lambda: "listening on queue" in retrainer.log(), "the retrain worker's warm-up", [retrainer])
    assert "for the first model's training" in retrainer.log()
    assert "fixed training features read from" in retrainer.log()
    assert "fixed training rows" in worker.log() and "fixed training rows" not in retrainer.log(), \
        "the fixed training set was computed twice"
