"""A 36-second soak with faults (benchmarks/soak.py --faults) in the regular suite.

A steady mix of HTTP drawings, a Socket.IO page, help images and batches while
one predict worker is killed (and started again, as ``swagdigits up`` would)
and Redis is stopped and started again from its append-only file. The
30-minute version is ``python -m benchmarks.soak --minutes 30 --faults``.
"""
from benchmarks.soak import MAX_GROWTH, soak


def test_a_mix_under_a_killed_worker_and_a_redis_restart_loses_nothing_and_grows_no_process(model_dir):
    report = soak(seconds=36, rate=8, workers=2, help_every=1.0, batch_size=40, warmup=6, model_dir=model_dir,
                  faults=True)
    requests = report["requests"]
    assert len(report["faults"]) == 4, report["faults"]     # killed, started again, Redis down, Redis up
    # Every drawing answered, or refused with a 429/503/504 and a JSON error; none hung or went unanswered.
    assert report["failed"] == 0, report["failures"]
    assert requests["predict"]["ok"] >= 150 and requests["socket_predict"]["ok"] >= 20, requests
    # The page's answers are pushed; one whose push never came (pub/sub keeps nothing while the
    # web's subscriber reconnects) is fetched from /api/jobs as the page does, but only rarely.
    assert report["socket_answers_fetched"] * 4 <= requests["socket_predict"]["ok"], report
    # Every help image the service accepted is stored; every batch item answered exactly once.
    assert report["help_accepted"] >= 20 and report["help_lost"] == 0, report
    assert report["help_stored"] == report["help_accepted"], report
    items = report["batch_items"]
    assert items["checked"] >= 40 and items["lost"] == items["duplicated"] == 0, items
    assert report["rss"] and all(r["growth"] < MAX_GROWTH for r in report["rss"].values()), report["rss"]
