"""Opening Redis connections with timeouts, so an outage fails fast instead of hanging."""
from __future__ import annotations

import redis

CONNECT_TIMEOUT_S = 2.0
# Blocking reads (BLPOP, XREADGROUP BLOCK) pass their own timeout; this bounds
# every other command so a dead server cannot hang a request thread.
SOCKET_TIMEOUT_S = 10.0


def connect(url: str, max_connections: int = 256, socket_timeout: float | None = SOCKET_TIMEOUT_S) -> redis.Redis:
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=CONNECT_TIMEOUT_S,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=socket_timeout,
        socket_keepalive=True,
        health_check_interval=30,
    )
    return redis.Redis(connection_pool=pool)
