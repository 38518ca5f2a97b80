"""Training a model from the shipped digits and putting it in the store.

Used by ``swagdigits train`` and by a predict worker that starts on an empty
store, so both produce the same kind of model with the same metadata.
"""
from __future__ import annotations

import logging
import platform
import time
from datetime import datetime, timezone

from shared.model.training import fitting as training
from shared.model.store import ModelRegistry

log = logging.getLogger(__name__)


def library_versions() -> dict:
    import numpy
    import PIL
    import sklearn

    return {"python": platform.python_version(), "scikit-learn": sklearn.__version__,
            "numpy": numpy.__version__, "pillow": PIL.__version__}


def train_initial(registry: ModelRegistry, source: str, promote: bool = True) -> tuple[str, dict]:
    """Train on the shipped digits, publish with held-out accuracy, optionally promote."""
    started = time.perf_counter()
    train, held_out = training.shipped_digits()
    estimator = training.fit(train)
    metrics = {
        "holdout_accuracy": round(training.accuracy(estimator, held_out), 5),
        "train_seconds": round(time.perf_counter() - started, 2),
        "n_train": int(len(train.y)),
        "n_holdout": int(len(held_out.y)),
        "n_help_images": 0,
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": source,
        "parent": None,
        "libraries": library_versions(),
    }
    model_id = registry.publish(estimator, metrics)
    if promote:
        registry.promote(model_id)
    log.info("trained model %s from the shipped digits: held-out accuracy %.4f in %.1fs",
             model_id, metrics["holdout_accuracy"], metrics["train_seconds"])
    return model_id, metrics
