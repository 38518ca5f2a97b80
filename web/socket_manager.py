"""The Redis message queue that carries workers' answers to this web process's sockets.

Why not python-socketio's ``RedisManager`` as it is: when Redis goes away its
listener waits 1, 2, 4, 8, 16... seconds between attempts (up to 60), so after
a 3-second Redis restart it was still away 4 s later, and every answer a worker
pushed meanwhile was lost to pub/sub (issue 15's soak: a drawing sent right
after the restart never got its answer). Here the listener tries again every
``RETRY_S`` for as long as it takes: one connection attempt per half second
costs Redis nothing, and answers flow again within half a second of its return.
"""
from __future__ import annotations

import time

import socketio as python_socketio

RETRY_S = 0.5


class RedisQueue(python_socketio.RedisManager):
    def _redis_listen_with_retries(self):
        """The library's loop (socketio/redis_manager.py), with a short fixed pause instead of backoff."""
        failing_since = None
        while True:
            try:
                self._redis_connect()
                self.pubsub.subscribe(self.channel)
                if failing_since is not None:
                    self._get_logger().warning("Redis message queue back after %.1fs",
                                               time.monotonic() - failing_since)
                    failing_since = None
                yield from self.pubsub.listen()
            except Exception as exc:
                if failing_since is None:
                    failing_since = time.monotonic()
                    self._get_logger().warning("Redis message queue unavailable (%s); trying again "
                                               "every %.1fs", exc, RETRY_S)
                time.sleep(RETRY_S)
