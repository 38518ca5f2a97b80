"""Model versions over HTTP: list them (anyone), retrain, promote, roll back (operators).

Anonymous callers see versions, states, scores and which versions serve; the
exact library versions a model was trained with and the live workers (host
names and process ids) are for operators, who send the admin token: they tell
an attacker which known vulnerabilities to try and where.

Reads and state changes go through ``ModelRegistry``'s storage-only path, which
never imports scikit-learn, so the web tier stays small. Loading a model is a
worker's job: after a promotion the workers re-read the store, verify the
artifact, smoke-test it and swap it in; a bad artifact is refused there and the
previous model keeps serving.
"""
from __future__ import annotations

import re
from dataclasses import asdict

from flask import Blueprint, jsonify, request

from shared.messaging import retrain_trigger
from shared.messaging import model_events
from shared.messaging import heartbeat
from shared.messaging import canary, shadow_trials, shadows
from shared.model.store import ModelRegistry, ModelStoreError
from web.auth import admin_required, is_operator
from web.errors import ApiError
from web.services import services

bp = Blueprint("models_api", __name__, url_prefix="/api")

_MODEL_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,63}")
# Model metadata only operators see.
_OPERATOR_METADATA = ("libraries",)


class _SocketPusher:
    """Emit through this process's Flask-SocketIO (its Redis message queue reaches every browser)."""

    def emit(self, event: str, data: dict, room: str | None = None) -> None:
        from web.sockets import socketio

        socketio.emit(event, data, to=room)


def registry() -> ModelRegistry:
    return services().registry


@bp.get("/models")
def list_models():
    s = services()
    operator = is_operator()
    reg = registry()
    production = reg.production_id(missing_ok=True)
    workers = heartbeat.live_workers(s.conn, s.config.worker_heartbeat, role="predict")
    serving: dict[str, int] = {}
    for w in workers:
        if w.get("model_version"):
            serving[w["model_version"]] = serving.get(w["model_version"], 0) + 1
    models = []
    for m in reg.list():
        entry = m.as_dict()
        entry["state"] = m.states[0] if m.states else "candidate"
        entry["live"] = m.model_id == production
        entry["workers_serving"] = serving.get(m.model_id, 0)
        if not operator:
            entry["metadata"] = {k: v for k, v in entry["metadata"].items() if k not in _OPERATOR_METADATA}
        models.append(entry)
    trials = shadow_trials.pending(s.conn)
    shadow = {version: {"share": share, **shadows.stats(s.conn, version),
                        "trial": asdict(trials[version]) if version in trials else None}
              for version, share in shadows.active(s.conn).items()}
    running = canary.active(s.conn)
    body = {"production": production, "serving": serving, "models": models, "shadow": shadow,
            "canary": None if running is None else {**running.__dict__, **canary.stats(s.conn, running.version)},
            "retrain": retrain_trigger.status(s.conn)}
    if operator:
        body["workers"] = workers
    return jsonify(body)


@bp.post("/retrain")
@admin_required
def retrain():
    requested = retrain_trigger.request_retrain(services().conn, reason="POST /api/retrain")
    return jsonify({"job_id": requested.job_id, "queued": requested.queued}), 202


@bp.post("/models/<model_id>/promote")
@admin_required
def promote(model_id: str):
    if not _MODEL_ID.fullmatch(model_id):
        raise ApiError("no such model", 404)
    try:
        previous = model_events.promote_and_announce(registry(), services().conn, model_id,
                                                     reason="POST /api/models/<id>/promote",
                                                     pusher=_SocketPusher())
    except ModelStoreError as exc:
        raise ApiError(str(exc), 404) from None
    return jsonify({"production": model_id, "previous": previous})


@bp.post("/models/rollback")
@admin_required
def rollback():
    try:
        model_id, previous = model_events.rollback_and_announce(registry(), services().conn,
                                                                pusher=_SocketPusher())
    except ModelStoreError as exc:
        raise ApiError(str(exc), 409) from None
    return jsonify({"production": model_id, "previous": previous})


@bp.post("/models/<model_id>/canary")
@admin_required
def start_canary(model_id: str):
    """Answer a share of live drawings with ``model_id``; rolled back by itself if users correct it more."""
    reg = registry()
    if not _MODEL_ID.fullmatch(model_id) or model_id not in {m.model_id for m in reg.list()}:
        raise ApiError("no such model", 404)
    production = reg.production_id(missing_ok=True)
    if model_id == production:
        raise ApiError("that version is production: it already answers every drawing", 409)
    share = _share(default=0.1)
    running = canary.start(services().conn, model_id, share, production=production)
    return jsonify(running.__dict__), 201


@bp.delete("/models/canary")
@admin_required
def stop_canary():
    stopped = canary.stop(services().conn, reason="DELETE /api/models/canary")
    if stopped is None:
        raise ApiError("no canary is running", 404)
    return jsonify({"stopped": stopped.version, **canary.stats(services().conn, stopped.version)})


def _share(default: float) -> float:
    """The ``share`` of an optional JSON body: a number in (0, 1]."""
    body = request.get_json(silent=True) if request.content_length else {}
    if not isinstance(body, dict):
        raise ApiError("send a JSON object such as {\"share\": 0.2}, or nothing", 400)
    share = body.get("share", default)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
        raise ApiError("'share' must be a number in (0, 1]: the share of live drawings", 400)
    return float(share)


@bp.post("/models/<model_id>/shadow")
@admin_required
def start_shadow(model_id: str):
    """Score a share of live drawings with ``model_id`` too, after production has answered."""
    if not _MODEL_ID.fullmatch(model_id) or model_id not in {m.model_id for m in registry().list()}:
        raise ApiError("no such model", 404)
    if model_id == registry().production_id(missing_ok=True):
        raise ApiError("that version is production: it already answers every drawing", 409)
    share = _share(default=1.0)
    shadows.start(services().conn, model_id, share)
    return jsonify({"shadow": model_id, "share": share}), 201


@bp.delete("/models/<model_id>/shadow")
@admin_required
def stop_shadow(model_id: str):
    if not _MODEL_ID.fullmatch(model_id) or not shadows.stop(services().conn, model_id):
        raise ApiError("that version is not in shadow", 404)
    return jsonify({"stopped": model_id, **shadows.stats(services().conn, model_id)})
