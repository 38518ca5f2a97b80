"""Everything a request handler needs beyond Flask, in one container per app.

Built once by the app factory (tests pass one built on fakeredis) and kept
under one ``app.extensions`` key. ``conn`` serves the request path: its
commands give up after ``SWAGDIGITS_REDIS_TIMEOUT``, so a Redis that hangs
becomes a 503 within a second (``web.errors``). The two things that
legitimately take longer get clients of their own, with the same connect
timeout: the blocking wait for a worker's answer (``SWAGDIGITS_PREDICT_TIMEOUT``
plus that margin) and a batch's one large write. The parts that need the Socket.IO server or
the metrics collectors (reply deadlines, the exposition registry) are filled
in by the modules that own them while the app is built.
"""
from __future__ import annotations

import threading

from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis
from flask import current_app

from shared.config import Config
from shared.help_store import HelpStore
from shared.images.upload import ImageLimits
from shared.messaging.batch_queue import BatchQueue
from shared.messaging.connection import connect
from shared.messaging.predict_queue import PredictQueue
from shared.model.store import ModelRegistry
from shared.server_secrets import ServerSecrets
from web.rate_limit import DAY_S, HELP, HELP_QUOTA, PREDICT, RateLimiter
from web.socket_secrets import SocketSecrets

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from web.deadlines import ReplyDeadlines
    from web.socket_caps import SocketCaps

EXTENSION_KEY = "swagdigits"
# Seconds the largest batch (SWAGDIGITS_BATCH_MAX_BYTES in one MULTI/EXEC) may take to write.
BULK_WRITE_S = 10.0


@dataclass
class Services:
    config: Config
    conn: redis.Redis
    queue: PredictQueue
    batches: BatchQueue
    limits: ImageLimits
    help_store: HelpStore
    registry: ModelRegistry
    rate_limiter: RateLimiter
    socket_secrets: SocketSecrets
    help_quota: RateLimiter                            # help images per address per day
    batch_bodies: threading.BoundedSemaphore           # batch bodies this process may read at once
    deadlines: "ReplyDeadlines | None" = None          # set by web.sockets.init_app
    socket_caps: "SocketCaps | None" = None            # set by web.sockets.init_app
    metrics_registry: "CollectorRegistry | None" = None  # set by web.metrics.init_app

    @classmethod
    def connect(cls, config: Config, conn: redis.Redis | None = None) -> "Services":
        """Clients for ``config.redis_url``, or ``conn`` for both (tests: fakeredis)."""
        if conn is not None:
            reply_conn = bulk_conn = conn
        else:
            margin = config.redis_timeout
            conn = connect(config.redis_url, socket_timeout=margin, connect_timeout=margin)
            reply_conn = connect(config.redis_url, socket_timeout=config.predict_timeout + margin,
                                 connect_timeout=margin)
            bulk_conn = connect(config.redis_url, socket_timeout=BULK_WRITE_S, connect_timeout=margin)
        secrets = ServerSecrets.from_config(config)
        return cls(config=config, conn=conn,
                   queue=PredictQueue(conn, result_ttl=config.result_ttl, reply_conn=reply_conn),
                   batches=BatchQueue(conn, config.batch_chunk_size, config.batch_ttl, bulk_conn=bulk_conn),
                   limits=ImageLimits.from_config(config),
                   help_store=HelpStore(config.help_dir, conn, max_bytes=config.help_max_bytes,
                                        secrets=secrets),
                   registry=ModelRegistry(config.model_dir),
                   rate_limiter=RateLimiter(conn, config.rate_limit_window,
                                            {PREDICT: config.rate_limit_predict,
                                             HELP: config.rate_limit_help}, secrets),
                   socket_secrets=SocketSecrets(conn),
                   help_quota=RateLimiter(conn, DAY_S, {HELP_QUOTA: config.help_client_quota}, secrets),
                   batch_bodies=threading.BoundedSemaphore(config.batch_bodies))


def services() -> Services:
    return current_app.extensions[EXTENSION_KEY]
