"""Per-client request limits counted in Redis, so they hold across every web process.

Fixed windows: one counter per (kind, client, window number), incremented
(by one per image: a batch of 50 costs what 50 drawings do) and given its
expiry in one Lua call, so a limit costs one round trip and the
counters vanish by themselves. A client is its address (``web.client_key``:
an IPv6 one by its /64) hashed under a key derived from the server secret
(``shared.server_secrets``, the same in every web process): the keys never
hold an address in clear, and without the secret a key cannot be traced back
to an address by trying them all. Fixed windows let a client send up to twice the limit
across a window boundary; that is the price of one counter per client, and
far below what would hurt the service (the queue limit catches the rest).
"""
from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

import redis

from shared.messaging import protocol as p
from shared.server_secrets import CLIENT_HASH, ServerSecrets

# ARGV: expiry seconds, cost, limit. A refused charge of more than one unit
# (a batch) is taken back, so the client may still send something smaller;
# a refused single request keeps counting, as every request does.
_HIT = """
local cost = tonumber(ARGV[2])
local n = redis.call('INCRBY', KEYS[1], cost)
if n == cost then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if cost > 1 and n > tonumber(ARGV[3]) then redis.call('DECRBY', KEYS[1], cost) end
return n
"""

PREDICT = "predict"
HELP = "help"
HELP_QUOTA = "helpquota"   # help images stored per address per day (web.helpdata)
DAY_S = 86400


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    count: int
    limit: int
    retry_after: int   # seconds until the window ends (when refused)


class RateLimiter:
    def __init__(self, conn: redis.Redis, window_s: int, limits: dict[str, int], secrets: ServerSecrets):
        self.conn = conn
        self.window_s = window_s
        self.limits = limits
        self.secrets = secrets
        self._hit = conn.register_script(_HIT)

    def hit(self, kind: str, client: str, now: float | None = None, cost: int = 1) -> Verdict:
        """Count ``cost`` units of ``kind`` (one per image) from ``client``; refused once the
        window's limit is passed."""
        limit = self.limits.get(kind, 0)
        if limit <= 0:
            return Verdict(True, 0, 0, 0)
        now = time.time() if now is None else now
        window = int(now // self.window_s)
        key = p.RATE_KEY.format(kind, self.client_hash(client), window)
        count = int(self._hit(keys=[key], args=[self.window_s + 1, cost, limit]))
        retry_after = max(1, int((window + 1) * self.window_s - now + 0.999))
        return Verdict(count <= limit, count, limit, retry_after)

    def refund(self, kind: str, client: str, now: float | None = None, cost: int = 1) -> None:
        """Give back ``cost`` units a request spent without using them (a duplicate help image)."""
        if self.limits.get(kind, 0) <= 0:
            return
        now = time.time() if now is None else now
        key = p.RATE_KEY.format(kind, self.client_hash(client), int(now // self.window_s))
        self.conn.decrby(key, cost)

    def client_hash(self, client: str) -> str:
        return hmac.new(self.secrets.key(CLIENT_HASH), client.encode(), hashlib.sha256).hexdigest()[:24]
