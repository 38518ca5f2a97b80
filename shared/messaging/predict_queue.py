"""The prediction queue: how the web tier hands drawings to workers and gets answers back.

Why not one RQ job per drawing: an RQ job costs ~57 Redis commands and a
prediction ~2 ms, so RQ bookkeeping would dominate. Here a drawing costs the
web tier two round trips (one scripted enqueue, one BLPOP for the pushed
reply) and a worker two per *group* of drawings (one XREADGROUP that takes
everything waiting, one pipelined write of all results), which gives
adaptive batching for free: an idle service answers one drawing at once,
a busy one predicts many per call.

Streams with a consumer group (rather than lists) keep a claimed-but-unfinished
entry in the group's pending list, so a job whose worker died can be found and
retried (``reclaim_stale``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import redis

from shared.messaging import protocol as p
from shared.messaging.ids import new_id
from shared.messaging.streams import StreamGroup, autoclaim

_ENQUEUE_LUA = """
local depth = redis.call('XLEN', KEYS[1])
if depth >= tonumber(ARGV[1]) then return -1 end
redis.call('HSET', KEYS[2], 'state', ARGV[8], 'enqueued_at', ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('XADD', KEYS[1], '*', 'id', ARGV[4], 'image', ARGV[5], 't', ARGV[3], 'room', ARGV[6], 'reply', ARGV[7])
return depth
"""


class QueueFull(RuntimeError):
    """More drawings are waiting than the configured limit: back off and retry."""


@dataclass(frozen=True)
class Job:
    """A drawing a worker has claimed."""

    entry_id: str
    job_id: str
    image: bytes
    enqueued_at: float
    room: str
    wants_reply: bool
    deliveries: int = 1


class PredictQueue:
    """Both ends of the prediction stream; web and workers share this one definition."""

    def __init__(self, conn: redis.Redis, stream: str = p.PREDICT_STREAM, result_ttl: int = 300,
                 reply_conn: redis.Redis | None = None):
        """``reply_conn`` (default ``conn``) serves the blocking wait for an answer: its socket
        timeout must outlast the wait, which a short request-path timeout does not."""
        self.conn = conn
        self.reply_conn = reply_conn if reply_conn is not None else conn
        self.stream = stream
        self.result_ttl = result_ttl
        self._enqueue = conn.register_script(_ENQUEUE_LUA)
        self.group = StreamGroup(conn, stream)

    # -- web side ----------------------------------------------------------
    def submit(self, image: bytes, limit: int, room: str = "", wants_reply: bool = True,
               job_id: str | None = None) -> str:
        """Queue one drawing; raise QueueFull when ``limit`` drawings already wait."""
        job_id = job_id or new_id()
        self.group.ensure()
        depth = self._enqueue(
            keys=[self.stream, p.JOB_KEY.format(job_id)],
            args=[limit, self.result_ttl, f"{time.time():.6f}", job_id, image, room,
                  "1" if wants_reply else "0", p.QUEUED])
        if depth == -1:
            raise QueueFull(f"{limit} drawings are already waiting")
        return job_id

    def wait_reply(self, job_id: str, timeout: float) -> dict | None:
        """Block until the worker pushes the answer, or return None after ``timeout`` s."""
        got = self.reply_conn.blpop([p.REPLY_KEY.format(job_id)], timeout=timeout)
        return None if got is None else p.parse_reply(got[1])

    def status(self, job_id: str) -> dict | None:
        raw = self.conn.hgetall(p.JOB_KEY.format(job_id))
        if not raw:
            return None
        data = {k.decode(): v.decode() for k, v in raw.items()}
        out = {"job_id": job_id, "state": data.get("state", p.QUEUED)}
        if "result" in data:
            reply = p.parse_reply(data["result"])
            if "error" in reply:
                out["error"] = reply["error"]
            else:
                out["result"] = reply
        return out

    def states(self, job_ids: list[str]) -> list[str | None]:
        """Each job's state (``queued``/``started``/``finished``/``failed``; None once expired), one round trip."""
        pipe = self.conn.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(p.JOB_KEY.format(job_id), "state")
        return [None if state is None else state.decode() for state in pipe.execute()]

    def depth(self) -> int:
        return int(self.conn.xlen(self.stream))

    # -- worker side -------------------------------------------------------
    def claim(self, consumer: str, count: int, block_ms: int | None) -> list[Job]:
        """Take up to ``count`` waiting drawings; block up to ``block_ms`` (None: don't block)."""
        jobs = self.parse(self.group.read(consumer, count, block_ms))
        self.mark_started(jobs)
        return jobs

    def parse(self, entries) -> list[Job]:
        return [_job_from_entry(entry_id, fields) for entry_id, fields in entries]

    def mark_started(self, jobs: list[Job]) -> None:
        if jobs:
            pipe = self.conn.pipeline(transaction=False)
            for job in jobs:
                pipe.hset(p.JOB_KEY.format(job.job_id), "state", p.STARTED)
            pipe.execute()

    def complete(self, done: list[tuple[Job, p.PredictionResult | p.PredictionError]]) -> None:
        """Store and push every job's reply in one round trip, then drop the entries."""
        if not done:
            return
        pipe = self.conn.pipeline(transaction=False)
        for job, outcome in done:
            state = p.FAILED if isinstance(outcome, p.PredictionError) else p.FINISHED
            reply = outcome.to_json()
            key = p.JOB_KEY.format(job.job_id)
            pipe.hset(key, mapping={"state": state, "result": reply})
            pipe.expire(key, self.result_ttl)
            if job.wants_reply:
                reply_key = p.REPLY_KEY.format(job.job_id)
                pipe.rpush(reply_key, reply)
                pipe.expire(reply_key, p.REPLY_TTL_S)
        ids = [job.entry_id for job, _ in done]
        pipe.xack(self.stream, p.PREDICT_GROUP, *ids)
        pipe.xdel(self.stream, *ids)
        pipe.execute()

    def reclaim_stale(self, consumer: str, min_idle_ms: int, count: int = 100) -> list[Job]:
        """Take over drawings a dead worker claimed but never finished."""
        self.group.ensure()
        claimed = autoclaim(self.conn, self.stream, consumer, min_idle_ms, count)
        return [replace(_job_from_entry(entry_id, fields), deliveries=deliveries)
                for entry_id, fields, deliveries in claimed]


def _job_from_entry(entry_id, fields: dict) -> Job:
    entry_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return Job(
        entry_id=entry_id,
        job_id=fields[b"id"].decode(),
        image=fields[b"image"],
        enqueued_at=float(fields[b"t"]),
        room=fields.get(b"room", b"").decode(),
        wants_reply=fields.get(b"reply", b"0") == b"1",
    )
