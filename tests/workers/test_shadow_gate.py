"""Shadow trials decided by the predict worker whose scoring completes them: real redis-server, real models."""
import dataclasses

from shared.messaging import canary, shadow_trials, shadows
from shared.messaging.predict_queue import PredictQueue
from shared.messaging.shadows import ShadowAnswer
from testkit.drawings import digit_png


def _answer_drawings(worker, redis_conn, n):
    queue = PredictQueue(redis_conn)
    for d in range(n):
        queue.submit(digit_png(d % 10), limit=100)
    while worker.run_once(block_ms=100) or worker.shadow.backlog:   # answers, then idle-time shadow work
        worker.follow_trials()                                       # what a model event makes it do
    worker.follow_trials()


def _states(worker, version):
    return next(m.states for m in worker.registry.list() if m.model_id == version)


def _trial_counts(worker):
    """The worker's shadow_trials_total by outcome (the metrics are the process's: compare differences)."""
    return {o: worker.metrics.shadow_trials.labels(o)._value.get() for o in ("promoted", "canary", "rejected", "abandoned")}


def _decided(before, after):
    return {o for o in after if after[o] > before[o]}


def test_a_candidate_is_promoted_once_it_has_scored_the_trials_drawings_without_loss(worker, redis_conn, candidate):
    production, counted = worker.registry.production_id(), _trial_counts(worker)
    shadow_trials.start(redis_conn, candidate, 8, parent=production)
    worker.follow_trials()
    _answer_drawings(worker, redis_conn, 5)
    assert worker.registry.production_id() == production              # 5 of 8: still waiting
    assert shadow_trials.get(redis_conn, candidate) is not None
    _answer_drawings(worker, redis_conn, 5)
    assert worker.registry.production_id() == candidate
    assert shadow_trials.pending(redis_conn) == {} and shadows.active(redis_conn) == {}
    assert worker.shadow.models == {}                                   # the shadow stopped with the trial
    assert _decided(counted, _trial_counts(worker)) == {"promoted"}


def test_a_candidate_that_read_a_labelled_drawing_wrong_where_production_was_right_is_rejected(
        worker, redis_conn, candidate):
    production, counted = worker.registry.production_id(), _trial_counts(worker)
    shadow_trials.start(redis_conn, candidate, 5, parent=production)
    worker.follow_trials()
    # earlier in the trial: a user labelled a drawing 3 that production read as 3 and the candidate as 5
    shadows.record(redis_conn, candidate, [ShadowAnswer("a" * 32, 3, 0.9, 5, 0.6)], ttl=60)
    shadows.record_correction(redis_conn, "a" * 32, label=3, production_digit=3)
    _answer_drawings(worker, redis_conn, 5)
    assert worker.registry.production_id() == production
    assert "rejected" in _states(worker, candidate)
    assert shadow_trials.pending(redis_conn) == {} and shadows.active(redis_conn) == {}
    assert _decided(counted, _trial_counts(worker)) == {"rejected"}


def test_a_trial_against_a_production_that_changed_meanwhile_is_abandoned(worker, redis_conn, candidate):
    production, counted = worker.registry.production_id(), _trial_counts(worker)
    shadow_trials.start(redis_conn, candidate, 3, parent="an-earlier-production")
    worker.follow_trials()
    _answer_drawings(worker, redis_conn, 3)
    assert worker.registry.production_id() == production
    assert "rejected" not in _states(worker, candidate)                # still a candidate an operator may promote
    assert _decided(counted, _trial_counts(worker)) == {"abandoned"}


def test_with_a_canary_share_a_passed_trial_makes_the_candidate_the_canary(worker, redis_conn, candidate):
    worker.shadow_gate.config = dataclasses.replace(worker.config, canary_share=0.25)
    production, counted = worker.registry.production_id(), _trial_counts(worker)
    shadow_trials.start(redis_conn, candidate, 3, parent=production)
    worker.follow_trials()
    _answer_drawings(worker, redis_conn, 3)
    running = canary.active(redis_conn)
    assert running is not None and (running.version, running.share, running.production) == (
        candidate, 0.25, production)
    assert worker.registry.production_id() == production
    assert _decided(counted, _trial_counts(worker)) == {"canary"}
