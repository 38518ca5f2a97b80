"""How many help images exist and how many the last retraining saw, shared by every process.

The help store's files are the truth; Redis keeps two counters so that every
web process sees the same pending count and exactly one upload sees each
multiple of the retrain threshold: ``HELP_TOTAL_KEY`` (one atomic INCR per
new image) and ``HELP_TRAINED_KEY`` (raised by a finished retraining).
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
# Never move backwards: an older, slower retraining must not raise pending again.
_MARK_TRAINED = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1]) end
local total = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[1]) > total then redis.call('SET', KEYS[2], ARGV[1]) end
"""


class HelpCounts:
    def __init__(self, conn: redis.Redis, count_files: Callable[[], int]):
        self.conn = conn
        self.count_files = count_files   # rebuilds a lost total from the store's files
        self._incr = conn.register_script(_INCR_PENDING)
        self._mark = conn.register_script(_MARK_TRAINED)

    def added(self) -> int:
        """Count one new image (call ``ensure_total`` before writing it); return the pending count after it."""
        return max(int(self._incr(keys=[p.HELP_TOTAL_KEY, p.HELP_TRAINED_KEY])), 0)

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
