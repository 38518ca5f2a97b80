"""The retraining job in-process, against a real redis-server and a real model store."""
import json
import threading
from dataclasses import replace

import numpy as np
import pytest

from shared.messaging import protocol as p
from shared.model.training import fitting as training
from shared.messaging import retrain_trigger
from shared.model import families
from shared.model.base import Trained
from shared.model.store import REJECTED, ArtifactMismatch, ModelRegistry
from tests.fakes import RecordingPusher
from shared.model.features import INK
from workers import retrain_job




def _events(redis_conn):
    pubsub = redis_conn.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(p.MODEL_EVENTS_CHANNEL)
    pubsub.get_message(timeout=0.5)
    return pubsub


def test_a_good_candidate_is_versioned_promoted_and_announced(config, redis_conn, help_store):
    registry = ModelRegistry(config.model_dir)
    parent = registry.production_id()
    events, pusher = _events(redis_conn), RecordingPusher()
    result = retrain_job.retrain(config, redis_conn, registry, help_store, reason="test", pusher=pusher)

    assert result["outcome"] == "promoted", result
    new = result["model_id"]
    assert registry.production_id() == new and new != parent
    meta = registry.info(new)["extra"]
    assert meta["parent"] == parent and meta["gate"]["passed"] is True
    assert meta["n_help_images"] + meta["n_help_holdout"] == 40 and meta["n_help_images"] > 0
    assert meta["n_holdout"] == meta["n_help_holdout"] + len(training.shipped_digits()[1].y)
    assert set(meta["libraries"]) >= {"scikit-learn", "numpy"}
    assert meta["production_scores"]["eval_accuracy"] > 0.5
    assert len(meta["reference"]["digit_share"]) == 10 and sum(meta["reference"]["confidence_hist"]) > 100
    message = events.get_message(timeout=2)
    assert json.loads(message["data"])["model_version"] == new
    assert pusher.events == [(p.EVENT_MODEL_CHANGED, {"model_version": new, "previous": parent}, None)]
    assert help_store.pending() == 0
    assert retrain_trigger.status(redis_conn) == {"waiting": None, "running": None}


def test_a_worse_candidate_is_rejected_kept_and_production_stays(config, redis_conn, help_store, monkeypatch):
    def bad_fit(train, appended_weight=1.0, family=None):  # learns shuffled labels: far worse than production
        linear = families.get("linear")
        shuffled = np.random.default_rng(0).permutation(train.y)
        return Trained(linear, linear.build().fit(train.X, shuffled))

    monkeypatch.setattr(training, "fit", bad_fit)
    registry = ModelRegistry(config.model_dir)
    production = registry.production_id()
    result = retrain_job.retrain(config, redis_conn, registry, help_store, reason="test")

    assert result["outcome"] == "rejected"
    assert registry.production_id() == production
    rejected = result["model_id"]
    assert REJECTED in [m.states for m in registry.list() if m.model_id == rejected][0]
    gate = registry.info(rejected)["extra"]["gate"]
    assert gate["passed"] is False and "<" in gate["reason"]
    assert help_store.pending() == 0, "a rejected run still used the help data"


def test_held_back_help_images_are_never_trained_on(config, help_store):
    from shared.images.upload import ImageLimits

    limits = ImageLimits.from_config(config)
    data = retrain_job.load_help(help_store.entries(), help_store.holdout(0.5), limits, INK)
    assert len(data.train.y) + len(data.holdout.y) == 40 and len(data.holdout.y) > 5
    train_rows = {r.tobytes() for r in data.train.X}
    assert not any(r.tobytes() in train_rows for r in data.holdout.X)
    again = retrain_job.load_help(help_store.entries(), help_store.holdout(0.5), limits, INK)
    assert np.array_equal(again.holdout.X, data.holdout.X), "the split must never change"


@pytest.mark.parametrize("candidate, production, tolerance, passed", [
    (0.95, 0.95, 0.0, True), (0.948, 0.95, 0.005, True), (0.94, 0.95, 0.005, False), (0.5, None, 0.0, True)])
def test_the_gate(candidate, production, tolerance, passed):
    assert retrain_job.gate(candidate, production, tolerance)[0] is passed


def test_concurrent_requests_coalesce_into_one_waiting_job(redis_conn):
    barrier = threading.Barrier(16)
    answers = []

    def trigger():
        barrier.wait()
        answers.append(retrain_trigger.request_retrain(redis_conn, reason="burst"))

    threads = [threading.Thread(target=trigger) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({a.job_id for a in answers}) == 1 and sum(a.queued for a in answers) == 1
    assert retrain_trigger.retrain_queue(redis_conn).count == 1


def test_one_running_and_one_waiting_however_many_requests(redis_conn):
    first = retrain_trigger.request_retrain(redis_conn, reason="a")
    with retrain_trigger.running_slot(redis_conn, first.job_id):
        # first is training now: new requests make exactly one more job wait.
        follow_ups = {retrain_trigger.request_retrain(redis_conn, reason="b").job_id for _ in range(5)}
        assert len(follow_ups) == 1 and first.job_id not in follow_ups
        assert retrain_trigger.status(redis_conn) == {"waiting": follow_ups.pop(), "running": first.job_id}
    assert retrain_trigger.status(redis_conn)["running"] is None


def test_a_waiting_marker_whose_job_ended_is_replaced(redis_conn):
    first = retrain_trigger.request_retrain(redis_conn, reason="a")
    retrain_trigger.retrain_queue(redis_conn).fetch_job(first.job_id).delete()
    redis_conn.expire(p.RETRAIN_WAITING_KEY, 60)   # old enough not to be "being enqueued"
    second = retrain_trigger.request_retrain(redis_conn, reason="b")
    assert second.queued and second.job_id != first.job_id


def test_the_threshold_rule_fires_once_per_threshold():
    fired = [n for n in range(1, 350) if retrain_trigger.should_trigger(n, 100)]
    assert fired == [100, 200, 300]
    assert not any(retrain_trigger.should_trigger(n, 0) for n in range(1, 50))


def test_the_retrain_worker_lowers_its_priority(monkeypatch):
    from workers import retrain_worker

    calls = []
    monkeypatch.setattr(retrain_worker.os, "nice", lambda inc: calls.append(inc) or 10 + inc)
    assert retrain_worker.lower_priority(7) == 17 and calls == [7]


@pytest.mark.parametrize("tolerance, outcome", [(0.005, "rejected"), (0.02, "promoted")])
def test_the_configured_tolerance_decides_a_candidate_one_point_below_production(
        config, redis_conn, help_store, monkeypatch, tolerance, outcome):
    """Scores are fixed (candidate 0.94, production 0.95 on the evaluation set, equal on the guard
    set); what is checked is the real verdict, and that the store follows it."""
    guard = {"guard_accuracy": 0.95, "guard_recall": [0.95] * 10}
    registry = ModelRegistry(config.model_dir)
    production = registry.production_id()

    def fixed_scores(model, sets):                   # production reads 0.95, any candidate 0.94
        accuracy = 0.95 if getattr(model, "version", None) == production else 0.94
        return {**guard, "eval_accuracy": accuracy, "shipped_holdout_accuracy": accuracy}

    monkeypatch.setattr(retrain_job, "_scores", fixed_scores)

    def quick_fit(train, appended_weight=1.0, family=None):   # a real model, in a second
        linear = families.get("linear")
        return Trained(linear, linear.build().fit(train.X, train.y))

    monkeypatch.setattr(training, "fit", quick_fit)
    result = retrain_job.retrain(replace(config, promotion_tolerance=tolerance), redis_conn, registry,
                                 help_store, reason="t")
    assert result["outcome"] == outcome, result
    states = {m.model_id: m.states for m in registry.list()}
    if outcome == "promoted":
        assert registry.production_id() == result["model_id"]
    else:
        assert registry.production_id() == production and states[result["model_id"]] == (REJECTED,)
    assert registry.info(result["model_id"])["extra"]["gate"]["tolerance"] == tolerance


def test_a_production_model_of_another_feature_space_does_not_block_retraining(
        config, redis_conn, help_store, monkeypatch):
    """After a preprocessing change the old model cannot score new features: judge the candidate alone."""
    registry = ModelRegistry(config.model_dir)
    old = registry.production_id()

    def refused():
        raise ArtifactMismatch(f"model {old} was trained on features 'ink:older'")

    monkeypatch.setattr(registry, "load_production", refused)
    result = retrain_job.retrain(config, redis_conn, registry, help_store, reason="test")
    assert result["outcome"] == "promoted" and "no usable production" in result["reason"]
    assert registry.info(result["model_id"])["extra"]["parent"] == old


def _scores(guard, recall, evaluation=0.95):
    return {"guard_accuracy": guard, "guard_recall": recall, "eval_accuracy": evaluation}


def test_a_candidate_that_forgets_other_styles_is_rejected_whatever_it_gains(config):
    production = _scores(0.95, [0.95] * 10, evaluation=0.90)
    better_on_help = _scores(0.935, [0.935] * 10, evaluation=0.99)   # -1.5 points on the guard set
    passed, why = retrain_job.judge(better_on_help, production, config)
    assert not passed and "guard set" in why
    slight = _scores(0.945, [0.945] * 10, evaluation=0.99)           # -0.5 points: allowed
    assert retrain_job.judge(slight, production, config)[0]


def test_a_candidate_that_stops_reading_one_digit_is_rejected(config):
    production = _scores(0.95, [0.95] * 10)
    sevens_lost = _scores(0.945, [0.96] * 7 + [0.88] + [0.96] * 2)   # overall fine, 7s down 7 points
    passed, why = retrain_job.judge(sevens_lost, production, config)
    assert not passed and "reads 7s" in why


def test_the_guard_set_is_fixed_and_never_trained_on():
    guard = training.guard_set()
    again = training.guard_set()
    np.testing.assert_array_equal(guard.X, again.X)
    shipped_held_out = training.shipped_digits()[1]
    n = len(shipped_held_out.y)
    scan_guard = training.scan_sets()[1]
    assert len(guard.y) == n + training.GUARD_SYNTHETIC + len(scan_guard.y)
    assert len(scan_guard.y) >= 900, "scanned writers are guarded too"
    np.testing.assert_array_equal(guard.X[:n], shipped_held_out.X)   # the split training never sees
    trained_rows = {r.tobytes() for r in training._fixed_extra().X}  # its synthetic part is drawn anew
    synthetic_guard = guard.X[n:n + training.GUARD_SYNTHETIC]
    assert not any(r.tobytes() in trained_rows for r in synthetic_guard)
    # (its scans are other images than those trained on: tests/shared/model/training/test_scans.py)


def test_with_a_canary_share_a_good_candidate_answers_that_share_instead_of_going_live(
        config, redis_conn, help_store):
    from shared.messaging import canary

    registry = ModelRegistry(config.model_dir)
    parent = registry.production_id()
    result = retrain_job.retrain(replace(config, canary_share=0.2), redis_conn, registry, help_store,
                                 reason="test")
    assert result["outcome"] == "canary", result
    assert registry.production_id() == parent
    running = canary.active(redis_conn)
    assert (running.version, running.share, running.production) == (result["model_id"], 0.2, parent)


def test_with_a_shadow_gate_a_good_candidate_waits_in_shadow_for_live_drawings(config, redis_conn, help_store):
    from shared.messaging import shadow_trials, shadows

    registry = ModelRegistry(config.model_dir)
    parent = registry.production_id()
    result = retrain_job.retrain(replace(config, shadow_gate_drawings=300, canary_share=0.2), redis_conn,
                                 registry, help_store, reason="test")
    assert result["outcome"] == "shadow", result           # the trial comes first; a canary may follow it
    assert registry.production_id() == parent
    trial = shadow_trials.get(redis_conn, result["model_id"])
    assert (trial.drawings, trial.parent) == (300, parent)
    assert shadows.active(redis_conn) == {result["model_id"]: 1.0}


def test_held_back_operator_imports_join_the_trusted_guard_set_and_crowd_images_do_not(
        config, redis_conn, help_store):
    from shared.images.upload import ImageLimits
    from testkit.drawings import digit_png

    for d in range(10):    # an operator's own data, stored as `swagdigits import` stores it
        for brush in (10, 14, 18, 22, 26):
            help_store.add(digit_png(d, brush=brush), d, client="swagdigits import", trusted=True)
    config = replace(config, help_holdout_share=0.5)   # both kinds surely held back, whatever the secret
    holdout = help_store.holdout(config.help_holdout_share)
    entries = help_store.entries()
    held_trusted = sorted(e.label for e in entries if e.trusted and holdout(e.sha256))
    held_crowd = [e for e in entries if not e.trusted and holdout(e.sha256)]
    assert held_trusted and held_crowd

    data = retrain_job.load_help(entries, holdout, ImageLimits.from_config(config), INK)
    assert sorted(data.trusted_holdout().y.tolist()) == held_trusted
    assert len(data.holdout.y) == len(held_trusted) + len(held_crowd)

    registry = ModelRegistry(config.model_dir)
    result = retrain_job.retrain(config, redis_conn, registry, help_store, reason="test")
    metadata = registry.info(result["model_id"])["extra"]
    assert metadata["n_guard_trusted_imports"] == len(held_trusted)
    assert metadata["n_guard"] == len(training.guard_set(INK).y) + len(held_trusted)
