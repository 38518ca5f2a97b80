"""Per-socket secrets: only whoever holds a Socket.IO connection may have answers pushed to it.

``POST /api/predict?sid=<socket id>`` pushes the answer to that socket. A
socket id alone is no proof of ownership: it travels in every long-polling
URL and in logs, and anyone who learnt it could push answers to someone
else's page. So each connection is handed a secret on connect (the
``session`` event, sent straight to that socket), and an HTTP request naming
a ``sid`` must carry it in ``X-Socket-Secret``; otherwise 403 and nothing is
queued.

The secret is an HMAC of the sid under a random key kept in Redis (created
once with SET NX), so every web process can check a secret another process
issued without storing anything per socket. Issuing re-reads the key, so a
Redis that lost it (restarted without persistence) gets a new one everywhere
from then on; checking uses the process's cached key and re-reads it once on
a mismatch. A socket connected before such a loss must reconnect to get a
secret that checks again.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets

import redis

from shared.messaging import protocol as p

SECRET_HEADER = "X-Socket-Secret"


class SocketSecrets:
    def __init__(self, conn: redis.Redis):
        self.conn = conn
        self._key: bytes | None = None

    def issue(self, sid: str) -> str:
        """The secret of socket ``sid`` (reads the key from Redis: connections are rare)."""
        return self._secret(self._read_key(), sid)

    def check(self, sid: str, given: str) -> bool:
        """Whether ``given`` is the secret issued to ``sid``, compared in constant time."""
        if not given:
            return False
        key = self._key or self._read_key()
        if hmac.compare_digest(self._secret(key, sid), given):
            return True
        fresh = self._read_key()
        return fresh != key and hmac.compare_digest(self._secret(fresh, sid), given)

    def _read_key(self) -> bytes:
        self.conn.set(p.SOCKET_SECRET_KEY, secrets.token_hex(32), nx=True)
        self._key = self.conn.get(p.SOCKET_SECRET_KEY) or b""
        if not self._key:
            raise redis.RedisError("the socket-secret key vanished as it was written")
        return self._key

    @staticmethod
    def _secret(key: bytes, sid: str) -> str:
        return hmac.new(key, sid.encode(), hashlib.sha256).hexdigest()[:32]
