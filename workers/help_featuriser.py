"""Help images become feature rows as they arrive, so a retraining finds them ready.

Why: a retraining used to featurise every new help image itself, on the
clock. With 10,000 new images that took 19 s of a 50 s retraining on a quiet
2-core machine, and about twice that on a slower one; issue 12's budget for
the whole retraining is 60 s. Uploads trickle in over minutes, so the retrain
worker does the same work between retrainings, in a child process at the
worker's niceness (``start``). It writes the rows to the help feature cache
(``shared.model.training.feature_cache.HelpFeatureCache``), which the
retraining reads.

The cache stays advisory. While a retraining runs (it holds
``RETRAIN_RUNNING_KEY``) the featuriser waits, because the retraining
rewrites the cache with exactly the images it read. Whatever one side
misses, the other computes later. A row depends only on the image's bytes
and the pipeline, so it does not matter which process computed it.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading

import redis

from shared.config import Config
from shared.help_store import HelpStore
from shared.images.upload import ImageLimits
from shared.messaging import protocol as p
from shared.model.features import FeaturePipeline
from shared.model.training.feature_cache import HelpFeatureCache

log = logging.getLogger("swagdigits.help_featuriser")

INTERVAL_S = 1.0   # how often the help store is looked at when nothing is new
BATCH = 500        # images featurised between two writes of the cache (~1 s of one core)


class HelpFeaturiser:
    """Adds the feature rows of help images the cache lacks, ``BATCH`` at a time."""

    def __init__(self, help_store: HelpStore, cache_dir, limits: ImageLimits,
                 pipeline: FeaturePipeline, conn: redis.Redis, batch: int = BATCH):
        self.help_store = help_store
        self.cache_dir = cache_dir
        self.limits = limits
        self.pipeline = pipeline
        self.conn = conn
        self.batch = batch
        self.known: set[str] = set()   # help ids cached, featurised or unreadable: not read again
        self.cache: HelpFeatureCache | None = None   # re-read only when another process rewrote it

    def sweep(self) -> int:
        """Featurise up to ``batch`` help images the cache lacks; return how many rows it added."""
        from workers.retrain_job import featurise   # scikit-learn and friends: only in this process

        if self._retraining():
            return 0
        new = self.help_store.entries(skip=self.known)
        if not new:
            return 0
        if self.cache is None or not self.cache.is_current():
            self.cache = HelpFeatureCache(self.cache_dir, self.pipeline).load()
        cache = self.cache
        todo = []
        for entry in new:
            if cache.get(entry.sha256, self.pipeline.size) is None:
                todo.append(entry)
            else:
                self.known.add(entry.id)
        todo = todo[:self.batch]
        rows = dict(cache.rows)
        for entry, (row, error) in zip(todo, featurise([e.png for e in todo], self.limits, self.pipeline)):
            if row is None:
                log.warning("help image %s cannot be featurised: %s", entry.png, error)
                self.known.add(entry.id)
            else:
                rows[entry.sha256] = row
        added = len(rows) - len(cache.rows)
        if not added or self._retraining():   # a retraining began meanwhile: its cache wins
            return 0
        cache.save(rows)
        self.known.update(e.id for e in todo)
        log.info("featurised %d new help images ahead of the next retraining (%d cached)", added, len(rows))
        return added

    def run(self, stop: threading.Event, interval_s: float = INTERVAL_S) -> None:
        """Sweep until ``stop`` is set, pausing ``interval_s`` whenever nothing was new."""
        while not stop.is_set():
            try:
                added = self.sweep()
            except (redis.RedisError, OSError) as exc:   # Redis or the disk away for a moment
                log.warning("help featuriser: %s; trying again", exc)
                added = 0
            if not added:
                stop.wait(interval_s)

    def _retraining(self) -> bool:
        return bool(self.conn.exists(p.RETRAIN_RUNNING_KEY))


def start(config: Config) -> multiprocessing.Process:
    """The featuriser in a forked child of this (retrain worker) process, which it dies with."""
    child = multiprocessing.get_context("fork").Process(
        target=_main, args=(config, os.getpid()), name="help-featuriser", daemon=True)
    child.start()
    log.info("help featuriser running in process %d", child.pid)
    return child


def _main(config: Config, parent: int) -> None:
    from threadpoolctl import threadpool_limits

    from shared.messaging.connection import connect
    from shared.model import families
    from shared.model.training import feature_cache
    from shared.model.training.parallel import die_with_parent

    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C stops the worker; the worker's end stops this
    threadpool_limits(limits=1)
    featuriser = HelpFeaturiser(HelpStore.from_config(config), feature_cache.directory(config.model_dir),
                                ImageLimits.from_config(config), families.get(config.model_family).pipeline,
                                connect(config.redis_url))
    featuriser.run(threading.Event())
