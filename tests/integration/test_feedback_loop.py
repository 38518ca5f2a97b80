"""The feedback loop end to end: real redis-server, web, predict and retrain worker processes.

Help data reaches the threshold, the retrain worker trains, versions and
promotes a candidate, and two running predict workers swap to it while a
client keeps predicting; operators roll back; a corrupted artifact is refused.
"""
import threading
import time

import redis
import requests

from shared.messaging import heartbeat, retrain_trigger
from shared.model.store import ModelRegistry
from testkit.drawings import digit_png
from tests.integration.conftest import wait_for

TOKEN = "integration-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Predictor:
    """A client sending drawings without pause, recording every answer."""

    def __init__(self, url: str):
        self.url = url
        self.results: list[tuple[float, int, str | None]] = []   # (time, status, model_version)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(15)

    def _run(self):
        session, n = requests.Session(), 0
        while not self.stop.is_set():
            n += 1
            try:
                res = session.post(self.url + "/api/predict", timeout=10,
                                   files={"file": ("d.png", digit_png(n % 10), "image/png")})
                version = res.json().get("model_version") if res.ok else None
                self.results.append((time.time(), res.status_code, version))
            except requests.RequestException:
                self.results.append((time.time(), 0, None))


def _serving(url: str) -> dict:
    return requests.get(url + "/api/models", timeout=5).json()["serving"]


def _all_serve(url, version, workers=2):
    return lambda: _serving(url) == {version: workers}


def test_help_data_retrains_and_the_new_version_goes_live_in_every_worker(stack, config):
    env = {"SWAGDIGITS_ADMIN_TOKEN": TOKEN, "SWAGDIGITS_RETRAIN_THRESHOLD": "10",
           # this test is about the swap, not the gate: any sane candidate passes
           "SWAGDIGITS_PROMOTION_TOLERANCE": "0.5",
           # the client below predicts without pause from one address
           "SWAGDIGITS_RATE_LIMIT_PREDICT": "0"}
    stack.env.update(env)
    registry = ModelRegistry(config.model_dir)
    old = registry.production_id()
    retrainer = stack.start("worker", "retrain")
    stack.start("worker", "predict")
    stack.start("worker", "predict")
    url = stack.start_web()
    stack.wait_ready(url, workers=2)
    wait_for(_all_serve(url, old), "both workers on the first model", stack.procs)

    with Predictor(url) as client:
        time.sleep(0.5)
        answers = []
        for brush, digits in ((14, range(10)), (22, range(5))):   # 15 images, threshold 10
            for d in digits:
                res = requests.post(url + "/helpdata", timeout=5, files={
                    "file": ("d.png", digit_png(d, brush=brush), "image/png")}, data={"label": str(d)})
                assert res.status_code == 201, res.text
                answers.append(res.json())
        job_ids = [a["retrain_job_id"] for a in answers if "retrain_job_id" in a]
        assert job_ids == [answers[9]["retrain_job_id"]], "exactly one retrain, at the 10th image"

        new = wait_for(lambda: registry.production_id() != old and registry.production_id(),
                       # the retrain worker's warm-up (fixed training features, ~50 s of CPU) and
                       # the retraining itself: a bound, not a timing
                       "a promoted candidate", stack.procs, timeout=400)
        wait_for(_all_serve(url, new), "both workers on the new model", stack.procs)
        swapped_at = time.time()
        time.sleep(1.0)
    # Nothing else may be queued or running: the threshold asked exactly once.
    wait_for(lambda: requests.get(url + "/api/models", timeout=5).json()["retrain"] ==
             {"waiting": None, "running": None}, "retraining to finish", stack.procs, timeout=120)

    statuses = [s for _, s, _ in client.results]
    assert len(statuses) > 20 and set(statuses) == {200}, "a prediction failed during the swap"
    versions = [v for _, _, v in client.results]
    assert set(versions) == {old, new} and registry.production_id() == new
    assert versions[0] == old
    assert all(v != old for t, _, v in client.results if t > swapped_at + 0.1)
    meta = registry.info(new)["extra"]
    assert meta["parent"] == old and meta["n_help_images"] + meta["n_help_holdout"] >= 10
    assert f"candidate {new} promoted" in retrainer.log()
    # The job and its verdict went through Redis as JSON (never a pickle) and read back whole.
    job = retrain_trigger.fetch_job(redis.Redis.from_url(config.redis_url), job_ids[0])
    assert job.get_status(refresh=True) == "finished"
    assert job.return_value()["outcome"] == "promoted" and job.return_value()["model_id"] == new


def test_rollback_reaches_every_worker_and_a_corrupted_artifact_is_refused(stack, config):
    stack.env["SWAGDIGITS_ADMIN_TOKEN"] = TOKEN
    registry = ModelRegistry(config.model_dir)
    first = registry.load_production()
    good = registry.publish(registry.load_trained(first.version), {**first.metadata, "source": "copy"})
    bad = registry.publish(registry.load_trained(first.version), {**first.metadata, "source": "to be corrupted"})
    workers = [stack.start("worker", "predict"), stack.start("worker", "predict")]
    url = stack.start_web()
    stack.wait_ready(url, workers=2)

    assert requests.post(f"{url}/api/models/{good}/promote", headers=AUTH, timeout=5).status_code == 200
    wait_for(_all_serve(url, good), "both workers on the promoted model", stack.procs)
    res = requests.post(url + "/api/models/rollback", headers=AUTH, timeout=5)
    assert res.json() == {"production": first.version, "previous": good}
    wait_for(_all_serve(url, first.version), "both workers rolled back", stack.procs)

    artifact = registry.info(bad)["storage"]["path"]
    with open(artifact, "r+b") as fh:   # flip bytes in the middle of the archive
        fh.seek(200)
        fh.write(b"\0corrupted\0")
    assert requests.post(f"{url}/api/models/{bad}/promote", headers=AUTH, timeout=5).status_code == 200
    wait_for(lambda: all("refused to swap" in w.log() for w in workers), "workers refusing", stack.procs)
    assert all("checksum does not match" in w.log() for w in workers)
    assert _serving(url) == {first.version: 2}
    for worker in heartbeat.live_workers(redis.Redis.from_url(config.redis_url), 1, role="predict"):
        scrape = requests.get(f"http://127.0.0.1:{worker['metrics_port']}/metrics", timeout=5).text
        assert "swagdigits_model_swap_failures_total 1.0" in scrape
    res = requests.post(url + "/api/predict", files={"file": ("d.png", digit_png(3), "image/png")}, timeout=10)
    assert res.status_code == 200 and res.json()["model_version"] == first.version
