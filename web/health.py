"""Liveness and readiness, for supervisors, load balancers and ``swagdigits up``."""
from __future__ import annotations

import redis
from flask import Blueprint, jsonify

from shared.messaging import heartbeat
from web.services import services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """The process is up and answering; says nothing about its dependencies."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """Ready when Redis answers and a live predict worker serves a production model."""
    body = readiness()
    return jsonify(body), (200 if body["ready"] else 503)


def readiness() -> dict:
    """``{ready, missing, predict_workers, model_versions}``: the one readiness rule, which
    ``/readyz`` and the Open Inference Protocol's ready routes (``web.inference_v2``) share."""
    s = services()
    missing, workers = [], []
    try:
        s.conn.ping()
        workers = heartbeat.live_workers(s.conn, s.config.worker_heartbeat, role="predict")
    except redis.RedisError:
        missing.append("redis")
    if "redis" not in missing and not workers:
        missing.append("predict_worker")
    versions = sorted({w.get("model_version") for w in workers if w.get("model_version")})
    if "redis" not in missing and not versions:
        missing.append("production_model")
    return {"ready": not missing, "missing": missing, "predict_workers": len(workers),
            "model_versions": versions}
