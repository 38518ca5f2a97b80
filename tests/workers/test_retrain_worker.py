"""The retrain worker's warm-up waits for the first model's training instead of racing it."""
from __future__ import annotations

import time

from shared.messaging import protocol as p
from workers.retrain_worker import wait_for_first_model


class Store:
    """A model store whose production model appears after ``after`` checks (never with None)."""

    def __init__(self, after: int | None):
        self.after = after
        self.checks = 0

    def production_id(self, missing_ok: bool = False):
        self.checks += 1
        return "m1" if self.after is not None and self.checks > self.after else None


def timed(conn, store, **limits) -> float:
    started = time.monotonic()
    wait_for_first_model(conn, store, poll_s=0.02, **limits)
    return time.monotonic() - started


def test_a_store_with_a_production_model_is_not_waited_for(redis_conn):
    redis_conn.set(p.BOOTSTRAP_LOCK, "predict-1")
    store = Store(after=0)
    assert timed(redis_conn, store, grace_s=5, limit_s=5) < 0.5 and store.checks == 1


def test_the_warm_up_waits_while_a_predict_worker_trains_the_first_model(redis_conn):
    redis_conn.set(p.BOOTSTRAP_LOCK, "predict-1")
    store = Store(after=10)           # published after ten checks, long past the grace period
    waited = timed(redis_conn, store, grace_s=0.05, limit_s=5)
    assert store.checks == 11, "it returns as soon as the model is there"
    assert 0.15 < waited < 2


def test_with_no_training_under_way_it_waits_only_the_grace_period(redis_conn):
    redis_conn.delete(p.BOOTSTRAP_LOCK)
    waited = timed(redis_conn, Store(after=None), grace_s=0.3, limit_s=5)
    assert 0.3 <= waited < 1.5


def test_a_training_that_never_ends_is_waited_for_only_up_to_the_limit(redis_conn):
    redis_conn.set(p.BOOTSTRAP_LOCK, "predict-1")
    waited = timed(redis_conn, Store(after=None), grace_s=0.05, limit_s=0.4)
    assert 0.4 <= waited < 1.5
