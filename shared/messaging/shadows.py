"""Shadow models: versions that score live drawings beside production without answering anyone.

Why in Redis: an operator starts a shadow on one web process, every predict
worker must pick it up (a message on ``MODEL_EVENTS_CHANNEL`` makes them
re-read ``SHADOW_KEY``), and the tallies of all workers add up in one hash per
version (``SHADOW_STATS_KEY``), where the web tier also adds what users'
corrections say. Each shadow answer is kept per job for ``ttl`` seconds
(``SHADOW_ANSWERS_KEY``) so that a correction sent later through
``/helpdata`` with the job's id can be scored against both models.

The tallies are plain counters (HINCRBY / HINCRBYFLOAT): a worker adds a
group's worth in one pipelined round trip, after its answers have gone out.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

import redis

from shared.messaging import protocol as p

@dataclass(frozen=True)
class ShadowAnswer:
    job_id: str
    production_digit: int
    production_confidence: float
    shadow_digit: int
    shadow_confidence: float


def start(conn: redis.Redis, version: str, share: float) -> None:
    """Run ``version`` in shadow on ``share`` of the live drawings; tell every worker."""
    conn.hset(p.SHADOW_KEY, version, repr(float(share)))
    _announce(conn, version, "start")


def stop(conn: redis.Redis, version: str) -> bool:
    """Stop scoring with ``version`` (its tallies stay); False if it was not in shadow.

    A shadow trial of ``version`` (``shadow_trials``) ends undecided with it:
    the version stays a candidate.
    """
    pipe = conn.pipeline()
    pipe.hdel(p.SHADOW_KEY, version)
    pipe.hdel(p.SHADOW_TRIALS_KEY, version)
    removed = bool(pipe.execute()[0])
    if removed:
        _announce(conn, version, "stop")
    return removed


def active(conn: redis.Redis) -> dict[str, float]:
    """Shadow versions and the share of drawings each scores."""
    return {k.decode(): float(v) for k, v in conn.hgetall(p.SHADOW_KEY).items()}


def record(conn: redis.Redis, version: str, answers: list[ShadowAnswer], ttl: int) -> int:
    """Add one group's shadow answers to ``version``'s tallies and keep each per job for corrections.

    Returns the drawings ``version`` has now seen in all (0 when none were given).
    """
    if not answers:
        return 0
    key = p.SHADOW_STATS_KEY.format(version)
    pipe = conn.pipeline(transaction=False)
    pipe.hincrby(key, "seen", len(answers))
    pipe.hincrby(key, "agree", sum(a.shadow_digit == a.production_digit for a in answers))
    pipe.hincrbyfloat(key, "production_confidence_sum", sum(a.production_confidence for a in answers))
    pipe.hincrbyfloat(key, "shadow_confidence_sum", sum(a.shadow_confidence for a in answers))
    for a in answers:
        answers_key = p.SHADOW_ANSWERS_KEY.format(a.job_id)
        pipe.hset(answers_key, version, a.shadow_digit)
        pipe.expire(answers_key, ttl)
    return int(pipe.execute()[0])


def record_correction(conn: redis.Redis, job_id: str, label: int, production_digit: int) -> int:
    """A user labelled a drawing some shadows scored: count who read it right; return how many shadows."""
    scored = conn.hgetall(p.SHADOW_ANSWERS_KEY.format(job_id))
    if not scored:
        return 0
    pipe = conn.pipeline(transaction=False)
    for version, digit in scored.items():
        key = p.SHADOW_STATS_KEY.format(version.decode())
        pipe.hincrby(key, "corrected", 1)
        pipe.hincrby(key, "production_right", int(production_digit == label))
        pipe.hincrby(key, "shadow_right", int(int(digit) == label))
    pipe.delete(p.SHADOW_ANSWERS_KEY.format(job_id))   # one label per drawing counts once
    pipe.execute()
    return len(scored)


def stats(conn: redis.Redis, version: str) -> dict:
    """What ``version`` did in shadow: drawings seen, agreement, mean confidences, right answers and
    accuracy of both models on the drawings users labelled."""
    raw = {k.decode(): float(v) for k, v in conn.hgetall(p.SHADOW_STATS_KEY.format(version)).items()}
    seen, corrected = raw.get("seen", 0.0), raw.get("corrected", 0.0)
    return {
        "seen": int(seen),
        "agreement": _ratio(raw.get("agree", 0.0), seen),
        "production_mean_confidence": _ratio(raw.get("production_confidence_sum", 0.0), seen),
        "shadow_mean_confidence": _ratio(raw.get("shadow_confidence_sum", 0.0), seen),
        "labelled": int(corrected),
        "production_right": int(raw.get("production_right", 0.0)),
        "shadow_right": int(raw.get("shadow_right", 0.0)),
        "production_accuracy_on_labelled": _ratio(raw.get("production_right", 0.0), corrected),
        "shadow_accuracy_on_labelled": _ratio(raw.get("shadow_right", 0.0), corrected),
    }


def _announce(conn: redis.Redis, version: str, action: str) -> None:
    conn.publish(p.MODEL_EVENTS_CHANNEL, json.dumps({"shadow": version, "action": action, "at": time.time()}))


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 5) if b else None
