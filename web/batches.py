"""Batch predictions over HTTP: submit many images at once, follow progress, fetch results."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timezone

from flask import Blueprint, Response, g, jsonify, request, url_for
from flask_socketio import join_room, leave_room

from shared.messaging import protocol as p
from shared.messaging.ids import is_id
from shared.images.upload import ImageRejected, bytes_from_text, inspect
from web import rate_limit
from web.errors import ApiError
from web.security import check_rate
from web.services import services
from web.sockets import socketio
from web.uploads import large_json_body

bp = Blueprint("batches", __name__, url_prefix="/api/batches")

CSV_COLUMNS = ["index", "digit", *[f"p{d}" for d in range(10)], "model_version", "error"]


@bp.post("")
def submit():
    s = services()
    allow_batch_body()
    items = _raw_items()
    admit(len(items))
    for i, item in enumerate(items):   # in place: each text is freed as its bytes arrive
        items[i] = validated(item)
    batch_id, expires_at = s.batches.submit(items)
    status_url = url_for("batches.status", batch_id=batch_id)
    response = jsonify({"batch_id": batch_id, "size": len(items), "status_url": status_url,
                        "invalid": sum(isinstance(i, str) for i in items),
                        "expires_at": _iso(expires_at)})
    response.status_code = 202
    response.headers["Location"] = status_url
    return response


def allow_batch_body() -> None:
    """Let this request's body be as large as a batch may be (``SWAGDIGITS_BATCH_MAX_BYTES``),
    if fewer than ``SWAGDIGITS_BATCH_BODIES`` such bodies are being read by this process: a
    body and its parsed images take a few times its size in memory, so a handful of maximal
    batches at once would otherwise take the web tier down (503 + Retry-After instead)."""
    s = services()
    if not s.batch_bodies.acquire(blocking=False):
        raise ApiError("this server is receiving other batches right now; send again in a second", 503,
                       {"Retry-After": "1"})
    g.batch_body_slot = s.batch_bodies
    request.max_content_length = s.config.batch_max_bytes
    request.max_form_parts = s.config.batch_max_images + 10


@bp.teardown_app_request
def _release_batch_body(_exc=None) -> None:
    slot = g.pop("batch_body_slot", None)
    if slot is not None:
        slot.release()


def admit(images: int) -> None:
    """The rules every request carrying several images obeys before anything is queued: at
    least one (400), at most ``SWAGDIGITS_BATCH_MAX_IMAGES`` (413), one prediction of the
    address's rate limit per image (429, or 413 above a whole window's allowance)."""
    s = services()
    if not images:
        raise ApiError("a batch needs at least one image", 400)
    if images > s.config.batch_max_images:
        raise ApiError(f"batch has {images} images; at most {s.config.batch_max_images} are accepted", 413)
    _charge(images)


@bp.get("/<batch_id>")
def status(batch_id: str):
    queue = services().batches
    progress = queue.progress(batch_id) if is_id(batch_id) else None
    if progress is None:
        raise ApiError("no such batch (unknown id, or its results expired)", 404)
    fmt = request.args.get("format", "json")
    if fmt not in ("json", "csv"):
        raise ApiError("format must be 'csv' (or left out for JSON)", 400)
    finished = progress.state == p.FINISHED
    results = queue.results(batch_id) if finished else None
    if fmt == "csv":
        if not finished:
            raise ApiError(f"batch is {progress.state} ({progress.done}/{progress.total}); "
                           "CSV is available once it has finished", 409)
        return Response(_csv(results), mimetype="text/csv",
                        headers={"Content-Disposition": f"attachment; filename=batch-{batch_id}.csv"})
    body = {"batch_id": batch_id, "state": progress.state, "done": progress.done,
            "total": progress.total, "expires_at": _iso(queue.expires_at(batch_id))}
    if finished:
        body["results"] = results
    return jsonify(body)


@socketio.on(p.EVENT_SUBSCRIBE_BATCH)
def subscribe(data):
    """Join a batch's room to receive its progress events; answers the current progress.

    An unknown batch joins no room. The progress answered is read after
    joining, so no event can fall between the answer and the first event.
    """
    batch_id = data.get("batch_id", "") if isinstance(data, dict) else ""
    if not is_id(batch_id):
        return {"error": "batch_id must be a batch id"}
    queue, room = services().batches, p.BATCH_ROOM.format(batch_id)
    if queue.progress(batch_id) is None:
        return {"error": "no such batch"}
    join_room(room)
    progress = queue.progress(batch_id)
    if progress is None:  # expired in between
        leave_room(room)
        return {"error": "no such batch"}
    return progress.__dict__


def _charge(images: int) -> None:
    """Spend one prediction per image (the request already spent one on arrival)."""
    s = services()
    limit = s.config.rate_limit_predict
    if limit and images > limit:
        raise ApiError(f"batch has {images} images; one address may predict at most {limit} per "
                       f"{s.config.rate_limit_window}s: send smaller batches", 413)
    if images > 1:
        check_rate(rate_limit.PREDICT, cost=images - 1)


def _raw_items() -> list:
    """Images as sent, in order: base64 strings from JSON, or bytes from file parts."""
    if request.mimetype == "application/json":
        images = large_json_body(request).pop("images", None)
        if not isinstance(images, list) or not all(isinstance(i, str) for i in images):
            raise ApiError("JSON body needs an 'images' list of data URLs or base64 strings", 400)
        return images
    if request.mimetype == "multipart/form-data":
        return [upload.read() for _, upload in request.files.items(multi=True)]
    raise ApiError("send JSON {\"images\": [...]} or multipart/form-data with one file part per image", 415)


def validated(item) -> bytes | str:
    """The image's bytes, or the reason it cannot be predicted (kept as that image's error)."""
    limits = services().limits
    try:
        data = item if isinstance(item, bytes) else bytes_from_text(item, limits.max_bytes)
        inspect(data, limits)
        return data
    except ImageRejected as exc:
        return exc.message


def _csv(results: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for r in results:
        probs = r.get("probabilities") or [""] * 10
        writer.writerow([r["index"], r.get("digit", ""), *probs, r.get("model_version", ""), r.get("error", "")])
    return out.getvalue()


def _iso(ts: int | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")
