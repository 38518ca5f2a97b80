"""The retraining job: train on shipped digits + help data, judge, version, maybe promote.

RQ runs ``run_retrain`` (enqueued by name from ``shared.messaging.retrain_trigger``);
``retrain`` holds the logic and is what tests call in-process.

Judging is fair because candidate and production are scored on the *same*
fixed sets (``judge``):

1. the guard set (``training.guard_set``): shipped digits and synthetic
   drawings of styles the help data does not come from, plus the held-back
   share of the images operators imported (``swagdigits import``: trusted,
   no web client wrote them). A candidate that
   loses more than ``gate_max_guard_loss`` of accuracy there, or reads any one
   digit ``gate_max_class_loss`` less often, is rejected *whatever it gains*
   on the corrections: help data must teach new writers without making the
   model worse for everybody else;
2. the evaluation set: the shipped digits' held-out part plus the help images
   whose SHA-256, keyed by the server secret, puts them in the held-back share
   (``help_store.is_holdout``),
   never trained on. The candidate must not be worse than production there by
   more than ``promotion_tolerance``.

A rejected candidate stays in the store, marked rejected, with the reason in
its metadata.

What the crowd's help data may teach (``cap_per_client``, ``corroborated``), decided before
fitting, because neither set above need contain the style an attacker
targets: 100 pen-stroke 7s labelled 1 from one address were promoted and
made 41% of unseen pen-stroke 7s read as 1 (issue 17, finding 2), while the
guard set barely moved.

- One client address (the help store's keyed hash; an IPv6 client by its /64) contributes at most
  ``help_client_max`` images to a retraining, its earliest; the rest are left
  out of that retraining, logged and counted (``n_help_capped``).
- A help image whose label production gives less than
  ``help_contradiction_below`` probability contradicts a confident answer.
  Such images are trained on only when at least
  ``help_corroborating_clients`` addresses sent contradictions of the same
  kind (label, production's answer) to this retraining: a real blind spot
  is reported by several people, a poisoning from one address is not. The
  others are left out and counted (``n_help_uncorroborated``). Corrections
  of unsure or near answers, and operator imports (``trusted``), are
  unaffected.
"""
from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import time
import uuid
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from datetime import datetime, timezone

import numpy as np
import redis
from threadpoolctl import threadpool_limits

from shared.config import Config
from shared.help_store import HelpEntry, HelpStore, Holdout
from shared.images.ink import decode_ink
from shared.images.upload import ImageLimits, ImageRejected
from shared.messaging import canary, model_events, retrain_trigger, shadow_trials
from shared.model import families
from shared.model.features import FeaturePipeline
from shared.model.store import ModelRegistry, ModelStoreError
from shared.model.training import fitting as training
from shared.model.training import feature_cache
from shared.model.training.feature_cache import HelpFeatureCache
from shared.model.training.publishing import drift_reference, library_versions
from workers.retrain_result import RetrainResult

log = logging.getLogger("swagdigits.retrain")

# Help images are featurised in this many processes (they inherit the retrain
# worker's nice +10, so busy predict workers still get the CPU first) when at
# least PARALLEL_MIN_IMAGES are not in the feature cache yet.
HELP_PROCESSES = min(2, os.cpu_count() or 1)
PARALLEL_MIN_IMAGES = 200


@dataclass(frozen=True)
class HelpData:
    train: training.Dataset
    holdout: training.Dataset
    seen: int          # entries found (trained on, held out, or unreadable)
    unreadable: int
    train_clients: tuple = ()   # per train row: the sender's client hash (None: not recorded)
    train_trusted: tuple = ()   # per train row: stored by an operator
    holdout_trusted: tuple = ()  # per held-back row: stored by an operator

    def trusted_holdout(self) -> training.Dataset:
        """The held-back images operators imported: a yardstick no web client wrote."""
        keep = np.asarray(self.holdout_trusted or [False] * len(self.holdout.y), dtype=bool)
        return training.Dataset(self.holdout.X[keep], self.holdout.y[keep])


@dataclass(frozen=True)
class Selection:
    """The help data a retraining trains on after ``cap_per_client`` and ``corroborated``, and what it left out."""

    train: training.Dataset
    capped: int           # over a client's share of this retraining
    uncorroborated: int   # confident contradictions from too few addresses


def run_retrain(reason: str = "requested") -> dict:
    """RQ entry point: everything from the environment and the job's own connection."""
    from rq import get_current_job

    from shared.messaging.push import Pusher

    config = Config.from_env()
    job = get_current_job()
    conn = job.connection if job is not None else redis.Redis.from_url(config.redis_url)
    return retrain(config, conn, ModelRegistry(config.model_dir), HelpStore.from_config(config, conn),
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
    cache_dir = feature_cache.directory(registry.root)
    fixed_from = training.prepare_fixed(cache_dir, pipeline)
    fixed_done = time.perf_counter()
    help_cache = HelpFeatureCache(cache_dir, pipeline).load()
    entries = help_store.entries()
    kept, capped = cap_per_client(entries, config.help_client_max)
    help_data = load_help(kept, help_store.holdout(config.help_holdout_share), limits, pipeline,
                          cache=help_cache, processes=HELP_PROCESSES)
    help_done = time.perf_counter()
    parent, production_model = _production(registry, pipeline)
    chosen = corroborated(help_data, production_model, config.help_contradiction_below,
                          config.help_corroborating_clients)
    selection = Selection(chosen.train, capped, chosen.uncorroborated)
    if selection.capped or selection.uncorroborated:
        log.warning("help data left out of this retraining: %d over a client's cap of %d, %d "
                    "contradicting production without %d addresses agreeing",
                    selection.capped, config.help_client_max, selection.uncorroborated,
                    config.help_corroborating_clients)
    shipped_train, shipped_eval = training.shipped_digits(pipeline)
    train = _concat(shipped_train, selection.train)   # shipped first: fit() augments them
    trained = training.fit(train, appended_weight=config.help_weight, family=config.model_family)
    train_seconds = time.perf_counter() - started
    timings = {"fixed_features": round(fixed_done - started, 2), "fixed_from": fixed_from,
               "help_features": round(help_done - fixed_done, 2),
               "help_cached": help_cache.hits, "fit": round(time.perf_counter() - help_done, 2)}

    evaluation = _concat(shipped_eval, help_data.holdout)
    trusted_holdout = help_data.trusted_holdout()
    sets = EvalSets(shipped_eval, help_data.holdout, evaluation,
                    _concat(training.guard_set(pipeline), trusted_holdout))
    candidate = _scores(trained, sets)
    production = _scores(production_model, sets) if production_model is not None else None
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
        "n_help_images": int(len(selection.train.y)),
        "n_help_capped": selection.capped,
        "n_help_uncorroborated": selection.uncorroborated,
        "help_weight": config.help_weight,
        "n_help_holdout": int(len(help_data.holdout.y)),
        "n_guard": int(len(sets.guard.y)),
        "n_guard_trusted_imports": int(len(trusted_holdout.y)),
        "n_help_unreadable": help_data.unreadable,
        "n_holdout": int(len(evaluation.y)),
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": f"retrain ({reason})",
        "parent": parent,
        "libraries": library_versions(),
        "reference": drift_reference(trained, sets.guard),
    }
    model_id = registry.publish(trained, metadata)
    if not passed:
        registry.reject(model_id)
        verdict = "rejected"
    elif config.shadow_gate_drawings > 0 and parent is not None:   # live drawings first, in shadow
        shadow_trials.start(conn, model_id, config.shadow_gate_drawings, parent)
        verdict = "shadow"
    elif config.canary_share > 0 and parent is not None:   # live traffic has the last word
        canary.start(conn, model_id, config.canary_share, production=parent)
        verdict = "canary"
    else:
        model_events.promote_and_announce(registry, conn, model_id, reason=f"retrain: {why}", pusher=pusher)
        verdict = "promoted"
    help_store.mark_trained(len(entries))
    log.info("candidate %s %s: %s (trained on %d help images in %.1fs: %s)",
             model_id, verdict, why, len(selection.train.y), train_seconds, timings)
    return RetrainResult(
        model_id=model_id, outcome=verdict, reason=why, parent=parent,
        candidate_accuracy=candidate["eval_accuracy"],
        production_accuracy=production["eval_accuracy"] if production else None,
        help_images=int(len(selection.train.y)), n_help_holdout=int(len(help_data.holdout.y)),
        train_seconds=round(train_seconds, 2), timings=timings,
        total_seconds=round(time.perf_counter() - started, 2)).to_dict()


@dataclass(frozen=True)
class EvalSets:
    shipped: training.Dataset       # the shipped digits' held-out part
    help_holdout: training.Dataset  # held-back help images
    evaluation: training.Dataset    # both together
    guard: training.Dataset         # trusted: shipped held-out, guard synthetic drawings, held-back imports


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


def load_help(entries: list[HelpEntry], holdout: Holdout, limits: ImageLimits,
              pipeline: FeaturePipeline, cache: HelpFeatureCache | None = None,
              processes: int = 1) -> HelpData:
    """Help images as features, split for ever by ``holdout`` (their keyed hash) into train and held-back.

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
    clients, trusted, holdout_trusted = [], [], []
    for entry in entries:
        row = by_sha.get(entry.sha256)
        if row is None:
            continue
        held_out = holdout(entry.sha256)
        X, y = rows[held_out]
        X.append(row)
        y.append(entry.label)
        if held_out:
            holdout_trusted.append(entry.trusted)
        else:
            clients.append(entry.client)
            trusted.append(entry.trusted)
    return HelpData(_dataset(*rows[False], pipeline.size), _dataset(*rows[True], pipeline.size),
                    len(entries), unreadable, tuple(clients), tuple(trusted), tuple(holdout_trusted))


def cap_per_client(entries: list[HelpEntry], cap: int) -> tuple[list[HelpEntry], int]:
    """``entries`` with each client's earliest ``cap`` (operator imports all); and how many were left out.

    Entries without a recorded client count as one client.
    """
    if cap <= 0:
        return entries, 0
    by_client: dict = defaultdict(list)
    for entry in entries:
        if not entry.trusted:
            by_client[entry.client].append(entry)
    dropped = set()
    for group in by_client.values():
        if len(group) > cap:
            group.sort(key=lambda e: (e.received_at, e.id))
            dropped.update(e.id for e in group[cap:])
    return [e for e in entries if e.id not in dropped], len(dropped)


@dataclass(frozen=True)
class _Corroborated:
    train: training.Dataset
    uncorroborated: int


def corroborated(help_data: HelpData, production, below: float, min_clients: int) -> _Corroborated:
    """The training rows, without confident contradictions of production too few addresses sent.

    A row contradicts when production gives its label less than ``below``
    probability; it is kept when at least ``min_clients`` distinct clients
    sent contradictions with the same label and the same production answer.
    """
    train = help_data.train
    if production is None or min_clients <= 1 or not len(train.y):
        return _Corroborated(train, 0)
    probs = production.predict_proba(train.X)
    rows = np.arange(len(train.y))
    answers = np.argmax(probs, axis=1)
    trusted = np.asarray(help_data.train_trusted or [False] * len(rows), dtype=bool)
    contradicting = (probs[rows, train.y] < below) & ~trusted
    clients = help_data.train_clients or (None,) * len(rows)
    senders: dict = defaultdict(set)
    for i in rows[contradicting]:
        senders[int(train.y[i]), int(answers[i])].add(clients[i])
    drop = np.zeros(len(rows), dtype=bool)
    for i in rows[contradicting]:
        if len(senders[int(train.y[i]), int(answers[i])]) < min_clients:
            drop[i] = True
    for (label, answer), who in senders.items():
        if len(who) < min_clients:
            log.info("help images labelled %d that production reads as %d left out: sent by %d "
                     "address(es), %d needed", label, answer, len(who), min_clients)
    return _Corroborated(training.Dataset(train.X[~drop], train.y[~drop]), int(drop.sum()))


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


def _production(registry, pipeline):
    """(production's version, the model if it reads the candidate's features, else None)."""
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
    return production.version, production


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
