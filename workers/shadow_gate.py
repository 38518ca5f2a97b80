"""Deciding a shadow trial in the predict worker whose scoring completed it.

Why in a predict worker: the trial ends when the workers' shadow tallies
reach its number of drawings, and only a worker knows when it has just added
the last ones; no other process would have to poll. The decision itself is
``shared.messaging.shadow_trials.judge``; this module carries it out: the
shadow stops, and the candidate is promoted (or becomes the canary when
``SWAGDIGITS_CANARY_SHARE`` > 0: live answers have the last word), rejected,
or left as a candidate when production changed under the trial.
"""
from __future__ import annotations

import logging

import redis

from shared.config import Config
from shared.messaging import canary, model_events, shadow_trials, shadows
from shared.model.store import ModelRegistry, ModelStoreError

log = logging.getLogger("swagdigits.shadow_gate")


class ShadowGate:
    def __init__(self, registry: ModelRegistry, conn: redis.Redis, config: Config, metrics, pusher=None):
        self.registry = registry
        self.conn = conn
        self.config = config
        self.metrics = metrics
        self.pusher = pusher

    def scored(self, version: str, seen: int) -> str | None:
        """``version`` has now scored ``seen`` live drawings: decide its trial if that completes it.

        Returns the outcome ("promoted", "canary", "rejected", "abandoned")
        when this call decided, else None.
        """
        trial = shadow_trials.get(self.conn, version)
        if trial is None or seen < trial.drawings:
            return None
        verdict = shadow_trials.judge(shadows.stats(self.conn, version), trial)
        if not verdict.ready or not shadow_trials.claim(self.conn, version):
            return None      # (claim False: another worker decided first)
        shadows.stop(self.conn, version)
        outcome = self._carry_out(trial, verdict)
        self.metrics.observe_shadow_trial(outcome)
        return outcome

    def _carry_out(self, trial: shadow_trials.Trial, verdict: shadow_trials.Verdict) -> str:
        production = self.registry.production_id(missing_ok=True)
        if production != trial.parent:
            log.warning("shadow trial of %s abandoned: production is now %s, not %s; %s",
                        trial.version, production, trial.parent, verdict.reason)
            return "abandoned"
        if not verdict.promote:
            self.registry.reject(trial.version)
            log.warning("candidate %s rejected: %s", trial.version, verdict.reason)
            return "rejected"
        if self.config.canary_share > 0:
            canary.start(self.conn, trial.version, self.config.canary_share, production=production)
            log.info("candidate %s is now the canary: %s", trial.version, verdict.reason)
            return "canary"
        try:
            model_events.promote_and_announce(self.registry, self.conn, trial.version, reason=verdict.reason,
                                              pusher=self.pusher)
        except ModelStoreError as exc:
            log.error("candidate %s passed its shadow trial but cannot be promoted: %s", trial.version, exc)
            return "abandoned"
        log.info("candidate %s promoted: %s", trial.version, verdict.reason)
        return "promoted"
