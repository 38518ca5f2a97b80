"""Canary: a share of live drawings answered by a candidate, rolled back on its own when users correct it more.

Why here: the operator (or a retraining that passed the gate, with
``SWAGDIGITS_CANARY_SHARE`` > 0) starts a canary on one process, every
predict worker must route the same share to it (a model event makes them
re-read ``CANARY_KEY``), and the evidence comes from two sides: workers count
the answers each version gave during the canary, the web tier counts the
corrections users send for them (``/helpdata`` with the answer's ``job_id``:
the answer names its version). Both add to one hash per canary
(``CANARY_STATS_KEY``), so any web process can judge at each correction.

The judgement (``judge``): once the canary has given ``min_answers``
answers, it is rolled back if its correction rate exceeds production's over
the same period by more than ``margin``. Production's rate is measured
during the canary, on the same traffic, so a day of sloppy users does not
count against the candidate.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

import redis

from shared.messaging import protocol as p


@dataclass(frozen=True)
class Canary:
    version: str
    share: float
    production: str | None
    since: float


@dataclass(frozen=True)
class Verdict:
    rollback: bool
    reason: str
    canary_rate: float | None
    production_rate: float | None


def start(conn: redis.Redis, version: str, share: float, production: str | None) -> Canary:
    """Serve ``share`` of live drawings with ``version`` (replacing any canary); tell every worker."""
    canary = Canary(version, float(share), production, time.time())
    pipe = conn.pipeline()
    pipe.delete(p.CANARY_KEY, p.CANARY_STATS_KEY.format(version))
    pipe.hset(p.CANARY_KEY, mapping={"version": version, "share": repr(canary.share),
                                     "production": production or "", "since": repr(canary.since)})
    pipe.execute()
    _announce(conn, version, "start")
    return canary


def stop(conn: redis.Redis, reason: str = "stopped") -> Canary | None:
    """End the canary (its tallies stay); None if there was none."""
    current = active(conn)
    if current is None:
        return None
    conn.delete(p.CANARY_KEY)
    _announce(conn, current.version, reason)
    return current


def active(conn: redis.Redis) -> Canary | None:
    raw = {k.decode(): v.decode() for k, v in conn.hgetall(p.CANARY_KEY).items()}
    if not raw.get("version"):
        return None
    return Canary(raw["version"], float(raw["share"]), raw.get("production") or None, float(raw["since"]))


def count_answers(conn: redis.Redis, canary_version: str, canary_answers: int, production_answers: int) -> None:
    """A worker's answers during the canary, by which side gave them."""
    if not (canary_answers or production_answers):
        return
    key = p.CANARY_STATS_KEY.format(canary_version)
    pipe = conn.pipeline(transaction=False)
    pipe.hincrby(key, "canary_answers", canary_answers)
    pipe.hincrby(key, "production_answers", production_answers)
    pipe.execute()


def count_correction(conn: redis.Redis, canary: Canary, answered_by: str) -> bool:
    """A user corrected an answer during ``canary``; False if neither side of it gave that answer."""
    if answered_by == canary.version:
        field = "canary_corrections"
    elif answered_by == canary.production:
        field = "production_corrections"
    else:
        return False
    conn.hincrby(p.CANARY_STATS_KEY.format(canary.version), field, 1)
    return True


def stats(conn: redis.Redis, version: str) -> dict:
    raw = {k.decode(): int(v) for k, v in conn.hgetall(p.CANARY_STATS_KEY.format(version)).items()}
    out = {f: raw.get(f, 0) for f in ("canary_answers", "canary_corrections",
                                      "production_answers", "production_corrections")}
    out["canary_correction_rate"] = _ratio(out["canary_corrections"], out["canary_answers"])
    out["production_correction_rate"] = _ratio(out["production_corrections"], out["production_answers"])
    return out


def judge(tallies: dict, min_answers: int, margin: float) -> Verdict:
    """Roll back when, over at least ``min_answers`` canary answers, users correct it ``margin`` more often."""
    canary_rate, production_rate = tallies["canary_correction_rate"], tallies["production_correction_rate"]
    if tallies["canary_answers"] < min_answers:
        return Verdict(False, f"{tallies['canary_answers']} of {min_answers} canary answers so far",
                       canary_rate, production_rate)
    excess = (canary_rate or 0.0) - (production_rate or 0.0)
    if excess > margin:
        return Verdict(True, f"users corrected the canary {canary_rate:.1%} of the time, production "
                             f"{(production_rate or 0.0):.1%} (margin {margin:.1%})", canary_rate, production_rate)
    return Verdict(False, f"correction rate within {margin:.1%} of production's", canary_rate, production_rate)


def _announce(conn: redis.Redis, version: str, action: str) -> None:
    conn.publish(p.MODEL_EVENTS_CHANNEL, json.dumps({"canary": version, "action": action, "at": time.time()}))


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 5) if b else None
