"""A second model family served by a real predict worker: trained at start, and swapped in live."""
import redis
import requests

from shared.messaging import model_events
from shared.model.store import ModelRegistry
from shared.model.training.publishing import train_initial
from testkit.drawings import digit_png
from tests.integration.conftest import wait_for


def _predict(url, digit):
    res = requests.post(url + "/api/predict", files={"file": ("d.png", digit_png(digit), "image/png")}, timeout=10)
    assert res.status_code == 200, res.text
    return res.json()


def test_a_worker_configured_for_another_family_trains_and_serves_it(stack, tmp_path):
    empty_store = tmp_path / "empty-store"
    stack.env = {**stack.env, "SWAGDIGITS_MODEL_DIR": str(empty_store)}
    stack.start("worker", "predict", env={"SWAGDIGITS_MODEL_FAMILY": "linear"})
    url = stack.start_web()
    # The worker trains the first model (the fixed training rows alone take ~50 s of CPU): its own bound.
    [version] = stack.wait_ready(url, timeout=400)["model_versions"]
    assert ModelRegistry(empty_store).info(version)["extra"]["family"] == "linear"
    answers = [_predict(url, d) for d in range(10)]
    assert all(a["model_version"] == version for a in answers)
    assert sum(a["digit"] == d for d, a in enumerate(answers)) >= 6


def test_promoting_a_model_of_another_family_swaps_it_into_a_running_worker(stack, config):
    stack.start("worker", "predict")
    url = stack.start_web()
    [first] = stack.wait_ready(url)["model_versions"]
    registry = ModelRegistry(config.model_dir)
    assert registry.info(first)["extra"]["family"] == "svc"
    linear, _ = train_initial(registry, source="test", promote=False, family="linear")
    model_events.promote_and_announce(registry, redis.Redis.from_url(config.redis_url), linear, reason="test")
    wait_for(lambda: _predict(url, 7)["model_version"] == linear, "the worker to serve the linear model",
             stack.procs, timeout=30)
