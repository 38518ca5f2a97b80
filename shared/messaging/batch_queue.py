"""Batches: many images in one request, worked through in chunks by the predict workers.

A batch is split into chunks of ``batch_chunk_size`` images, each one entry
on ``protocol.BATCH_STREAM`` (read by the same consumer group as interactive
drawings, but a worker takes a chunk only when no drawing waits). A worker
predicts a chunk with one vectorised call and writes its results into the
batch's results hash keyed by input index, so a chunk retried after a worker
died overwrites rather than duplicates, and "done" is simply the number of
distinct indexes answered.

Items the web tier could not accept (not base64, not a PNG/JPEG, too large)
are never queued and never get a result entry each: the batch's hash holds
one compact record of them, ``errors`` (the distinct messages, at most
``MAX_ERROR_MESSAGES``, and one code per input index, zlib-compressed), and
``results`` expands it on reading. A batch of 10,000 invalid items used to
store 10,000 error results for a day (~1.1 MB; 20 requests a second added
~30 MB to Redis, issue 17 finding 4); the record is a few dozen bytes, and
at most about one byte per item whatever the mix of errors.
"""
from __future__ import annotations

import base64
import json
import time
import zlib
from dataclasses import dataclass

import redis

from shared.messaging import protocol as p
from shared.messaging.ids import new_id
from shared.messaging.streams import KEEP_LUA, StreamGroup, autoclaim, keep_claims

# Distinct error messages one batch's record keeps; further items read GENERIC_ERROR.
MAX_ERROR_MESSAGES = 32
GENERIC_ERROR = "image refused (not a readable PNG/JPEG within the limits)"
_MESSAGE_CHARS = 200

# ARGV: index1, result1, index2, result2, ...  Returns {done, total} or {-1, -1} if expired.
# "done" counts the answered indexes plus the invalid ones (answered at submission).
_RECORD_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, -1} end
redis.call('HSET', KEYS[2], unpack(ARGV))
redis.call('EXPIREAT', KEYS[2], tonumber(redis.call('HGET', KEYS[1], 'expires_at')))
local done = redis.call('HLEN', KEYS[2]) + tonumber(redis.call('HGET', KEYS[1], 'invalid') or '0')
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
        self._keep = conn.register_script(KEEP_LUA)
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
        meta_key = p.BATCH_KEY.format(batch_id)
        valid = [(i, item) for i, item in enumerate(items) if not isinstance(item, str)]
        invalid = len(items) - len(valid)
        state = p.FINISHED if invalid == len(items) else p.QUEUED
        meta = {"state": state, "total": len(items), "done": invalid, "invalid": invalid,
                "created_at": f"{now:.3f}", "expires_at": expires_at}
        if invalid:
            meta["errors"] = encode_errors(items)
        self.group.ensure()
        pipe = self.bulk_conn.pipeline(transaction=True)
        pipe.hset(meta_key, mapping=meta)
        pipe.expireat(meta_key, expires_at)
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

    def wait_finished(self, batch_id: str, timeout: float, poll_s: float = 0.2) -> Progress | None:
        """Poll until the batch has finished or ``timeout`` seconds have passed; its last
        progress (None once expired). Polls often at first (a small batch takes milliseconds),
        then every ``poll_s``: one HGETALL each, on the request path's short-timeout client."""
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            progress = self.progress(batch_id)
            remaining = deadline - time.monotonic()
            if progress is None or progress.state == p.FINISHED or remaining <= 0:
                return progress
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, poll_s)

    def discard(self, batch_id: str) -> None:
        """Drop a finished batch whose results were handed over already (an awaited batch:
        ``web.inference_v2``), rather than keeping them ``ttl`` seconds for nobody."""
        self.conn.delete(p.BATCH_KEY.format(batch_id), p.BATCH_RESULTS_KEY.format(batch_id))

    def expires_at(self, batch_id: str) -> int | None:
        value = self.conn.hget(p.BATCH_KEY.format(batch_id), "expires_at")
        return None if value is None else int(value)

    def results(self, batch_id: str) -> list[dict]:
        """Every answer in input order; an index not answered yet is absent."""
        pipe = self.conn.pipeline(transaction=False)
        pipe.hget(p.BATCH_KEY.format(batch_id), "errors")
        pipe.hgetall(p.BATCH_RESULTS_KEY.format(batch_id))
        errors, raw = pipe.execute()
        answers = {int(k): json.loads(v) for k, v in raw.items()}
        if errors:
            answers.update(decode_errors(errors))
        return [answers[i] for i in sorted(answers)]

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

    def keep(self, consumer: str, chunk: Chunk) -> bool:
        """Still working on ``chunk``: reset its idle time so no other worker reclaims it; False if one did."""
        return keep_claims(self._keep, self.stream, consumer, [chunk.entry_id]) == 1

    def reclaim_stale(self, consumer: str, min_idle_ms: int, count: int = 1) -> list[Chunk]:
        self.group.ensure()
        return [_chunk_from_entry(entry_id, fields, deliveries)
                for entry_id, fields, deliveries in autoclaim(self.conn, self.stream, consumer,
                                                              min_idle_ms, count)]


def encode_errors(items: list[bytes | str]) -> str:
    """The compact record of a batch's invalid items: ``items`` holds bytes (valid) or a message.

    JSON ``{"messages": [...], "codes": base64(zlib(one byte per index))}``: code 0 is a
    valid item, code k the (k-1)th message, the last code the generic message.
    """
    messages: dict[str, int] = {}
    codes = bytearray(len(items))
    for index, item in enumerate(items):
        if isinstance(item, str):
            message = item[:_MESSAGE_CHARS]
            if message not in messages and len(messages) < MAX_ERROR_MESSAGES:
                messages[message] = len(messages) + 1
            codes[index] = messages.get(message, MAX_ERROR_MESSAGES + 1)
    table = list(messages) + [GENERIC_ERROR] * (MAX_ERROR_MESSAGES + 1 - len(messages))
    used = max(codes)
    return json.dumps({"messages": table[:used],
                       "codes": base64.b64encode(zlib.compress(bytes(codes), 9)).decode()},
                      separators=(",", ":"))


def decode_errors(record: bytes | str) -> dict[int, dict]:
    """Index -> ``{"index", "error"}`` for every invalid item of ``encode_errors``' record."""
    data = json.loads(record)
    messages = data["messages"]
    codes = zlib.decompress(base64.b64decode(data["codes"]))
    return {i: {"index": i, "error": messages[code - 1]} for i, code in enumerate(codes) if code}


def _chunk_from_entry(entry_id, fields: dict, deliveries: int = 1) -> Chunk:
    indexes = [int(i) for i in fields[b"idx"].decode().split(",")]
    return Chunk(
        entry_id=entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
        batch_id=fields[b"batch"].decode(),
        indexes=indexes,
        images=[fields[f"img{k}".encode()] for k in range(len(indexes))],
        deliveries=deliveries,
    )
