"""Retrain worker: an RQ worker on the ``retrain`` queue.

Retraining is rare and slow, so RQ's bookkeeping costs nothing that matters
here and its job states, retries and failure registry come for free.
"""
from __future__ import annotations

import logging
import os
import socket

from rq import Queue, Worker

from shared import protocol as p
from shared.config import Config
from shared.redis_conn import connect

log = logging.getLogger("swagdigits.retrain_worker")


def main(config: Config | None = None) -> int:
    config = config or Config.from_env()
    # RQ blocks in BLPOP for minutes; it must not hit a socket timeout meanwhile.
    conn = connect(config.redis_url, socket_timeout=None)
    queue = Queue(p.RETRAIN_QUEUE, connection=conn)
    worker = Worker([queue], connection=conn, name=f"retrain-{socket.gethostname()}-{os.getpid()}")
    log.info("retrain worker listening on queue %r", p.RETRAIN_QUEUE)
    worker.work(with_scheduler=False, logging_level=config.log_level)
    return 0
