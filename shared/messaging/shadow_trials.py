"""Shadow trials: a retrained candidate earns its automatic promotion on live drawings first.

Why: the offline gate judges a candidate on fixed sets; live traffic is what
it will serve. With ``SWAGDIGITS_SHADOW_GATE_DRAWINGS`` > 0 the retrain job
does not promote a candidate that passed the gate: it puts it in shadow at
share 1 (the predict workers' CPU budget still caps it) and records a trial
here. When the predict workers' tallies show the candidate has scored the
trial's number of live drawings, one worker (``claim``: whoever removes the
trial decides, so several workers never decide twice) judges it: promoted if
it read no fewer of the drawings users later labelled right than
production did, rejected otherwise. A trial whose production changed
meanwhile (an operator's promotion, another trial) is abandoned: it was
compared with a version that no longer serves.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

import redis

from shared.messaging import protocol as p
from shared.messaging import shadows

TRIAL_SHARE = 1.0   # a trial scores every drawing the workers' shadow CPU budget allows


@dataclass(frozen=True)
class Trial:
    version: str
    drawings: int            # live drawings to score before the verdict
    parent: str | None       # production when the trial began
    since: float


@dataclass(frozen=True)
class Verdict:
    ready: bool              # enough drawings scored to decide
    promote: bool
    reason: str


def start(conn: redis.Redis, version: str, drawings: int, parent: str | None) -> Trial:
    """Put ``version`` in shadow until it has scored ``drawings`` live drawings; then judge it."""
    trial = Trial(version, int(drawings), parent, time.time())
    conn.hset(p.SHADOW_TRIALS_KEY, version, json.dumps(asdict(trial)))
    shadows.start(conn, version, TRIAL_SHARE)
    return trial


def get(conn: redis.Redis, version: str) -> Trial | None:
    raw = conn.hget(p.SHADOW_TRIALS_KEY, version)
    return None if raw is None else Trial(**json.loads(raw))


def pending(conn: redis.Redis) -> dict[str, Trial]:
    return {k.decode(): Trial(**json.loads(v)) for k, v in conn.hgetall(p.SHADOW_TRIALS_KEY).items()}


def claim(conn: redis.Redis, version: str) -> bool:
    """Take the decision on ``version``'s trial; False if another process took it (or there is none)."""
    return bool(conn.hdel(p.SHADOW_TRIALS_KEY, version))


def judge(tallies: dict, trial: Trial) -> Verdict:
    """Ready once ``trial.drawings`` are scored; promote when no labelled drawing was lost.

    "Lost" counts the drawings users labelled (``/helpdata`` with the
    answer's ``job_id``) that production read right and the candidate did
    not, net of the reverse: the candidate must read at least as many of
    them right. With no labelled drawing the trial shows only that the
    candidate loads and serves live drawings; its agreement is reported.
    """
    seen = tallies["seen"]
    if seen < trial.drawings:
        return Verdict(False, False, f"{seen} of {trial.drawings} live drawings scored")
    labelled, shadow_right, production_right = (tallies["labelled"], tallies["shadow_right"],
                                                tallies["production_right"])
    summary = (f"{seen} live drawings scored, agreement {tallies['agreement']:.1%}; of {labelled} labelled, "
               f"the candidate read {shadow_right} right, production {production_right}")
    if shadow_right < production_right:
        return Verdict(True, False, f"shadow trial lost: {summary}")
    return Verdict(True, True, f"shadow trial passed: {summary}")
