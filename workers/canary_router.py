"""Which drawings a canary answers: a random share of each group, with the candidate instead of production.

Why in the worker: the answer must name the version that computed it, and
only the worker knows which one did. The canary model is loaded like a
promotion (checksum, smoke test) and must read the features production
reads, so routing costs one extra ``predict_proba`` on the picked rows and
nothing else. ``current`` is replaced whole on ``refresh`` (a group reads it
once), like the production holder.
"""
from __future__ import annotations

import logging
import random

import redis

from shared.messaging import canary
from shared.messaging.canary import Canary
from shared.model.base import Model, ModelUnusable
from shared.model.inference import Answer, Featurized, answer_from
from shared.model.store import ModelRegistry, ModelStoreError

log = logging.getLogger("swagdigits.canary")


class CanaryRouter:
    def __init__(self, registry: ModelRegistry, conn: redis.Redis, rng: random.Random | None = None):
        self.registry = registry
        self.conn = conn
        self.rng = rng or random.Random()
        self.current: tuple[Model, Canary] | None = None

    def refresh(self, production: Model | None) -> None:
        """Follow the canary the operator or the retrain worker set (or its end)."""
        wanted = canary.active(self.conn)
        if wanted is None:
            if self.current is not None:
                log.info("canary %s ended", self.current[1].version)
            self.current = None
            return
        if self.current is not None and self.current[0].version == wanted.version:
            self.current = (self.current[0], wanted)
            return
        try:
            model = self.registry.load(wanted.version)
            model.smoke_test()
        except (ModelStoreError, ModelUnusable) as exc:
            log.error("cannot serve %s as a canary: %s", wanted.version, exc)
            self.current = None
            return
        if production is not None and model.pipeline != production.pipeline:
            log.error("canary %s reads other features than production: not served", wanted.version)
            self.current = None
            return
        log.info("answering %.0f%% of drawings with canary %s", wanted.share * 100, wanted.version)
        self.current = (model, wanted)

    def route(self, featurized: Featurized, outcomes: list) -> tuple[list, set[int], str | None]:
        """Answer a random share of the decoded drawings with the canary.

        Returns the outcomes (canary answers in place of production's), the
        indexes the canary answered, and its version (None: no canary).
        """
        current = self.current
        if current is None:
            return outcomes, set(), None
        model, run = current
        picked = [i for i, o in enumerate(outcomes) if isinstance(o, Answer) and self.rng.random() < run.share]
        answered = sum(isinstance(o, Answer) for o in outcomes)
        if picked:
            outcomes = list(outcomes)
            for i, row in zip(picked, model.predict_proba(featurized.rows_for(picked))):
                outcomes[i] = answer_from(row)
        canary.count_answers(self.conn, run.version, len(picked), answered - len(picked))
        return outcomes, set(picked), model.version
