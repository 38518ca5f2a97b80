"""A predict worker in this process, on the session's trained store and a real redis-server."""
import pytest

from shared.model import families
from shared.model.base import Trained
from shared.model.store import ModelRegistry
from shared.model.training import fitting as training
from workers.predict_worker import PredictWorker


@pytest.fixture
def worker(config, redis_conn):
    """A predict worker with its production model loaded, no pusher, not yet looping."""
    worker = PredictWorker(config, redis_conn, ModelRegistry(config.model_dir), None, name="w-test")
    worker.lifecycle.load_at_start()
    return worker


@pytest.fixture
def candidate(worker):
    """A second version in the store (not production): a linear model on the same features."""
    linear = families.get("linear")
    train, _ = training.shipped_digits(linear.pipeline)
    return worker.registry.publish(Trained(linear, linear.build().fit(train.X, train.y)), {"source": "test"})
