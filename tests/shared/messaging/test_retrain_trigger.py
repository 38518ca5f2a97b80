"""Retrain jobs travel through Redis as JSON, never as pickles.

RQ's default serializer is pickle: whoever could write a job (or its meta)
into Redis would run code in the retrain worker, or in any process that
fetches the job. Coalescing and the running slot are tested in
tests/workers/test_retrain_job.py.
"""
from __future__ import annotations

import json
import pickle
import zlib

import pytest
from rq.exceptions import DeserializationError

from shared.messaging import protocol as p
from shared.messaging import retrain_trigger


def _stored(conn, job_id: str, field: str) -> bytes:
    return conn.hget(f"rq:job:{job_id}", field)


def test_an_enqueued_retrain_is_stored_as_json(redis_conn):
    job_id = retrain_trigger.request_retrain(redis_conn, reason="test").job_id
    data = zlib.decompress(_stored(redis_conn, job_id, "data"))   # RQ compresses the payload
    assert not data.startswith(pickle.PROTO)
    assert json.loads(data) == [p.RETRAIN_JOB_FUNC, None, [], {"reason": "test"}]
    meta = _stored(redis_conn, job_id, "meta")
    assert meta is None or isinstance(json.loads(meta), dict)


def test_a_pickle_planted_in_a_job_is_never_unpickled(redis_conn):
    job_id = retrain_trigger.request_retrain(redis_conn, reason="test").job_id
    planted = pickle.dumps({"would": "run code"})
    redis_conn.hset(f"rq:job:{job_id}", "data", zlib.compress(planted))
    job = retrain_trigger.fetch_job(redis_conn, job_id)
    with pytest.raises(DeserializationError):
        job.func_name


def test_every_reader_of_the_retrain_queue_uses_json(redis_conn):
    retrain_trigger.request_retrain(redis_conn, reason="test")
    queue = retrain_trigger.retrain_queue(redis_conn)
    assert queue.serializer is retrain_trigger.SERIALIZER
    [job] = queue.get_jobs()
    assert job.kwargs == {"reason": "test"}
    depth, age = retrain_trigger.queue_stats(redis_conn)
    assert depth == 1 and age >= 0


def _hold_slot_forever(url: str, job_id: str) -> None:
    import time

    import redis

    with retrain_trigger.running_slot(redis.Redis.from_url(url), job_id):
        while True:
            time.sleep(1)


def test_the_running_slot_is_renewed_while_held(redis_conn, monkeypatch):
    import time

    monkeypatch.setattr(retrain_trigger, "LEASE_S", 1)
    with retrain_trigger.running_slot(redis_conn, "training-now"):
        time.sleep(2.5)   # more than two leases
        assert redis_conn.get(p.RETRAIN_RUNNING_KEY) == b"training-now"
    assert redis_conn.get(p.RETRAIN_RUNNING_KEY) is None, "freed when the job ends"


def test_a_retrain_worker_killed_outright_frees_the_slot_within_a_lease(redis_url, redis_conn, monkeypatch):
    import multiprocessing
    import os
    import signal
    import time

    monkeypatch.setattr(retrain_trigger, "LEASE_S", 2)
    holder = multiprocessing.get_context("fork").Process(target=_hold_slot_forever, args=(redis_url, "killed-job"))
    holder.start()
    deadline = time.monotonic() + 10
    while redis_conn.get(p.RETRAIN_RUNNING_KEY) != b"killed-job" and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(2.5)   # it holds the slot past its first lease
    assert redis_conn.get(p.RETRAIN_RUNNING_KEY) == b"killed-job"
    os.kill(holder.pid, signal.SIGKILL)     # nobody is left to free it or mark the job failed
    holder.join()
    started = time.monotonic()
    with retrain_trigger.running_slot(redis_conn, "next-job", poll_s=0.1):
        waited = time.monotonic() - started
    assert waited < 2 + 1, f"the next retraining waited {waited:.1f}s"
