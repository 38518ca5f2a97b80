"""Workers announce they are alive (and which model they serve) so readiness can tell."""
from __future__ import annotations

import time

import redis

from shared.messaging import protocol as p


def beat(conn: redis.Redis, name: str, info: dict, interval_s: int) -> None:
    key = p.WORKER_KEY.format(name)
    pipe = conn.pipeline(transaction=False)
    pipe.zadd(p.WORKERS_KEY, {name: time.time()})
    pipe.hset(key, mapping={k: str(v) for k, v in info.items()})
    pipe.expire(key, interval_s * 3)
    pipe.execute()


def leave(conn: redis.Redis, name: str) -> None:
    pipe = conn.pipeline(transaction=False)
    pipe.zrem(p.WORKERS_KEY, name)
    pipe.delete(p.WORKER_KEY.format(name))
    pipe.execute()


def live_workers(conn: redis.Redis, interval_s: int, role: str | None = None) -> list[dict]:
    """Workers whose last beat is within three intervals, with what they reported."""
    since = time.time() - interval_s * 3
    conn.zremrangebyscore(p.WORKERS_KEY, "-inf", time.time() - interval_s * 30)
    names = [n.decode() for n in conn.zrangebyscore(p.WORKERS_KEY, since, "+inf")]
    if not names:
        return []
    pipe = conn.pipeline(transaction=False)
    for name in names:
        pipe.hgetall(p.WORKER_KEY.format(name))
    workers = []
    for name, raw in zip(names, pipe.execute()):
        info = {k.decode(): v.decode() for k, v in raw.items()}
        if raw and (role is None or info.get("role") == role):
            workers.append({"name": name, **info})
    return workers
