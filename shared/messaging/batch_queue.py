"""Batches: many images in one request, worked through in chunks by the predict workers.

A batch is split into chunks of ``batch_chunk_size`` images, each one entry
on ``protocol.BATCH_STREAM`` (read by the same consumer group as interactive
drawings, but a worker takes a chunk only when no drawing waits). A worker
predicts a chunk with one vectorised call and writes its results into the
batch's results hash keyed by input index, so a chunk retried after a worker
died overwrites rather than duplicates, and "done" is simply the number of
distinct indexes answered.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

import redis

from shared.messaging import protocol as p
from shared.messaging.ids import new_id
from shared.messaging.streams import StreamGroup, autoclaim

# ARGV: index1, result1, index2, result2, ...  Returns {done, total} or {-1, -1} if expired.
_RECORD_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, -1} end
redis.call('HSET', KEYS[2], unpack(ARGV))
redis.call('EXPIREAT', KEYS[2], tonumber(redis.call('HGET', KEYS[1], 'expires_at')))
local done = redis.call('HLEN', KEYS[2])
local total = tonumber(redis.call('HGET', KEYS[1], 'total'))
local state = 'running'
if done >= total then state = 'finished' end
redis.call('HSET', KEYS[1], 'state', state, 'done', done)
return {done, total}
"""


@dataclass(frozen=True)
class Chunk:
    """Part of a batch a worker has claimed: input indexes and their image bytes."""

    entry_id: str
    batch_id: str
    indexes: list[int]
    images: list[bytes]
    deliveries: int = 1


@dataclass(frozen=True)
class Progress:
    batch_id: str
    state: str
    done: int
    total: int


class BatchQueue:
    def __init__(self, conn: redis.Redis, chunk_size: int = 32, ttl: int = 86400,
                 bulk_conn: redis.Redis | None = None):
        """``bulk_conn`` (default ``conn``) writes a whole batch: a timeout fit for one
        command is too short for up to SWAGDIGITS_BATCH_MAX_BYTES in one MULTI/EXEC."""
        self.conn = conn
        self.bulk_conn = bulk_conn if bulk_conn is not None else conn
        self.chunk_size = chunk_size
        self.ttl = ttl
        self.stream = p.BATCH_STREAM
        self._record = conn.register_script(_RECORD_LUA)
        self.group = StreamGroup(conn, self.stream)

    # -- web side ----------------------------------------------------------
    def submit(self, items: list[bytes | str]) -> tuple[str, float]:
        """Queue a batch; ``items`` holds image bytes, or an error message for a bad input.

        Everything is written in one MULTI/EXEC, so a failure queues nothing.
        Returns the batch id and when its results expire (unix seconds).
        """
        batch_id = new_id()
        now = time.time()
        expires_at = int(now + self.ttl)
        meta_key, results_key = p.BATCH_KEY.format(batch_id), p.BATCH_RESULTS_KEY.format(batch_id)
        errors = {i: json.dumps({"index": i, "error": item}) for i, item in enumerate(items)
                  if isinstance(item, str)}
        valid = [(i, item) for i, item in enumerate(items) if not isinstance(item, str)]
        state = p.FINISHED if len(errors) == len(items) else p.QUEUED
        self.group.ensure()
        pipe = self.bulk_conn.pipeline(transaction=True)
        pipe.hset(meta_key, mapping={"state": state, "total": len(items), "done": len(errors),
                                     "created_at": f"{now:.3f}", "expires_at": expires_at})
        pipe.expireat(meta_key, expires_at)
        if errors:
            pipe.hset(results_key, mapping=errors)
            pipe.expireat(results_key, expires_at)
        for start in range(0, len(valid), self.chunk_size):
            part = valid[start:start + self.chunk_size]
            fields = {"batch": batch_id, "idx": ",".join(str(i) for i, _ in part)}
            fields.update({f"img{k}": data for k, (_, data) in enumerate(part)})
            pipe.xadd(self.stream, fields)
        pipe.execute()
        return batch_id, expires_at

    def progress(self, batch_id: str) -> Progress | None:
        meta = self.conn.hgetall(p.BATCH_KEY.format(batch_id))
        if not meta:
            return None
        meta = {k.decode(): v.decode() for k, v in meta.items()}
        return Progress(batch_id, meta["state"], int(meta["done"]), int(meta["total"]))

    def expires_at(self, batch_id: str) -> int | None:
        value = self.conn.hget(p.BATCH_KEY.format(batch_id), "expires_at")
        return None if value is None else int(value)

    def results(self, batch_id: str) -> list[dict]:
        """Every answer in input order; an index not answered yet is absent."""
        raw = self.conn.hgetall(p.BATCH_RESULTS_KEY.format(batch_id))
        return [json.loads(v) for _, v in sorted(raw.items(), key=lambda kv: int(kv[0]))]

    # -- worker side -------------------------------------------------------
    def claim(self, consumer: str, block_ms: int | None = None) -> Chunk | None:
        chunks = self.parse(self.group.read(consumer, 1, block_ms))
        return chunks[0] if chunks else None

    def parse(self, entries) -> list[Chunk]:
        return [_chunk_from_entry(entry_id, fields) for entry_id, fields in entries]

    def record(self, chunk: Chunk, results: list[dict]) -> Progress:
        """Store a chunk's results (one per index, in chunk order) and drop the chunk."""
        args = []
        for index, result in zip(chunk.indexes, results):
            args += [index, json.dumps({"index": index, **result}, separators=(",", ":"))]
        done, total = self._record(keys=[p.BATCH_KEY.format(chunk.batch_id),
                                         p.BATCH_RESULTS_KEY.format(chunk.batch_id)], args=args)
        pipe = self.conn.pipeline(transaction=False)
        pipe.xack(self.stream, p.PREDICT_GROUP, chunk.entry_id)
        pipe.xdel(self.stream, chunk.entry_id)
        pipe.execute()
        if done == -1:
            return Progress(chunk.batch_id, "expired", 0, 0)
        return Progress(chunk.batch_id, p.FINISHED if done >= total else p.RUNNING, done, total)

    def reclaim_stale(self, consumer: str, min_idle_ms: int, count: int = 1) -> list[Chunk]:
        self.group.ensure()
        return [_chunk_from_entry(entry_id, fields, deliveries)
                for entry_id, fields, deliveries in autoclaim(self.conn, self.stream, consumer,
                                                              min_idle_ms, count)]


def _chunk_from_entry(entry_id, fields: dict, deliveries: int = 1) -> Chunk:
    indexes = [int(i) for i in fields[b"idx"].decode().split(",")]
    return Chunk(
        entry_id=entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
        batch_id=fields[b"batch"].decode(),
        indexes=indexes,
        images=[fields[f"img{k}".encode()] for k in range(len(indexes))],
        deliveries=deliveries,
    )
