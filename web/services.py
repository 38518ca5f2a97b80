"""What a request handler needs beyond Flask: config, Redis and the queues, built once per app."""
from __future__ import annotations

from dataclasses import dataclass

import redis
from flask import current_app

from shared.config import Config
from shared.images.upload import ImageLimits
from shared.messaging.batch_queue import BatchQueue
from shared.messaging.predict_queue import PredictQueue
from shared.messaging.connection import connect


@dataclass
class Services:
    config: Config
    conn: redis.Redis
    queue: PredictQueue
    batches: BatchQueue
    limits: ImageLimits

    @classmethod
    def connect(cls, config: Config, conn: redis.Redis | None = None) -> "Services":
        conn = conn if conn is not None else connect(config.redis_url)
        return cls(config=config, conn=conn, queue=PredictQueue(conn, result_ttl=config.result_ttl),
                   batches=BatchQueue(conn, config.batch_chunk_size, config.batch_ttl),
                   limits=ImageLimits.from_config(config))


def services() -> Services:
    return current_app.extensions["swagdigits"]
