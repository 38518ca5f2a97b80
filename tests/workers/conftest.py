"""A predict worker in this process, on the session's trained store and a real redis-server;
a help store of twenty drawings and a count of the help images decoded."""
import pytest

from shared.help_store import HelpStore
from shared.images.upload import ImageLimits
from shared.model import families
from shared.model.base import Trained
from shared.model.store import ModelRegistry
from shared.model.training import fitting as training
from testkit.drawings import digit_png
from workers import retrain_job
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


@pytest.fixture
def limits(config):
    return ImageLimits.from_config(config)


@pytest.fixture
def store(config, redis_conn):
    """A help store holding each digit drawn with two brushes."""
    help_store = HelpStore.from_config(config, redis_conn)
    for brush in (12, 20):
        for d in range(10):
            help_store.add(digit_png(d, brush=brush), d)
    return help_store


@pytest.fixture
def decodes(monkeypatch):
    """Counts help images decoded (the expensive step the feature caches avoid)."""
    calls = []
    real = retrain_job.decode_ink

    def counting(data, limits):
        calls.append(len(data))
        return real(data, limits)

    monkeypatch.setattr(retrain_job, "decode_ink", counting)
    return calls
