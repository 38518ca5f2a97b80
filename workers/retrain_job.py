"""The retraining job: train on shipped digits + help data, judge, version, maybe promote.

RQ runs ``run_retrain`` (enqueued by name from ``shared.messaging.retrain_trigger``);
``retrain`` holds the logic and is what tests call in-process.

Judging is fair because candidate and production are scored on the *same*
fixed sets (``judge``):

1. the guard set (``training.guard_set``): shipped digits and synthetic
   drawings of styles the help data does not come from. A candidate that
   loses more than ``gate_max_guard_loss`` of accuracy there, or reads any one
   digit ``gate_max_class_loss`` less often, is rejected *whatever it gains*
   on the corrections: help data must teach new writers without making the
   model worse for everybody else;
2. the evaluation set: the shipped digits' held-out part plus the help images
   whose SHA-256 puts them in the held-back share (``help_store.is_holdout``),
   never trained on. The candidate must not be worse than production there by
   more than ``promotion_tolerance``.

A rejected candidate stays in the store, marked rejected, with the reason in
its metadata.
"""
from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from datetime import datetime, timezone

import numpy as np
import redis
from threadpoolctl import threadpool_limits

from shared.config import Config
from shared.help_store import HelpEntry, HelpStore, is_holdout
from shared.images.ink import decode_ink
from shared.images.upload import ImageLimits, ImageRejected
from shared.messaging import model_events, retrain_trigger
from shared.model import families
from shared.model.features import FeaturePipeline
from shared.model.store import ModelRegistry, ModelStoreError
from shared.model.training import fitting as training
from shared.model.training.feature_cache import HelpFeatureCache
from shared.model.training.publishing import library_versions
from workers.retrain_result import RetrainResult

log = logging.getLogger("swagdigits.retrain")

# Help images are featurised in this many processes (they inherit the retrain
# worker's nice +10, so busy predict workers still get the CPU first) when at
# least PARALLEL_MIN_IMAGES are not in the feature cache yet.
HELP_PROCESSES = min(2, os.cpu_count() or 1)
PARALLEL_MIN_IMAGES = 200


def feature_cache_dir(model_root: Path | str) -> Path:
    """Where retraining keeps its feature caches: beside the models they serve."""
    return Path(model_root) / "feature-cache"


@dataclass(frozen=True)
class HelpData:
    train: training.Dataset
    holdout: training.Dataset
    seen: int          # entries found (trained on, held out, or unreadable)
    unreadable: int


def run_retrain(reason: str = "requested") -> dict:
    """RQ entry point: everything from the environment and the job's own connection."""
    from rq import get_current_job

    from shared.messaging.push import Pusher

    config = Config.from_env()
    job = get_current_job()
    conn = job.connection if job is not None else redis.Redis.from_url(config.redis_url)
    return retrain(config, conn, ModelRegistry(config.model_dir), HelpStore(config.help_dir, conn),
                   reason=reason, pusher=Pusher(config.redis_url),
                   job_id=job.id if job is not None else None)


def retrain(config: Config, conn: redis.Redis, registry: ModelRegistry, help_store: HelpStore,
            reason: str, pusher=None, job_id: str | None = None) -> dict:
    """One retraining, holding the single running slot; returns the verdict."""
    job_id = job_id or uuid.uuid4().hex
    with retrain_trigger.running_slot(conn, job_id), threadpool_limits(limits=1):
        return _retrain(config, conn, registry, help_store, reason, pusher)


def _retrain(config, conn, registry, help_store, reason, pusher) -> dict:
    started = time.perf_counter()
    limits = ImageLimits.from_config(config)
    pipeline = families.get(config.model_family).pipeline
    cache_dir = feature_cache_dir(registry.root)
    fixed_from = training.prepare_fixed(cache_dir, pipeline)
    fixed_done = time.perf_counter()
    help_cache = HelpFeatureCache(cache_dir, pipeline).load()
    help_data = load_help(help_store.entries(), config.help_holdout_share, limits, pipeline,
                          cache=help_cache, processes=HELP_PROCESSES)
    help_done = time.perf_counter()
    shipped_train, shipped_eval = training.shipped_digits(pipeline)
    train = _concat(shipped_train, help_data.train)   # shipped first: fit() augments them
    trained = training.fit(train, appended_weight=config.help_weight, family=config.model_family)
    train_seconds = time.perf_counter() - started
    timings = {"fixed_features": round(fixed_done - started, 2), "fixed_from": fixed_from,
               "help_features": round(help_done - fixed_done, 2),
               "help_cached": help_cache.hits, "fit": round(time.perf_counter() - help_done, 2)}

    evaluation = _concat(shipped_eval, help_data.holdout)
    sets = EvalSets(shipped_eval, help_data.holdout, evaluation, training.guard_set(pipeline))
    candidate = _scores(trained, sets)
    parent, production = _production_scores(registry, pipeline, sets)
    passed, why = judge(candidate, production, config)

    metadata = {
        **candidate,
        "holdout_accuracy": candidate["shipped_holdout_accuracy"],
        "production_scores": production,
        "gate": {"passed": passed, "reason": why, "tolerance": config.promotion_tolerance,
                 "max_guard_loss": config.gate_max_guard_loss,
                 "max_class_loss": config.gate_max_class_loss},
        "train_seconds": round(train_seconds, 2),
        "timings": timings,
        "n_train": int(len(train.y)),
        "n_shipped_train": int(len(shipped_train.y)),
        "n_help_images": int(len(help_data.train.y)),
        "help_weight": config.help_weight,
        "n_help_holdout": int(len(help_data.holdout.y)),
        "n_help_unreadable": help_data.unreadable,
        "n_holdout": int(len(evaluation.y)),
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": f"retrain ({reason})",
        "parent": parent,
        "libraries": library_versions(),
    }
    model_id = registry.publish(trained, metadata)
    if passed:
        model_events.promote_and_announce(registry, conn, model_id, reason=f"retrain: {why}", pusher=pusher)
    else:
        registry.reject(model_id)
    help_store.mark_trained(help_data.seen)
    verdict = "promoted" if passed else "rejected"
    log.info("candidate %s %s: %s (trained on %d help images in %.1fs: %s)",
             model_id, verdict, why, len(help_data.train.y), train_seconds, timings)
    return RetrainResult(
        model_id=model_id, outcome=verdict, reason=why, parent=parent,
        candidate_accuracy=candidate["eval_accuracy"],
        production_accuracy=production["eval_accuracy"] if production else None,
        help_images=int(len(help_data.train.y)), n_help_holdout=int(len(help_data.holdout.y)),
        train_seconds=round(train_seconds, 2), timings=timings,
        total_seconds=round(time.perf_counter() - started, 2)).to_dict()


@dataclass(frozen=True)
class EvalSets:
    shipped: training.Dataset       # the shipped digits' held-out part
    help_holdout: training.Dataset  # held-back help images
    evaluation: training.Dataset    # both together
    guard: training.Dataset         # other styles: shipped held-out + guard synthetic drawings


def judge(candidate: dict, production: dict | None, config: Config) -> tuple[bool, str]:
    """The promotion verdict and why: the guard set first, then the evaluation set."""
    if production is None:
        return True, f"no usable production model; candidate scores {candidate['eval_accuracy']:.4f}"
    loss = production["guard_accuracy"] - candidate["guard_accuracy"]
    if loss > config.gate_max_guard_loss:
        return False, (f"candidate loses {loss * 100:.1f} points on the guard set of other styles "
                       f"({candidate['guard_accuracy']:.4f} < {production['guard_accuracy']:.4f}; "
                       f"at most {config.gate_max_guard_loss * 100:g} allowed)")
    for digit, (new, old) in enumerate(zip(candidate["guard_recall"], production["guard_recall"])):
        if old - new > config.gate_max_class_loss:
            return False, (f"candidate reads {digit}s of the guard set right {(old - new) * 100:.1f} points "
                           f"less often ({new:.3f} < {old:.3f}; at most {config.gate_max_class_loss * 100:g})")
    return gate(candidate["eval_accuracy"], production["eval_accuracy"], config.promotion_tolerance)


def gate(candidate: float, production: float | None, tolerance: float) -> tuple[bool, str]:
    """Promote when the candidate is not worse than production beyond ``tolerance``."""
    if production is None:
        return True, f"no usable production model; candidate scores {candidate:.4f}"
    if candidate >= production - tolerance:
        return True, f"candidate {candidate:.4f} >= production {production:.4f} - {tolerance:g}"
    return False, f"candidate {candidate:.4f} < production {production:.4f} - {tolerance:g}"


def load_help(entries: list[HelpEntry], holdout_share: float, limits: ImageLimits,
              pipeline: FeaturePipeline, cache: HelpFeatureCache | None = None,
              processes: int = 1) -> HelpData:
    """Help images as features, split for ever by their hash into train and held-back.

    Images whose SHA-256 is in ``cache`` are not decoded again (a stored help
    image never changes); the others are featurised, in ``processes``
    processes when there are many, and the cache is rewritten with every
    readable image's row.
    """
    by_sha: dict[str, np.ndarray] = {}
    todo = []
    for entry in entries:
        row = cache.get(entry.sha256, pipeline.size) if cache is not None else None
        if row is None:
            todo.append(entry)
        else:
            by_sha[entry.sha256] = row
    unreadable = 0
    for entry, (row, error) in zip(todo, featurise([e.png for e in todo], limits, pipeline, processes)):
        if row is None:
            unreadable += 1
            log.warning("help image %s skipped: %s", entry.png, error)
        else:
            by_sha[entry.sha256] = row
    if cache is not None and (todo or set(cache.rows) != set(by_sha)):
        try:
            cache.save(by_sha)
        except OSError as exc:  # a cache that cannot be written only costs time
            log.warning("cannot write the help feature cache: %s", exc)
    rows = {False: ([], []), True: ([], [])}
    for entry in entries:
        row = by_sha.get(entry.sha256)
        if row is None:
            continue
        X, y = rows[is_holdout(entry.sha256, holdout_share)]
        X.append(row)
        y.append(entry.label)
    return HelpData(_dataset(*rows[False], pipeline.size), _dataset(*rows[True], pipeline.size),
                    len(entries), unreadable)


def featurise(paths: list[Path], limits: ImageLimits, pipeline: FeaturePipeline,
              processes: int = 1) -> list[tuple]:
    """``(features, None)`` or ``(None, why)`` per PNG path, in order.

    Many images are split over ``processes`` forked processes (each at this
    process's niceness, one numerical thread); a few are not worth the forks.
    """
    one = functools.partial(_featurise_one, limits=limits, pipeline=pipeline)
    if processes <= 1 or len(paths) < PARALLEL_MIN_IMAGES:
        return [one(path) for path in paths]
    chunk = max(1, min(256, len(paths) // (processes * 8)))
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork"),
                             initializer=_one_thread) as pool:
        return list(pool.map(one, paths, chunksize=chunk))


def _featurise_one(path: Path, limits: ImageLimits, pipeline: FeaturePipeline) -> tuple:
    try:
        return pipeline.transform(decode_ink(Path(path).read_bytes(), limits)), None
    except (OSError, ImageRejected) as exc:
        return None, str(exc)


def _one_thread() -> None:
    threadpool_limits(limits=1)


def _production_scores(registry, pipeline, sets: EvalSets):
    try:
        production = registry.load_production()
    except ModelStoreError as exc:
        # e.g. trained on features of an older preprocessing: it cannot be compared,
        # and the candidate matches the code that now runs.
        log.warning("cannot score production (%s): the candidate is judged alone", exc)
        parent = registry.production_id(missing_ok=True)
        return parent, None
    if production.pipeline != pipeline:
        log.warning("production %s reads features %s, the candidate %s: the candidate is judged alone",
                    production.version, production.pipeline.fingerprint, pipeline.fingerprint)
        return production.version, None
    return production.version, _scores(production, sets)


def _scores(model, sets: EvalSets) -> dict:
    guard_predicted = model.predict(sets.guard.X)
    recall = [float(np.mean(guard_predicted[sets.guard.y == d] == d)) if np.any(sets.guard.y == d) else 1.0
              for d in range(10)]
    return {
        "eval_accuracy": round(training.accuracy(model, sets.evaluation), 5),
        "shipped_holdout_accuracy": round(training.accuracy(model, sets.shipped), 5),
        "help_holdout_accuracy": (round(training.accuracy(model, sets.help_holdout), 5)
                                  if len(sets.help_holdout.y) else None),
        "guard_accuracy": round(float(np.mean(guard_predicted == sets.guard.y)), 5),
        "guard_recall": [round(r, 4) for r in recall],
    }


def _dataset(X: list, y: list, width: int) -> training.Dataset:
    if not X:
        return training.Dataset(np.zeros((0, width), dtype=np.float32), np.zeros(0, dtype=int))
    return training.Dataset(np.stack(X).astype(np.float32), np.asarray(y, dtype=int))


def _concat(a: training.Dataset, b: training.Dataset) -> training.Dataset:
    return training.Dataset(np.concatenate([a.X, b.X.astype(a.X.dtype)]),
                            np.concatenate([a.y, b.y.astype(a.y.dtype)]))
