"""A snapshot of the queues for dashboards: depth and oldest age per queue, live predict workers.

Read when Prometheus scrapes (``web.metrics``), never on the hot path: one
pipelined round trip for both streams, RQ's public API for the retrain queue
and the heartbeat registry for workers.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from shared.messaging import heartbeat, retrain_trigger, streams
from shared.messaging import protocol as p
from shared.messaging.streams import StreamStats


@dataclass(frozen=True)
class QueueState:
    streams: dict[str, StreamStats]     # by label: "predict", "batch"
    retrain_depth: int
    retrain_oldest_age_s: float
    predict_workers: int


def read(conn: redis.Redis, heartbeat_s: int) -> QueueState:
    now = time.time()
    pipe = conn.pipeline(transaction=False)
    for stream in p.STREAMS.values():
        streams.stats_pipelined(pipe, stream)
    replies = pipe.execute(raise_on_error=False)
    stats = {label: streams.stats_from(replies[i * 3:i * 3 + 3], now) for i, label in enumerate(p.STREAMS)}
    retrain_depth, retrain_age = retrain_trigger.queue_stats(conn)
    workers = heartbeat.live_workers(conn, heartbeat_s, role="predict")
    return QueueState(stats, retrain_depth, retrain_age, len(workers))
