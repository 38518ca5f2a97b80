"""Shadow trials: a candidate waits in shadow for live drawings, and exactly one process decides it."""
from shared.messaging import shadow_trials, shadows
from shared.messaging.shadow_trials import Trial
from shared.messaging.shadows import ShadowAnswer


def _tallies(seen, labelled=0, production_right=0, shadow_right=0, agreement=0.9):
    return {"seen": seen, "agreement": agreement, "labelled": labelled,
            "production_right": production_right, "shadow_right": shadow_right}


TRIAL = Trial("v2", drawings=100, parent="v1", since=0.0)


def test_a_trial_puts_the_candidate_in_shadow_on_every_drawing_the_budget_allows(redis_conn):
    trial = shadow_trials.start(redis_conn, "v2", 100, parent="v1")
    assert shadows.active(redis_conn) == {"v2": shadow_trials.TRIAL_SHARE} == {"v2": 1.0}
    assert shadow_trials.get(redis_conn, "v2") == trial
    assert shadow_trials.pending(redis_conn) == {"v2": trial}
    assert shadow_trials.get(redis_conn, "v1") is None


def test_only_one_process_claims_the_decision(redis_conn):
    shadow_trials.start(redis_conn, "v2", 100, parent="v1")
    assert shadow_trials.claim(redis_conn, "v2") is True
    assert shadow_trials.claim(redis_conn, "v2") is False
    assert shadow_trials.pending(redis_conn) == {}


def test_stopping_the_shadow_ends_its_trial_undecided(redis_conn):
    shadow_trials.start(redis_conn, "v2", 100, parent="v1")
    assert shadows.stop(redis_conn, "v2") is True
    assert shadow_trials.get(redis_conn, "v2") is None


def test_recording_returns_the_drawings_seen_in_all(redis_conn):
    group = [ShadowAnswer(f"{i:032x}", 1, 0.9, 1, 0.8) for i in range(3)]
    assert shadows.record(redis_conn, "v2", group, ttl=60) == 3
    assert shadows.record(redis_conn, "v2", group[:2], ttl=60) == 5
    assert shadows.record(redis_conn, "v2", [], ttl=60) == 0


def test_no_verdict_before_the_trials_drawings_are_scored():
    verdict = shadow_trials.judge(_tallies(seen=99, labelled=10, production_right=10, shadow_right=0), TRIAL)
    assert not verdict.ready and not verdict.promote and "99 of 100" in verdict.reason


def test_promoted_when_it_reads_as_many_labelled_drawings_right_as_production():
    verdict = shadow_trials.judge(_tallies(seen=100, labelled=7, production_right=5, shadow_right=5), TRIAL)
    assert verdict.ready and verdict.promote
    assert "of 7 labelled, the candidate read 5 right, production 5" in verdict.reason


def test_rejected_when_it_reads_even_one_labelled_drawing_fewer_right():
    verdict = shadow_trials.judge(_tallies(seen=250, labelled=7, production_right=6, shadow_right=5), TRIAL)
    assert verdict.ready and not verdict.promote and verdict.reason.startswith("shadow trial lost")


def test_with_no_labelled_drawing_the_trial_passes_on_drawings_alone():
    verdict = shadow_trials.judge(_tallies(seen=100), TRIAL)
    assert verdict.ready and verdict.promote and "of 0 labelled" in verdict.reason
