"""A predict worker in this process, on the session's trained store and a real redis-server."""
import pytest

from shared.model.store import ModelRegistry
from workers.predict_worker import PredictWorker


@pytest.fixture
def worker(config, redis_conn):
    """A predict worker with its production model loaded, no pusher, not yet looping."""
    worker = PredictWorker(config, redis_conn, ModelRegistry(config.model_dir), None, name="w-test")
    worker.lifecycle.load_at_start()
    return worker
