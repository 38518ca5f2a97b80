"""Scoring answered drawings with shadow models, after the answers have gone out.

Why after, and within a budget: a shadow exists to judge a version on live
traffic before it serves anyone, so it must never delay a user. A predict
worker calls ``score`` once a group's answers are stored and pushed; it
scores a random ``share`` of the group (the share the operator set for that
version) and skips whole groups while the shadows' CPU time exceeds
``max_cpu`` times production's (``SWAGDIGITS_SHADOW_MAX_CPU``). Only
interactive drawings are shadowed: batch images would swamp the tallies with
one client's data.

The shadow models are a dict replaced whole on ``refresh`` (never mutated),
like the production holder: a group reads it once.
"""
from __future__ import annotations

import logging
import random
import time

import numpy as np
import redis

from shared.messaging import shadows
from shared.messaging.shadows import ShadowAnswer
from shared.model.base import Model, ModelUnusable
from shared.model.inference import Answer, Featurized
from shared.model.store import ModelRegistry, ModelStoreError

log = logging.getLogger("swagdigits.shadow")


class ShadowScorer:
    def __init__(self, registry: ModelRegistry, conn: redis.Redis, metrics, max_cpu: float, ttl: int,
                 rng: random.Random | None = None):
        self.registry = registry
        self.conn = conn
        self.metrics = metrics
        self.max_cpu = max_cpu
        self.ttl = ttl
        self.rng = rng or random.Random()
        self.models: dict[str, tuple[Model, float]] = {}   # version -> (model, share)
        self.production_seconds = 0.0
        self.shadow_seconds = 0.0

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

    def score(self, job_ids: list[str], featurized: Featurized, answers: list, images: list[bytes],
              limits, production_seconds: float) -> int:
        """Score a random share of one answered group with each shadow; return drawings scored."""
        self.production_seconds += production_seconds
        models = self.models
        if not models or self.over_budget():
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
            shadows.record(self.conn, version, results, self.ttl)
            self.metrics.observe_shadow(version, len(results), sum(r.shadow_digit == r.production_digit
                                                                   for r in results))
            scored += len(results)
        self.shadow_seconds += time.perf_counter() - started
        return scored
