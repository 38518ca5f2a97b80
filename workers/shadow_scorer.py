"""Scoring answered drawings with shadow models, after the answers have gone out.

Why after, when idle, and within a budget: a shadow exists to judge a
version on live traffic before it serves anyone, so it must never delay a
user. A predict worker ``offer``s each group once its answers are stored and
pushed; the group waits in a short backlog (``BACKLOG_GROUPS``; the oldest
is dropped when it is full) until the worker finds no drawing and no batch
chunk waiting, and then ``drain_one`` scores a random ``share`` of one group
(the share the operator set for that version). Groups are also skipped while
the shadows' CPU time exceeds ``max_cpu`` times production's
(``SWAGDIGITS_SHADOW_MAX_CPU``). So a saturated worker shadows little or
nothing, which is the point: a drawing that arrives during shadow work waits
at most one group's prediction. Only interactive drawings are shadowed:
batch images would swamp the tallies with one client's data.

The shadow models are a dict replaced whole on ``refresh`` (never mutated),
like the production holder: a group reads it once.
"""
from __future__ import annotations

import logging
import random
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np
import redis

from shared.messaging import shadows
from shared.messaging.shadows import ShadowAnswer
from shared.model.base import Model, ModelUnusable
from shared.model.inference import Answer, Featurized
from shared.model.store import ModelRegistry, ModelStoreError

log = logging.getLogger("swagdigits.shadow")

BACKLOG_GROUPS = 64        # answered groups kept for shadow scoring until the worker is idle


@dataclass(frozen=True)
class _Group:
    job_ids: list[str]
    featurized: Featurized
    answers: list
    images: list[bytes]
    limits: object


class ShadowScorer:
    def __init__(self, registry: ModelRegistry, conn: redis.Redis, metrics, max_cpu: float, ttl: int,
                 rng: random.Random | None = None, on_scored: Callable[[str, int], object] | None = None):
        self.registry = registry
        self.conn = conn
        self.metrics = metrics
        self.max_cpu = max_cpu
        self.ttl = ttl
        self.rng = rng or random.Random()
        self.on_scored = on_scored   # (version, drawings it has seen in all): a shadow trial may end
        self.models: dict[str, tuple[Model, float]] = {}   # version -> (model, share)
        self.production_seconds = 0.0
        self.shadow_seconds = 0.0
        self.backlog: deque[_Group] = deque(maxlen=BACKLOG_GROUPS)
        self.dropped = 0           # groups that left the backlog unscored (the worker was busy)

    def refresh(self) -> None:
        """Load the versions the operator put in shadow (kept if already loaded), drop the others."""
        wanted = shadows.active(self.conn)
        models = {}
        for version, share in wanted.items():
            loaded = self.models.get(version)
            if loaded is not None:
                models[version] = (loaded[0], share)
                continue
            try:
                model = self.registry.load(version)
                model.smoke_test()
            except (ModelStoreError, ModelUnusable) as exc:
                log.error("cannot run %s in shadow: %s", version, exc)
                continue
            log.info("scoring %.0f%% of drawings with %s in shadow", share * 100, version)
            models[version] = (model, share)
        self.models = models

    def over_budget(self) -> bool:
        return self.max_cpu <= 0 or self.shadow_seconds > self.max_cpu * self.production_seconds

    def offer(self, job_ids: list[str], featurized: Featurized, answers: list, images: list[bytes],
              limits, production_seconds: float) -> None:
        """Keep an answered group for shadow scoring when the worker is next idle."""
        self.production_seconds += production_seconds
        if not self.models:
            return
        if len(self.backlog) == self.backlog.maxlen:
            self.dropped += 1
        self.backlog.append(_Group(job_ids, featurized, answers, images, limits))

    def drain_one(self) -> bool:
        """Score the oldest waiting group (or skip it over budget); False if none waited."""
        if not self.backlog:
            return False
        group = self.backlog.popleft()
        if self.over_budget():
            self.dropped += 1
            return True
        self.score(group)
        return True

    def score(self, group: _Group) -> int:
        """Score a random share of one answered group with each shadow; return drawings scored."""
        job_ids, featurized, answers, images, limits = (group.job_ids, group.featurized, group.answers,
                                                        group.images, group.limits)
        models = self.models
        if not models:
            return 0
        started = time.perf_counter()
        scored = 0
        for version, (model, share) in models.items():
            picked = [i for i, a in enumerate(answers) if isinstance(a, Answer) and self.rng.random() < share]
            if not picked:
                continue
            rows = (featurized.rows_for(picked) if model.pipeline == featurized.pipeline else
                    np.stack(Featurized(model.pipeline).add([images[i] for i in picked], limits).rows))
            probs = model.predict_proba(rows)
            results = []
            for i, row in zip(picked, probs):
                digit = int(np.argmax(row))
                results.append(ShadowAnswer(job_ids[i], answers[i].digit, answers[i].probabilities[answers[i].digit],
                                            digit, float(row[digit])))
            seen = shadows.record(self.conn, version, results, self.ttl)
            self.metrics.observe_shadow(version, len(results), sum(r.shadow_digit == r.production_digit
                                                                   for r in results))
            scored += len(results)
            if self.on_scored is not None:
                self.on_scored(version, seen)
        self.shadow_seconds += time.perf_counter() - started
        return scored
