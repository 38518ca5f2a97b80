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
    # The invalid item lives in the batch's own hash: no results hash until a worker answers.
    assert not redis_conn.exists(p.BATCH_RESULTS_KEY.format(batch_id))
    chunk = batches.claim("w")
    batches.record(chunk, answer(chunk))
    assert 0 < redis_conn.ttl(p.BATCH_RESULTS_KEY.format(batch_id)) <= 60
    batch_id, _ = batches.submit([b"1"])
    chunk = batches.claim("w")
    redis_conn.delete(p.BATCH_KEY.format(batch_id))  # expired meanwhile
    assert batches.record(chunk, answer(chunk)).state == "expired"
    assert batches.progress(batch_id) is None


def _bytes_in_redis(conn) -> int:
    return sum(conn.memory_usage(key) or 0 for key in conn.scan_iter(count=1000))


def test_invalid_items_are_one_compact_record_not_one_entry_each(batches, redis_conn):
    """10,000 invalid items used to store 10,000 error results for 24 h (~1.5 MB a batch,
    issue 17 finding 4); now the batch's invalid items cost a few bytes in all."""
    before = _bytes_in_redis(redis_conn)
    batch_id, _ = batches.submit(["'image' is not valid base64"] * 10_000)
    assert _bytes_in_redis(redis_conn) - before < 2_000
    assert batches.progress(batch_id).state == p.FINISHED
    results = batches.results(batch_id)
    assert len(results) == 10_000 and results[9_999] == {"index": 9_999,
                                                         "error": "'image' is not valid base64"}


def test_interleaved_and_varied_errors_stay_within_a_byte_or_so_per_item(batches, redis_conn):
    # The worst shape for run-lengths: errors alternating, messages all different.
    items = [f"image is {i}x{i}; too large" if i % 2 else b"1" for i in range(2_000)]
    before = _bytes_in_redis(redis_conn)
    batch_id, _ = batches.submit(items)
    errors_bytes = sum(len(v) for k, v in redis_conn.hgetall(p.BATCH_KEY.format(batch_id)).items())
    assert errors_bytes < 2_000 + 33 * 200  # codes (compressed) plus at most 33 messages
    assert _bytes_in_redis(redis_conn) - before < 2_000 * 40  # mostly the 1,000 queued images
    while (chunk := batches.claim("w")) is not None:
        batches.record(chunk, answer(chunk))
    results = batches.results(batch_id)
    assert [r["index"] for r in results] == list(range(2_000))
    assert results[0]["digit"] == 1 and results[1] == {"index": 1, "error": "image is 1x1; too large"}
    # Past 32 distinct messages, an item keeps a generic one rather than its own.
    assert results[1999]["error"] == "image refused (not a readable PNG/JPEG within the limits)"
    assert batches.progress(batch_id).state == p.FINISHED


def test_waiting_for_a_batch_returns_once_it_finishes_or_at_the_deadline(batches):
    import threading

    batch_id, _ = batches.submit([b"1", b"2", b"3"])
    t0 = time.monotonic()
    assert batches.wait_finished(batch_id, 0.2).state == p.QUEUED
    assert 0.2 <= time.monotonic() - t0 < 1.0

    def work():
        time.sleep(0.1)
        while (chunk := batches.claim("w")) is not None:
            batches.record(chunk, answer(chunk))

    worker = threading.Thread(target=work)
    worker.start()
    t0 = time.monotonic()
    progress = batches.wait_finished(batch_id, 10)
    worker.join()
    assert (progress.state, progress.done) == (p.FINISHED, 3) and time.monotonic() - t0 < 2
    assert batches.wait_finished("0" * 32, 10) is None
    batches.discard(batch_id)
    assert batches.progress(batch_id) is None and batches.results(batch_id) == []


def test_a_worker_still_working_on_a_chunk_keeps_it_from_being_reclaimed(batches):
    batches.submit([b"1", b"2"])
    chunk = batches.claim("slow")
    time.sleep(0.15)
    assert batches.keep("slow", chunk) is True            # still at it: idle time starts again
    assert batches.reclaim_stale("other", min_idle_ms=100) == []
    time.sleep(0.15)                                      # silent past the stale bound: a dead worker's chunk
    (taken,) = batches.reclaim_stale("other", min_idle_ms=100)
    assert (taken.entry_id, taken.deliveries) == (chunk.entry_id, 2)
    assert batches.keep("slow", chunk) is False           # taken over: not stolen back
    assert batches.keep("other", chunk) is True           # the new owner holds it
