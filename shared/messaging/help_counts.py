"""How many help images exist and how many the last retraining saw, shared by every process.

The help store's files are the truth; Redis keeps two counters so that every
web process sees the same pending count and exactly one upload sees each
multiple of the retrain threshold: ``HELP_TOTAL_KEY`` (one atomic INCR per
new image) and ``HELP_TRAINED_KEY`` (raised by a finished retraining).

``HELP_BYTES_KEY`` is the disk the help data takes (images and metadata), for
the global quota (``SWAGDIGITS_HELP_MAX_BYTES``): raised by each stored image
and recounted from the files when it is missing, which it is an hour after
each recount (its TTL), so files an operator deleted stop counting.
"""
from __future__ import annotations

from typing import Callable

import redis

from shared.messaging import protocol as p

# INCR the total and return (total - trained): the pending count right after
# this image, computed atomically so concurrent senders see distinct values.
_INCR_PENDING = """
local total = redis.call('INCR', KEYS[1])
local trained = tonumber(redis.call('GET', KEYS[2]) or '0')
return total - trained
"""
# INCRBY keeps the key's TTL: the hourly recount from the files stays scheduled.
_ADD_BYTES = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('INCRBY', KEYS[1], ARGV[1]) end
"""
BYTES_RECOUNT_S = 3600

# Never move backwards: an older, slower retraining must not raise pending again.
_MARK_TRAINED = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1]) end
local total = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[1]) > total then redis.call('SET', KEYS[2], ARGV[1]) end
"""


class HelpCounts:
    def __init__(self, conn: redis.Redis, count_files: Callable[[], int],
                 bytes_on_disk: Callable[[], int] | None = None):
        self.conn = conn
        self.count_files = count_files   # rebuilds a lost total from the store's files
        self.bytes_on_disk = bytes_on_disk
        self._incr = conn.register_script(_INCR_PENDING)
        self._add_bytes = conn.register_script(_ADD_BYTES)
        self._mark = conn.register_script(_MARK_TRAINED)

    def added(self) -> int:
        """Count one new image (call ``ensure_total`` before writing it); return the pending count after it."""
        return max(int(self._incr(keys=[p.HELP_TOTAL_KEY, p.HELP_TRAINED_KEY])), 0)

    def stored_bytes(self) -> int:
        """Disk the help data takes, recounted from the files when Redis has no fresh figure."""
        value = self.conn.get(p.HELP_BYTES_KEY)
        if value is None:
            counted = self.bytes_on_disk() if self.bytes_on_disk is not None else 0
            self.conn.set(p.HELP_BYTES_KEY, counted, ex=BYTES_RECOUNT_S, nx=True)
            value = self.conn.get(p.HELP_BYTES_KEY) or counted
        return int(value)

    def add_bytes(self, n: int) -> None:
        """``n`` more bytes were written (nothing to do while no figure is kept: the recount sees them)."""
        self._add_bytes(keys=[p.HELP_BYTES_KEY], args=[n])

    def mark_trained(self, seen: int) -> None:
        """A retraining used ``seen`` help images (all stored before it started)."""
        self._mark(keys=[p.HELP_TRAINED_KEY, p.HELP_TOTAL_KEY], args=[seen])

    def pending(self) -> int:
        self.ensure_total()
        total, trained = self.conn.mget(p.HELP_TOTAL_KEY, p.HELP_TRAINED_KEY)
        return max(int(total or 0) - int(trained or 0), 0)

    def ensure_total(self) -> None:
        """A Redis that lost the counter (restart without persistence) gets it back from the files."""
        if not self.conn.exists(p.HELP_TOTAL_KEY):
            self.conn.set(p.HELP_TOTAL_KEY, self.count_files(), nx=True)
