"""A canary in a predict worker: a share of answers comes from the candidate and names it."""
import json

import pytest

from shared.messaging import canary
from shared.messaging import protocol as p
from shared.messaging.predict_queue import PredictQueue
from testkit.drawings import digit_png


@pytest.fixture
def candidate(worker):
    """A second version in the store (production's estimator re-published)."""
    current = worker.holder.current
    return worker.registry.publish(worker.registry.load_trained(current.version),
                                   {**current.metadata, "source": "canary test"})


def _versions(worker, redis_conn, n):
    queue = PredictQueue(redis_conn)
    job_ids = [queue.submit(digit_png(i % 10), limit=1000) for i in range(n)]
    while worker.run_once(block_ms=100):
        pass
    results = [json.loads(redis_conn.hget(p.JOB_KEY.format(j), "result")) for j in job_ids]
    return [r["model_version"] for r in results], [r["digit"] for r in results]


def test_a_canary_answers_its_share_and_each_answer_names_who_gave_it(worker, redis_conn, candidate):
    production = worker.holder.version
    canary.start(redis_conn, candidate, 0.5, production=production)
    worker.follow_trials()
    versions, digits = _versions(worker, redis_conn, 80)
    assert set(versions) == {production, candidate}
    assert 15 <= versions.count(candidate) <= 65, versions.count(candidate)
    assert digits == [i % 10 for i in range(80)]          # the same estimator: the same answers
    stats = canary.stats(redis_conn, candidate)
    assert stats["canary_answers"] == versions.count(candidate)
    assert stats["production_answers"] == versions.count(production)


def test_when_the_canary_stops_production_answers_everything_again(worker, redis_conn, candidate):
    canary.start(redis_conn, candidate, 1.0, production=worker.holder.version)
    worker.follow_trials()
    assert set(_versions(worker, redis_conn, 5)[0]) == {candidate}
    canary.stop(redis_conn)
    worker.follow_trials()
    assert set(_versions(worker, redis_conn, 5)[0]) == {worker.holder.version}


def test_a_canary_that_cannot_load_is_not_served(worker, redis_conn):
    canary.start(redis_conn, "no-such-version", 1.0, production=worker.holder.version)
    worker.follow_trials()
    assert set(_versions(worker, redis_conn, 3)[0]) == {worker.holder.version}
