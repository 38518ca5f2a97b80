"""Retrain worker: an RQ worker on the ``retrain`` queue.

Retraining is rare and slow, so RQ's bookkeeping costs nothing that matters
here and its job states, retries and failure registry come for free. Each job
runs in a forked work horse (``workers.retrain_job.run_retrain``), so a crash
or a timeout kills the job and never the worker.

Training must never starve prediction on the same machine: the worker lowers
its own priority (``os.nice``, inherited by every job it forks) and each job
limits numerical libraries to one thread (threadpoolctl in the job).

Between retrainings a child process featurises help images as they arrive
(``workers.help_featuriser``), so a retraining does not spend its time on that.
"""
from __future__ import annotations

import logging
import os
import socket
import time

from shared import metrics
from shared.messaging import protocol as p
from shared.messaging import retrain_trigger
from shared.config import Config
from shared.messaging.connection import connect
from shared.model.store import ModelRegistry
from workers import help_featuriser
from workers.retrain_metrics import MeteredWorker

log = logging.getLogger("swagdigits.retrain_worker")

# A fresh store: how long a predict worker is given to start training the first
# model, and the longest the warm-up waits for that training (seconds).
BOOTSTRAP_GRACE_S = 10.0
BOOTSTRAP_LIMIT_S = 300.0


def lower_priority(niceness: int) -> int:
    """Add ``niceness`` to this process's nice value; return the new value."""
    value = os.nice(niceness) if niceness else os.nice(0)
    log.info("retrain worker runs at nice %d", value)
    return value


def warm_up(config: Config, conn) -> None:
    """Prepare the fixed training features once here, so every forked job inherits them
    ready: read from the feature cache beside the models, or computed and cached there."""
    from shared.model.training import feature_cache
    from shared.model.training import fitting as training

    wait_for_first_model(conn, ModelRegistry(config.model_dir))
    training.prepare_fixed(feature_cache.directory(config.model_dir))


def wait_for_first_model(conn, registry: ModelRegistry, grace_s: float = BOOTSTRAP_GRACE_S,
                         limit_s: float = BOOTSTRAP_LIMIT_S, poll_s: float = 0.5) -> None:
    """On a fresh store, wait while a predict worker trains the first model.

    Why: that training computes the very fixed features the warm-up needs and
    writes them to the feature cache. Computed here at the same moment, both
    got half the machine: a fresh ``swagdigits up`` took 92 s to its first
    model on a 2-core machine, the retrain worker's nice value notwithstanding.
    A store without a production model gets ``grace_s`` for a predict worker to
    take the bootstrap lock; the wait ends when the lock is gone or after ``limit_s``.
    """
    started = time.monotonic()
    if registry.production_id(missing_ok=True) is not None:
        return
    while registry.production_id(missing_ok=True) is None:
        waited = time.monotonic() - started
        if waited > limit_s or (waited > grace_s and not conn.exists(p.BOOTSTRAP_LOCK)):
            break
        time.sleep(poll_s)
    log.info("waited %.1fs for the first model's training before the warm-up", time.monotonic() - started)


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
    warm_up(config, conn)
    help_featuriser.start(config)
    log.info("retrain worker listening on queue %r", p.RETRAIN_QUEUE)
    worker.work(with_scheduler=False, logging_level=config.log_level)
    return 0
