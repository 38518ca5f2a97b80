"""Telling everyone that a new model version is live.

Promotion changes the store; this makes the change seen at once: a Redis
message on ``MODEL_EVENTS_CHANNEL`` (every predict worker's
``follow_promotions`` thread loads the store's production model and swaps it
in between batches) and a Socket.IO ``model_changed`` event to every browser.
Workers do not trust the message's content: they re-read the store, so a lost
or repeated message cannot put a wrong version live.
"""
from __future__ import annotations

import json
import logging
import time

import redis

from shared.messaging import canary
from shared.messaging import protocol as p

log = logging.getLogger(__name__)


def announce(conn: redis.Redis, model_id: str, previous: str | None, reason: str = "",
             pusher=None) -> int:
    """Publish a promotion; return how many predict workers were listening."""
    payload = {"model_version": model_id, "previous": previous, "reason": reason, "at": time.time()}
    listeners = int(conn.publish(p.MODEL_EVENTS_CHANNEL, json.dumps(payload)))
    if pusher is not None:
        try:
            pusher.emit(p.EVENT_MODEL_CHANGED, {"model_version": model_id, "previous": previous})
        except Exception:  # browsers learn it from their next answer; the swap matters more
            log.exception("could not tell browsers about model %s", model_id)
    log.info("announced model %s (was %s) to %d listeners", model_id, previous, listeners)
    return listeners


def promote_and_announce(registry, conn: redis.Redis, model_id: str, reason: str,
                         pusher=None) -> str | None:
    """Promote in the store, then announce; return the version it replaced.

    A canary running against the old production ends: its comparison was
    with a version that no longer serves (and a promoted canary is simply live).
    """
    previous = registry.promote(model_id, reason=reason)
    canary.stop(conn, reason=f"production is now {model_id}")
    announce(conn, model_id, previous, reason, pusher)
    return previous


def rollback_and_announce(registry, conn: redis.Redis, pusher=None) -> tuple[str, str | None]:
    """Re-promote the most recently retired version and announce it."""
    model_id, previous = registry.rollback()
    canary.stop(conn, reason=f"rolled back to {model_id}")
    announce(conn, model_id, previous, "rollback", pusher)
    return model_id, previous
