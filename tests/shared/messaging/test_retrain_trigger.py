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
