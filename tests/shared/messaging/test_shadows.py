"""Shadow tallies in Redis: started and stopped by operators, added to by workers and by corrections."""
import pytest

from shared.messaging import protocol as p
from shared.messaging import shadows
from shared.messaging.shadows import ShadowAnswer


def test_starting_and_stopping_a_shadow_tells_every_worker(redis_conn):
    events = redis_conn.pubsub(ignore_subscribe_messages=True)
    events.subscribe(p.MODEL_EVENTS_CHANNEL)
    events.get_message(timeout=0.5)
    shadows.start(redis_conn, "v2", 0.25)
    assert shadows.active(redis_conn) == {"v2": 0.25}
    assert events.get_message(timeout=2) is not None
    assert shadows.stop(redis_conn, "v2") is True
    assert shadows.active(redis_conn) == {} and shadows.stop(redis_conn, "v2") is False
    assert events.get_message(timeout=2) is not None


def test_tallies_add_up_across_groups_and_corrections_score_both_models(redis_conn):
    shadows.record(redis_conn, "v2", [ShadowAnswer("a" * 32, 7, 0.9, 7, 0.8),
                                      ShadowAnswer("b" * 32, 1, 0.6, 7, 0.7)], ttl=60)
    shadows.record(redis_conn, "v2", [ShadowAnswer("c" * 32, 3, 0.5, 3, 0.9)], ttl=60)
    # the user says drawing b was a 7: the shadow was right, production wrong
    assert shadows.record_correction(redis_conn, "b" * 32, label=7, production_digit=1) == 1
    assert shadows.record_correction(redis_conn, "b" * 32, label=7, production_digit=1) == 0  # counted once
    assert shadows.record_correction(redis_conn, "f" * 32, label=7, production_digit=1) == 0  # no shadow saw it
    stats = shadows.stats(redis_conn, "v2")
    assert stats["seen"] == 3 and stats["agreement"] == pytest.approx(2 / 3, abs=1e-4)
    assert stats["production_mean_confidence"] == pytest.approx(2.0 / 3, abs=1e-4)
    assert stats["shadow_mean_confidence"] == pytest.approx(0.8, abs=1e-4)
    assert stats["labelled"] == 1
    assert (stats["production_accuracy_on_labelled"], stats["shadow_accuracy_on_labelled"]) == (0.0, 1.0)
    assert (stats["production_right"], stats["shadow_right"]) == (0, 1)
    assert 0 < redis_conn.ttl(p.SHADOW_ANSWERS_KEY.format("a" * 32)) <= 60   # kept only as long as results


def test_a_version_never_shadowed_has_empty_tallies(redis_conn):
    assert shadows.stats(redis_conn, "nope") == {
        "seen": 0, "agreement": None, "production_mean_confidence": None, "shadow_mean_confidence": None,
        "labelled": 0, "production_right": 0, "shadow_right": 0,
        "production_accuracy_on_labelled": None, "shadow_accuracy_on_labelled": None}
