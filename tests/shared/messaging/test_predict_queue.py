"""The queue protocol against a real redis-server: what the web and workers rely on."""
import pytest

from shared.messaging import protocol as p
from shared.messaging.predict_queue import PredictQueue, QueueFull


@pytest.fixture
def queue(redis_conn):
    return PredictQueue(redis_conn, result_ttl=60)


def test_a_submitted_drawing_is_queued_then_claimed_then_finished(queue):
    job_id = queue.submit(b"png-bytes", limit=10, room="sid-1")
    assert queue.status(job_id)["state"] == p.QUEUED
    [job] = queue.claim("w1", count=10, block_ms=100)
    assert (job.job_id, job.image, job.room, job.wants_reply) == (job_id, b"png-bytes", "sid-1", True)
    assert queue.status(job_id)["state"] == p.STARTED
    result = p.PredictionResult(job_id, 3, [0.1] * 10, "v1", {})
    queue.complete([(job, result)])
    assert queue.wait_reply(job_id, timeout=1)["digit"] == 3
    status = queue.status(job_id)
    assert status["state"] == p.FINISHED and status["result"]["model_version"] == "v1"
    assert queue.depth() == 0, "finished entries leave the stream"


def test_claim_takes_everything_waiting_up_to_count(queue):
    ids = [queue.submit(b"x", limit=100) for _ in range(5)]
    jobs = queue.claim("w1", count=3, block_ms=100)
    assert [j.job_id for j in jobs] == ids[:3]
    assert [j.job_id for j in queue.claim("w2", count=10, block_ms=100)] == ids[3:]


def test_a_full_queue_refuses_new_drawings(queue):
    for _ in range(3):
        queue.submit(b"x", limit=3)
    with pytest.raises(QueueFull):
        queue.submit(b"x", limit=3)
    assert queue.depth() == 3


def test_failed_jobs_report_their_error(queue):
    job_id = queue.submit(b"x", limit=10)
    [job] = queue.claim("w1", 1, 100)
    queue.complete([(job, p.PredictionError(job_id, "image data is truncated or corrupt", 422))])
    assert queue.wait_reply(job_id, 1)["error"] == "image data is truncated or corrupt"
    assert queue.status(job_id) == {"job_id": job_id, "state": p.FAILED,
                                    "error": "image data is truncated or corrupt"}


def test_no_reply_means_none_after_the_timeout(queue):
    assert queue.wait_reply("0" * 32, timeout=0.1) is None


def test_a_job_left_by_a_dead_worker_is_reclaimed_with_its_delivery_count(queue):
    job_id = queue.submit(b"x", limit=10)
    queue.claim("dead-worker", 1, 100)
    assert queue.reclaim_stale("w2", min_idle_ms=60_000) == []
    [job] = queue.reclaim_stale("w2", min_idle_ms=0)
    assert job.job_id == job_id and job.deliveries == 2


def test_the_group_is_recreated_after_redis_loses_its_data(queue, redis_conn):
    queue.submit(b"x", limit=10)
    redis_conn.flushdb()
    assert queue.claim("w1", 1, 50) == []
    job_id = queue.submit(b"y", limit=10)
    assert [j.job_id for j in queue.claim("w1", 1, 100)] == [job_id]
