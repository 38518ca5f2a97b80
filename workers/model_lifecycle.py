"""How a predict worker's model comes and goes: loaded at start, swapped on promotion.

Beside ``ModelHolder`` (the one place the live model is kept): this module
decides *which* model goes into the holder. At start it loads the store's
production model, or trains one when there is none that works (only one
worker trains; the others wait for it). Afterwards a background thread
listens for promotions and swaps the new model in whole, between batches,
after it has loaded, matched its checksum and feature fingerprint and
answered a smoke prediction.
"""
from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from typing import Callable

import redis

from shared.messaging import protocol as p
from shared.metrics import PredictMetrics
from shared.model.base import ModelUnusable
from shared.model.store import ModelRegistry, ModelStoreError
from workers.model_holder import ModelHolder

log = logging.getLogger("swagdigits.model_lifecycle")

BOOTSTRAP_WAIT_S = 300      # how long a worker waits for another one's bootstrap training
REFUSED = (ModelStoreError, ModelUnusable)


class ModelLifecycle:
    def __init__(self, registry: ModelRegistry, conn: redis.Redis, holder: ModelHolder,
                 metrics: PredictMetrics, name: str, family: str | None = None,
                 on_swap: Callable[[], None] = lambda: None,
                 on_event: Callable[[], None] = lambda: None):
        self.registry = registry
        self.conn = conn
        self.holder = holder
        self.metrics = metrics
        self.name = name
        self.family = family
        self.on_swap = on_swap
        self.on_event = on_event      # any model event: e.g. re-read which versions run in shadow

    def load_at_start(self) -> None:
        """Load the production model; train and publish one if there is none that works.

        "Works" means it loads, matches its checksum and feature fingerprint
        and answers a smoke prediction: a model left by an older release whose
        features differ would otherwise fail every drawing.
        """
        deadline = time.monotonic() + BOOTSTRAP_WAIT_S
        while True:
            try:
                model = self.registry.load_production()
                model.smoke_test()
                break
            except REFUSED as exc:
                if self.conn.set(p.BOOTSTRAP_LOCK, self.name, nx=True, ex=BOOTSTRAP_WAIT_S):
                    self._bootstrap(reason=str(exc))
                    continue
                if time.monotonic() > deadline:
                    raise
                log.info("another worker is training a model; waiting for it")
                time.sleep(0.5)
        self.holder.swap(model)
        self.metrics.serving(model.version, swapped=False, reference=model.metadata.get("reference"))
        log.info("serving model %s (%s)", model.version, model.family)

    def _bootstrap(self, reason: str) -> None:
        """Train the first model in a child process, so that this worker never imports
        scikit-learn or keeps the training set (~100 MB it would hold while idle)."""
        log.warning("%s (store %s): training one from the shipped digits", reason, self.registry.root)
        child = multiprocessing.get_context("spawn").Process(
            target=_train_first_model, name="bootstrap-training",
            args=(str(self.registry.root), f"bootstrap by {self.name}", self.family,
                  logging.getLogger().getEffectiveLevel()))
        try:
            child.start()
            child.join()
            if child.exitcode != 0:
                log.error("training the first model failed (exit code %s)", child.exitcode)
        finally:
            self.conn.delete(p.BOOTSTRAP_LOCK)

    def follow_promotions(self, stopping: threading.Event) -> threading.Thread:
        """Listen for promotions in the background and swap the new model in."""
        thread = threading.Thread(target=self._listen, args=(stopping,), name="model-events", daemon=True)
        thread.start()
        return thread

    def _listen(self, stopping: threading.Event) -> None:
        while not stopping.is_set():
            try:
                pubsub = self.conn.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(p.MODEL_EVENTS_CHANNEL)
                # A promotion may have happened while we were not subscribed.
                self.refresh()
                self.on_event()
                while not stopping.is_set():
                    if pubsub.get_message(timeout=1.0):
                        self.refresh()
                        self.on_event()
            except (redis.ConnectionError, redis.TimeoutError):
                stopping.wait(1.0)

    def refresh(self) -> bool:
        """Load the store's production model if it is not the one serving; True if swapped."""
        try:
            wanted = self.registry.production_id()
            if wanted == self.holder.version:
                return False
            model = self.registry.load(wanted)
            model.smoke_test()
        except REFUSED as exc:
            log.error("refused to swap model: %s; %s keeps serving", exc, self.holder.version)
            self.metrics.model_swap_failures.inc()
            return False
        previous = self.holder.swap(model)
        self.metrics.serving(model.version, swapped=previous is not None,
                             reference=model.metadata.get("reference"))
        log.info("swapped model %s -> %s", previous.version if previous else None, model.version)
        self.on_swap()
        return True


def _train_first_model(root: str, source: str, family: str | None, level: int) -> None:
    """Child process of ``_bootstrap``: train, publish and promote the first model."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    from shared.model.training.publishing import train_initial  # needs scikit-learn: only here

    train_initial(ModelRegistry(root), source=source, family=family)
