"""Opening Redis connections with timeouts, so an outage fails fast instead of hanging.

A Redis that refuses connections is noticed at once; one that hangs (stopped,
swapping, wedged) accepts connections in the kernel and then never answers,
so only a socket timeout notices it. The web tier passes a short one
(``SWAGDIGITS_REDIS_TIMEOUT``, 0.5 s by default) for its request-path commands,
so a hanging Redis costs a request half a second and a 503, not the 10 s the
workers' default allows; blocking reads (BLPOP for an answer) get a client of
their own whose timeout is the read's own wait plus that margin.
"""
from __future__ import annotations

import redis

CONNECT_TIMEOUT_S = 2.0
# Blocking reads (BLPOP, XREADGROUP BLOCK) pass their own timeout; this bounds
# every other command so a dead server cannot hang a request thread.
SOCKET_TIMEOUT_S = 10.0


def connect(url: str, max_connections: int = 256, socket_timeout: float | None = SOCKET_TIMEOUT_S,
            connect_timeout: float = CONNECT_TIMEOUT_S) -> redis.Redis:
    """A client whose commands give up after ``socket_timeout`` s (None: wait forever).

    ``connect_timeout`` bounds opening a connection and waiting for a free one in the pool.
    """
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=connect_timeout,
        socket_connect_timeout=connect_timeout,
        socket_timeout=socket_timeout,
        socket_keepalive=True,
        health_check_interval=30,
    )
    return redis.Redis(connection_pool=pool)
