"""Batch chunks and results against a real redis-server."""
import time

import pytest

from shared.messaging import protocol as p
from shared.messaging.batch_queue import BatchQueue


@pytest.fixture
def batches(redis_conn):
    return BatchQueue(redis_conn, chunk_size=2, ttl=60)


def answer(chunk):
    return [{"digit": int(img.decode()), "probabilities": [0.1] * 10, "model_version": "v"}
            for img in chunk.images]


def test_a_batch_is_split_into_chunks_of_the_configured_size(batches):
    batch_id, expires_at = batches.submit([b"1", b"2", b"3", b"4", b"5"])
    assert abs(expires_at - (time.time() + 60)) < 2
    chunks = [batches.claim("w") for _ in range(4)]
    assert [c.indexes for c in chunks[:3]] == [[0, 1], [2, 3], [4]]
    assert chunks[3] is None
    assert batches.progress(batch_id).state == p.QUEUED


def test_results_come_back_in_input_order_whatever_order_chunks_finish(batches):
    batch_id, _ = batches.submit([b"1", b"2", b"3", b"4", b"5"])
    first, second, third = (batches.claim("w") for _ in range(3))
    assert batches.record(third, answer(third)).state == p.RUNNING
    batches.record(first, answer(first))
    progress = batches.record(second, answer(second))
    assert (progress.state, progress.done, progress.total) == (p.FINISHED, 5, 5)
    results = batches.results(batch_id)
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert [r["digit"] for r in results] == [1, 2, 3, 4, 5]


def test_invalid_items_are_answered_at_once_and_never_queued(batches):
    batch_id, _ = batches.submit([b"7", "not an image", b"8"])
    chunk = batches.claim("w")
    assert chunk.indexes == [0, 2] and batches.claim("w") is None
    batches.record(chunk, answer(chunk))
    assert [r.get("error") for r in batches.results(batch_id)] == [None, "not an image", None]


def test_a_batch_of_only_bad_images_is_finished_immediately(batches):
    batch_id, _ = batches.submit(["bad", "worse"])
    assert batches.progress(batch_id).state == p.FINISHED


def test_a_retried_chunk_overwrites_rather_than_duplicates(batches):
    batch_id, _ = batches.submit([b"1", b"2", b"3"])
    chunk = batches.claim("dead-worker")
    [again] = batches.reclaim_stale("w2", min_idle_ms=0)
    assert again.indexes == chunk.indexes and again.deliveries == 2
    batches.record(again, answer(again))
    batches.record(chunk, answer(chunk))  # the "dead" worker finishes after all
    assert batches.progress(batch_id).done == 2
    assert len(batches.results(batch_id)) == 2


def test_results_expire_with_the_batch(batches, redis_conn):
    batch_id, _ = batches.submit([b"1", "bad"])
    assert 0 < redis_conn.ttl(p.BATCH_KEY.format(batch_id)) <= 60
    assert 0 < redis_conn.ttl(p.BATCH_RESULTS_KEY.format(batch_id)) <= 60
    chunk = batches.claim("w")
    redis_conn.delete(p.BATCH_KEY.format(batch_id))  # expired meanwhile
    assert batches.record(chunk, answer(chunk)).state == "expired"
    assert batches.progress(batch_id) is None
