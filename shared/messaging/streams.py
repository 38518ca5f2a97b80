"""Redis streams read by the predict workers' consumer group: the mechanics both queues share.

Every XREADGROUP, XAUTOCLAIM, XCLAIM and XPENDING of the service is here, and so is
what the rest of the code may ask of a stream (its length, the age of its
oldest entry, how many entries were ever added) so that metrics and
deadlines never parse stream ids or spell keys themselves.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from shared.messaging import protocol as p


@dataclass(frozen=True)
class StreamStats:
    """What Prometheus shows of a stream: waiting entries, oldest one's age (s), entries ever added."""

    depth: int
    oldest_age_s: float
    added: int


class StreamGroup:
    """A stream read by the predict workers' consumer group, created once per process.

    Redis forgets the group when it restarts without persistence; a read that
    finds it gone calls ``forget`` so the next use creates it again.
    """

    def __init__(self, conn: redis.Redis, stream: str):
        self.conn = conn
        self.stream = stream
        self._ready = False

    def ensure(self) -> None:
        if not self._ready:
            ensure_group(self.conn, self.stream)
            self._ready = True

    def forget(self) -> None:
        self._ready = False

    def read(self, consumer: str, count: int, block_ms: int | None) -> list:
        """New entries for ``consumer`` (empty if none, or if the group had vanished)."""
        self.ensure()
        entries = read_group(self.conn, consumer, [self.stream], count, block_ms)
        if entries is None:
            self.forget()
            return []
        return entries.get(self.stream, [])



def read_groups(groups: list["StreamGroup"], consumer: str, count: int, block_ms: int | None
                ) -> dict[str, list]:
    """New entries of several streams in one blocking XREADGROUP (empty if a group had vanished).

    Redis forgets consumer groups when it restarts without persistence: every
    group is then marked for re-creation on its next use.
    """
    for group in groups:
        group.ensure()
    entries = read_group(groups[0].conn, consumer, [g.stream for g in groups], count, block_ms)
    if entries is None:
        for group in groups:
            group.forget()
        return {}
    return entries


def ensure_group(conn: redis.Redis, stream: str) -> None:
    """Create the consumer group (from the stream's start, so nothing queued is skipped)."""
    try:
        conn.xgroup_create(stream, p.PREDICT_GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def read_group(conn: redis.Redis, consumer: str, streams: list[str], count: int,
               block_ms: int | None) -> dict[str, list] | None:
    """XREADGROUP up to ``count`` new entries from each stream; None if a group vanished."""
    try:
        got = conn.xreadgroup(p.PREDICT_GROUP, consumer, {s: ">" for s in streams},
                              count=count, block=block_ms)
    except redis.ResponseError as exc:
        if "NOGROUP" not in str(exc):
            raise
        return None
    return {(s.decode() if isinstance(s, bytes) else s): entries for s, entries in got or []}


# Reset the idle time of entries ``consumer`` still holds (XCLAIM ... JUSTID leaves the
# delivery count alone); an entry another worker has taken over meanwhile is left to it.
KEEP_LUA = """
local kept = 0
for i = 3, #ARGV do
  local mine = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if #mine > 0 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    kept = kept + 1
  end
end
return kept
"""


def keep_claims(script, stream: str, consumer: str, entry_ids: list[str]) -> int:
    """Tell the other workers ``consumer`` is still working on ``entry_ids``; returns how many it still held.

    Why: stale entries are reclaimed by idle time (``autoclaim``), and a
    worker busy with a long chunk looks idle; reclaimed, the chunk would be
    computed twice. ``script`` is ``KEEP_LUA`` registered once on the caller's
    connection (``conn.register_script``), so each call is one EVALSHA.
    """
    if not entry_ids:
        return 0
    try:
        return int(script(keys=[stream], args=[p.PREDICT_GROUP, consumer, *entry_ids]))
    except redis.ResponseError:   # the group vanished: nothing is held
        return 0


def autoclaim(conn: redis.Redis, stream: str, consumer: str, min_idle_ms: int, count: int):
    """Entries idle longer than ``min_idle_ms`` as (id, fields, times delivered)."""
    try:
        _, claimed, _ = conn.xautoclaim(stream, p.PREDICT_GROUP, consumer,
                                        min_idle_time=min_idle_ms, count=count)
    except redis.ResponseError:
        return []
    claimed = [(entry_id, fields) for entry_id, fields in claimed if fields]
    if not claimed:
        return []
    pending = conn.xpending_range(stream, p.PREDICT_GROUP, min="-", max="+",
                                  count=len(claimed) + 100, consumername=consumer)
    deliveries = {row["message_id"]: row["times_delivered"] for row in pending}
    return [(entry_id, fields, deliveries.get(entry_id, 2)) for entry_id, fields in claimed]



def stats_pipelined(pipe, stream: str) -> None:
    """Queue the commands ``stats_from`` reads, on a caller's pipeline (one round trip for many)."""
    pipe.xlen(stream)
    pipe.xrange(stream, count=1)
    pipe.xinfo_stream(stream)


def stats_from(replies: list, now: float | None = None) -> StreamStats:
    """A stream's stats from the three replies ``stats_pipelined`` queued (errors count as empty)."""
    xlen, first, info = replies
    now = time.time() if now is None else now
    depth = 0 if isinstance(xlen, Exception) else int(xlen)
    oldest = 0.0
    if first and not isinstance(first, Exception):
        entry_id = first[0][0]
        entry_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        oldest = max(0.0, now - int(entry_id.split("-")[0]) / 1000)
    added = 0
    if isinstance(info, dict):  # an absent stream (nothing queued yet) raises: count 0
        added = int(info.get("entries-added", info.get(b"entries-added", 0)) or 0)
    return StreamStats(depth, oldest, added)
