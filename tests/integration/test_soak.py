"""A 30-second soak (benchmarks/soak.py) in the regular suite: nothing fails, nothing grows.

The 10-minute version is ``python -m benchmarks.soak``; the figures of a run
are in the issue-8 report.
"""
from benchmarks.soak import MAX_GROWTH, MAX_REFUSED_SHARE, soak


def test_a_steady_mix_for_30_seconds_loses_nothing_and_grows_no_process(model_dir):
    report = soak(seconds=30, rate=8, workers=2, help_every=1.0, batch_size=40, warmup=6, model_dir=model_dir)
    requests = report["requests"]
    assert report["failed"] == 0, report["failures"]   # a 503 counts: Redis stays up, the queue never fills
    # Only the rate limits refuse, and rarely: the mix is paced inside them.
    assert all(share <= MAX_REFUSED_SHARE for share in report["refused_share"].values()), report
    assert requests["predict"]["ok"] >= 150 and requests["help"]["ok"] >= 20, requests
    assert requests.get("batch_result", {}).get("ok", 0) >= 1, requests
    assert all(growth < MAX_GROWTH for growth in report["rss_growth"].values()), report
    assert report["max_queue_depth"] < 200, report
