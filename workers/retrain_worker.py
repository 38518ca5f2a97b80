"""Retrain worker: an RQ worker on the ``retrain`` queue.

Retraining is rare and slow, so RQ's bookkeeping costs nothing that matters
here and its job states, retries and failure registry come for free. Each job
runs in a forked work horse (``workers.retrain_job.run_retrain``), so a crash
or a timeout kills the job and never the worker.

Training must never starve prediction on the same machine: the worker lowers
its own priority (``os.nice``, inherited by every job it forks) and each job
limits numerical libraries to one thread (threadpoolctl in the job).
"""
from __future__ import annotations

import logging
import os
import socket

from shared import metrics
from shared.messaging import protocol as p
from shared.messaging import retrain_trigger
from shared.config import Config
from shared.messaging.connection import connect
from workers.retrain_metrics import MeteredWorker

log = logging.getLogger("swagdigits.retrain_worker")


def lower_priority(niceness: int) -> int:
    """Add ``niceness`` to this process's nice value; return the new value."""
    value = os.nice(niceness) if niceness else os.nice(0)
    log.info("retrain worker runs at nice %d", value)
    return value


def warm_up(config: Config) -> None:
    """Prepare the fixed training features once here, so every forked job inherits them
    ready: read from the feature cache beside the models, or computed and cached there."""
    from shared.model.training import fitting as training
    from workers.retrain_job import feature_cache_dir

    training.prepare_fixed(feature_cache_dir(config.model_dir))


def main(config: Config | None = None) -> int:
    config = config or Config.from_env()
    lower_priority(config.retrain_nice)
    # RQ blocks in BLPOP for minutes; it must not hit a socket timeout meanwhile.
    conn = connect(config.redis_url, socket_timeout=None)
    queue = retrain_trigger.retrain_queue(conn)
    worker = MeteredWorker([queue], connection=conn, serializer=retrain_trigger.SERIALIZER,
                           name=f"retrain-{socket.gethostname()}-{os.getpid()}")
    metrics.retrain()  # the series exist at zero before the first run
    port = metrics.serve(config.metrics_port, config.metrics_host)
    log.info("metrics on http://%s:%d/metrics", config.metrics_host, port)
    warm_up(config)
    log.info("retrain worker listening on queue %r", p.RETRAIN_QUEUE)
    worker.work(with_scheduler=False, logging_level=config.log_level)
    return 0
