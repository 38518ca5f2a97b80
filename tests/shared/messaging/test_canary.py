"""The canary's state and tallies in Redis, and the rule that rolls it back."""
from shared.messaging import canary
from shared.messaging import protocol as p


def test_a_canary_is_announced_replaced_whole_and_stopped(redis_conn):
    events = redis_conn.pubsub(ignore_subscribe_messages=True)
    events.subscribe(p.MODEL_EVENTS_CHANNEL)
    events.get_message(timeout=0.5)
    canary.start(redis_conn, "v2", 0.1, production="v1")
    assert events.get_message(timeout=2) is not None
    canary.count_answers(redis_conn, "v2", 3, 27)
    canary.start(redis_conn, "v3", 0.2, production="v1")       # one canary at a time, fresh tallies
    running = canary.active(redis_conn)
    assert (running.version, running.share, running.production) == ("v3", 0.2, "v1")
    assert canary.stats(redis_conn, "v3")["canary_answers"] == 0
    assert canary.stop(redis_conn).version == "v3" and canary.active(redis_conn) is None
    assert canary.stop(redis_conn) is None


def test_corrections_count_for_the_side_that_answered(redis_conn):
    running = canary.start(redis_conn, "v2", 0.5, production="v1")
    canary.count_answers(redis_conn, "v2", 40, 60)
    assert canary.count_correction(redis_conn, running, "v2")
    assert canary.count_correction(redis_conn, running, "v1")
    assert not canary.count_correction(redis_conn, running, "v0")   # an answer from before the canary
    stats = canary.stats(redis_conn, "v2")
    assert (stats["canary_correction_rate"], stats["production_correction_rate"]) == (0.025, round(1 / 60, 5))


def test_the_canary_is_rolled_back_only_on_enough_answers_and_a_clear_excess():
    def tallies(ca, cc, pa, pc):
        return {"canary_answers": ca, "canary_corrections": cc, "production_answers": pa,
                "production_corrections": pc, "canary_correction_rate": cc / ca if ca else None,
                "production_correction_rate": pc / pa if pa else None}

    assert not canary.judge(tallies(50, 40, 500, 5), min_answers=200, margin=0.05).rollback   # too few yet
    assert canary.judge(tallies(200, 30, 1800, 36), min_answers=200, margin=0.05).rollback    # 15% vs 2%
    assert not canary.judge(tallies(200, 12, 1800, 36), min_answers=200, margin=0.05).rollback  # 6% vs 2%
    assert not canary.judge(tallies(300, 0, 0, 0), min_answers=200, margin=0.05).rollback     # nobody corrects
