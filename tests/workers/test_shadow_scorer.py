"""Shadow models in a predict worker: real redis-server, real models, answers first."""
from shared.messaging import shadows
from shared.messaging.predict_queue import PredictQueue
from testkit.drawings import digit_png


def _answer_drawings(worker, redis_conn, digits):
    queue = PredictQueue(redis_conn)
    job_ids = [queue.submit(digit_png(d), limit=100) for d in digits]
    while worker.run_once(block_ms=100) or worker.shadow.backlog:   # answers, then idle-time shadow work
        pass
    return job_ids


def test_a_shadow_scores_every_answered_drawing_at_share_one(worker, redis_conn, candidate):
    shadows.start(redis_conn, candidate, 1.0)
    worker.shadow.refresh()
    _answer_drawings(worker, redis_conn, range(10))
    stats = shadows.stats(redis_conn, candidate)
    assert stats["seen"] == 10
    assert 0.5 <= stats["agreement"] <= 1.0            # two decent models mostly agree on clean digits
    assert 0 < stats["shadow_mean_confidence"] <= 1
    assert worker.holder.version != candidate          # production still answers


def test_a_share_samples_drawings_and_stopping_ends_it(worker, redis_conn, candidate):
    shadows.start(redis_conn, candidate, 0.3)
    worker.shadow.refresh()
    _answer_drawings(worker, redis_conn, [d % 10 for d in range(60)])
    seen = shadows.stats(redis_conn, candidate)["seen"]
    assert 3 <= seen <= 40, seen
    shadows.stop(redis_conn, candidate)
    worker.shadow.refresh()
    _answer_drawings(worker, redis_conn, range(10))
    assert shadows.stats(redis_conn, candidate)["seen"] == seen


def test_over_its_cpu_budget_a_worker_skips_the_shadow(worker, redis_conn, candidate):
    shadows.start(redis_conn, candidate, 1.0)
    worker.shadow.refresh()
    worker.shadow.max_cpu = 0.0                         # no CPU at all for shadows
    _answer_drawings(worker, redis_conn, range(5))
    assert shadows.stats(redis_conn, candidate)["seen"] == 0


def test_shadow_work_waits_until_no_drawing_does(worker, redis_conn, candidate):
    shadows.start(redis_conn, candidate, 1.0)
    worker.shadow.refresh()
    worker.shadow.max_cpu = 1e9   # this is about when shadows score, not how much: on a busy machine
    #                               one preempted scoring must not put the second group over budget
    queue = PredictQueue(redis_conn)
    queue.submit(digit_png(3), limit=100)
    assert worker.run_once(block_ms=100) == 1                 # answered; its shadow scoring is kept for later
    queue.submit(digit_png(4), limit=100)
    assert worker.run_once(block_ms=100) == 1                 # the next drawing comes before it
    assert shadows.stats(redis_conn, candidate)["seen"] == 0 and len(worker.shadow.backlog) == 2
    assert worker.run_once(block_ms=100) == 0 and worker.run_once(block_ms=100) == 0   # idle: both groups
    assert shadows.stats(redis_conn, candidate)["seen"] == 2 and not worker.shadow.backlog


def test_a_version_that_cannot_load_is_not_shadowed_and_answers_go_on(worker, redis_conn):
    shadows.start(redis_conn, "no-such-version", 1.0)
    worker.shadow.refresh()
    assert worker.shadow.models == {}
    assert len(_answer_drawings(worker, redis_conn, range(3))) == 3
