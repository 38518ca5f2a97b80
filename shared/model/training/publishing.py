"""Training a model from the shipped digits and putting it in the store.

Used by ``swagdigits train`` and by a predict worker that starts on an empty
store, so both produce the same kind of model with the same metadata.
"""
from __future__ import annotations

import logging
import platform
import time
from datetime import datetime, timezone

from shared.model import drift, families
from shared.model.training import feature_cache
from shared.model.training import fitting as training
from shared.model.store import ModelRegistry

log = logging.getLogger(__name__)


def library_versions() -> dict:
    """What a model's metadata records of the software that trained it."""
    return {"python": platform.python_version(), **feature_cache.library_versions()}


def drift_reference(model, guard: training.Dataset) -> dict:
    """The yardstick live answers are compared with (``shared.model.drift``): the model's
    answers on the guard set, the fixed evaluation set of every style the gate protects."""
    return drift.reference(model.predict_proba(guard.X))


def train_initial(registry: ModelRegistry, source: str, promote: bool = True,
                  family: str | None = None) -> tuple[str, dict]:
    """Train a ``family`` model on the shipped digits, publish with held-out accuracy, optionally promote."""
    started = time.perf_counter()
    pipeline = families.get(family).pipeline
    # Computed here anyway: kept on disk, the retrain worker's warm-up reads it instead.
    training.prepare_fixed(feature_cache.directory(registry.root), pipeline)
    train, held_out = training.shipped_digits(pipeline)
    trained = training.fit(train, family=family)
    metrics = {
        "holdout_accuracy": round(training.accuracy(trained, held_out), 5),
        "train_seconds": round(time.perf_counter() - started, 2),
        "n_train": int(len(train.y)),
        "n_holdout": int(len(held_out.y)),
        "n_help_images": 0,
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": source,
        "parent": None,
        "libraries": library_versions(),
        "reference": drift_reference(trained, training.guard_set(pipeline)),
    }
    model_id = registry.publish(trained, metrics)
    if promote:
        registry.promote(model_id)
    log.info("trained model %s from the shipped digits: held-out accuracy %.4f in %.1fs",
             model_id, metrics["holdout_accuracy"], metrics["train_seconds"])
    return model_id, metrics
