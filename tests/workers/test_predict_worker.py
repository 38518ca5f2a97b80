"""The predict worker in-process, against a real redis-server and a real model store."""
import pytest

from shared.messaging import protocol as p
from shared.messaging.predict_queue import PredictQueue
from shared.model.store import ModelRegistry
from shared.model.training.publishing import train_initial
from testkit.drawings import digit_png
from tests.fakes import RecordingPusher
from workers.predict_worker import PredictWorker




@pytest.fixture
def worker(config, redis_conn):
    w = PredictWorker(config, redis_conn, ModelRegistry(config.model_dir), RecordingPusher(), name="w-test")
    w.lifecycle.load_at_start()
    return w


def test_answers_carry_digit_probabilities_version_and_timings(worker, redis_conn):
    queue = PredictQueue(redis_conn)
    job_id = queue.submit(digit_png(7), limit=10)
    assert worker.run_once(block_ms=100) == 1
    reply = queue.wait_reply(job_id, 1)
    assert reply["digit"] == 7
    assert len(reply["probabilities"]) == 10 and abs(sum(reply["probabilities"]) - 1) < 1e-3
    assert reply["model_version"] == worker.holder.version
    assert set(reply["timings"]) >= {"queue_wait_ms", "preprocess_ms", "predict_ms", "batch_size"}


def test_waiting_drawings_are_predicted_together_and_bad_ones_fail_alone(worker, redis_conn):
    queue = PredictQueue(redis_conn)
    good = [queue.submit(digit_png(d), limit=50) for d in (0, 1, 4)]
    bad = queue.submit(digit_png(5)[:200], limit=50)  # truncated PNG: header fine, data not
    assert worker.run_once(block_ms=100) == 4
    replies = [queue.wait_reply(j, 1) for j in good]
    assert [r["digit"] for r in replies] == [0, 1, 4]
    assert {r["timings"]["batch_size"] for r in replies} == {4}
    assert queue.wait_reply(bad, 1)["status"] == 422
    assert queue.status(bad)["state"] == p.FAILED


def test_results_for_a_socket_room_are_pushed_to_that_room_only(worker, redis_conn):
    queue = PredictQueue(redis_conn)
    job_id = queue.submit(digit_png(1), limit=10, room="browser-a", wants_reply=False)
    worker.run_once(block_ms=100)
    [(event, data, room)] = worker.pusher.events
    assert (event, data["job_id"], room) == (p.EVENT_PREDICTION, job_id, "browser-a")
    assert not redis_conn.exists(p.REPLY_KEY.format(job_id)), "nobody waits over HTTP"


def test_a_job_whose_worker_died_twice_is_reported_failed(worker, redis_conn):
    queue = PredictQueue(redis_conn)
    job_id = queue.submit(digit_png(1), limit=10)
    queue.claim("dead-1", 1, 100)
    queue.reclaim_stale("dead-2", min_idle_ms=0)  # second delivery, also lost
    worker._stale_ms = 0
    worker.run_once(block_ms=100)
    assert queue.wait_reply(job_id, 1)["error"] == "the worker handling this drawing died"


def test_a_worker_on_an_empty_store_trains_and_publishes_a_model(config, redis_conn, tmp_path, caplog):
    registry = ModelRegistry(tmp_path / "empty-store")
    w = PredictWorker(config, redis_conn, registry, name="w-bootstrap")
    with caplog.at_level("WARNING"):
        w.lifecycle.load_at_start()
    assert "no production model" in caplog.text
    assert w.holder.version == registry.production_id()


def test_refresh_swaps_in_a_newly_promoted_model_whole(worker):
    old = worker.holder.current
    new_id, _ = train_initial(worker.registry, source="test")
    assert worker.lifecycle.refresh() is True
    assert worker.holder.version == new_id and worker.holder.current is not old
    assert worker.lifecycle.refresh() is False


def test_a_corrupted_new_model_is_refused_and_the_old_one_keeps_serving(worker, caplog):
    old_version = worker.holder.version
    new_id, _ = train_initial(worker.registry, source="test")
    with open(worker.registry.info(new_id)["storage"]["path"], "r+b") as fh:
        fh.seek(30)
        fh.write(b"garbage")
    assert worker.lifecycle.refresh() is False
    assert worker.holder.version == old_version
    assert "refused" in caplog.text


def test_a_batch_chunk_is_predicted_in_input_order_with_progress_pushed(worker, redis_conn):
    from shared.messaging.batch_queue import BatchQueue

    batches = BatchQueue(redis_conn, chunk_size=worker.config.batch_chunk_size)
    digits = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3]
    batch_id, _ = batches.submit([digit_png(d) for d in digits] + [b"\x89PNG\r\n\x1a\ntruncated"])
    while worker.run_once(block_ms=100):
        pass
    results = batches.results(batch_id)
    assert [r["index"] for r in results] == list(range(11))
    right = sum(r.get("digit") == d for r, d in zip(results, digits))
    assert right >= 8 and "error" in results[10]
    assert {r["model_version"] for r in results[:10]} == {worker.holder.version}
    event, data, room = worker.pusher.events[-1]
    assert (event, room) == (p.EVENT_BATCH_PROGRESS, p.BATCH_ROOM.format(batch_id))
    assert (data["state"], data["done"], data["total"]) == (p.FINISHED, 11, 11)


def test_waiting_drawings_go_before_batch_chunks(worker, redis_conn):
    from shared.messaging.batch_queue import BatchQueue

    batch_id, _ = BatchQueue(redis_conn).submit([digit_png(1)] * 5)
    job_id = PredictQueue(redis_conn).submit(digit_png(7), limit=10)
    assert worker.run_once(block_ms=100) == 1, "the drawing alone, not the batch"
    assert PredictQueue(redis_conn).wait_reply(job_id, 1)["digit"] == 7
    assert BatchQueue(redis_conn).progress(batch_id).done == 0


def test_a_drawing_arriving_during_a_chunk_is_answered_before_the_chunk_ends(worker, redis_conn):
    from shared.messaging.batch_queue import BatchQueue

    batches = BatchQueue(redis_conn, chunk_size=32)
    batch_id, _ = batches.submit([digit_png(d % 10) for d in range(32)])
    chunk = batches.claim("w-test")
    job_id = PredictQueue(redis_conn).submit(digit_png(4), limit=10)
    answered_before_chunk = []
    original_record = worker.batches.record

    def record(chunk, results):
        answered_before_chunk.append(redis_conn.exists(p.REPLY_KEY.format(job_id)))
        return original_record(chunk, results)

    worker.batches.record = record
    worker.process_chunk(chunk)
    assert answered_before_chunk == [1]
    assert batches.progress(batch_id).state == p.FINISHED


def test_a_chunk_the_worker_is_still_computing_is_not_taken_over_by_another(worker, redis_conn, monkeypatch):
    """A slow worker looked dead to the stale rule, so another recomputed its work (issue 17: 40 heavy
    drawings computed 78 times); a worker now renews its claim while it works on a chunk."""
    import time

    from shared.messaging.batch_queue import BatchQueue
    from workers import predict_worker

    monkeypatch.setattr(predict_worker, "KEEP_CLAIM_S", 0.05)
    batches, queue = BatchQueue(redis_conn, chunk_size=32), PredictQueue(redis_conn)
    batch_id, _ = batches.submit([digit_png(d % 10) for d in range(16)])     # 4 slices
    chunk = batches.claim("w-test")
    taken, original = [], worker.process

    def slow_process(jobs):
        taken.extend(batches.reclaim_stale("w-other", min_idle_ms=150))   # another worker looks for dead work
        original(jobs)
        time.sleep(0.2)                                                   # this one is slow, not dead
        queue.submit(digit_png(1), limit=100)                             # and keeps getting drawings

    worker.process = slow_process
    queue.submit(digit_png(4), limit=100)
    worker.process_chunk(chunk)
    assert taken == []
    assert batches.progress(batch_id).state == p.FINISHED


def test_a_production_model_that_cannot_score_todays_features_is_replaced_at_start(
        config, redis_conn, caplog, monkeypatch):
    import dataclasses

    import numpy as np

    from shared.model import families
    from shared.model.base import Trained
    from shared.model.features import INK

    linear = families.get("linear")
    older = type("OlderLinear", (type(linear),), {    # the same family as an older release computed it
        "pipeline": dataclasses.replace(INK, params={**INK.params, "target_thickness": 5.0})})()
    monkeypatch.setitem(families._registry, "linear", older)
    registry = ModelRegistry(config.model_dir)
    rows = np.random.default_rng(0).random((20, INK.size))
    old = registry.publish(Trained(older, older.build().fit(rows, list(range(10)) * 2)), {})
    registry.promote(old)
    monkeypatch.setitem(families._registry, "linear", linear)   # today's release
    w = PredictWorker(config, redis_conn, registry, name="w-upgrade")
    with caplog.at_level("WARNING"):
        w.lifecycle.load_at_start()
    assert w.holder.version != old and w.holder.version == registry.production_id()
    assert "trained on features" in caplog.text


def test_a_new_model_failing_its_smoke_prediction_is_refused_and_the_old_one_keeps_serving(
        worker, redis_conn, caplog):
    """Checksum and fingerprint fine, answers not: NaN weights make every probability NaN."""
    import numpy as np

    from shared.model import families
    from shared.model.base import Trained

    family = families.get("linear")
    rng = np.random.default_rng(0)
    estimator = family.build().fit(rng.normal(size=(40, family.pipeline.size)), np.arange(40) % 10)
    estimator[-1].coef_[:] = np.nan
    broken = worker.registry.publish(Trained(family, estimator), {"source": "test: NaN weights"})
    worker.registry.promote(broken)
    old_version = worker.holder.version
    failures = worker.metrics.model_swap_failures._value.get()

    assert worker.lifecycle.refresh() is False
    assert worker.holder.version == old_version
    assert worker.metrics.model_swap_failures._value.get() == failures + 1
    assert f"model {broken}" in caplog.text and "refused" in caplog.text
    queue = PredictQueue(redis_conn)
    job_id = queue.submit(digit_png(7), limit=10)
    worker.run_once(block_ms=100)
    reply = queue.wait_reply(job_id, 1)
    assert (reply["digit"], reply["model_version"]) == (7, old_version)
