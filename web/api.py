"""HTTP prediction API: validate, queue, and (by default) wait for the pushed answer."""
from __future__ import annotations


from flask import Blueprint, jsonify, request, url_for

from shared.messaging import protocol as p
from shared.messaging.ids import is_id
from shared.messaging.predict_queue import QueueFull
from web.errors import ApiError
from web.services import services
from web.socket_secrets import SECRET_HEADER
from web.uploads import image_from_request

bp = Blueprint("api", __name__, url_prefix="/api")



def submit_drawing(image: bytes, room: str = "", wants_reply: bool = True) -> str:
    """Queue a validated drawing, turning a full queue into 503 + Retry-After."""
    s = services()
    try:
        return s.queue.submit(image, s.config.queue_limit, room=room, wants_reply=wants_reply)
    except QueueFull:
        raise ApiError("too many drawings are waiting; retry shortly", 503, {"Retry-After": "1"}) from None


@bp.post("/predict")
def predict():
    s = services()
    image = image_from_request(request, s.limits)
    wait = _wait_flag(request.args.get("wait", "1"))
    sid = _owned_sid(s)
    job_id = submit_drawing(image, room=sid, wants_reply=wait)
    if not wait:
        status_url = url_for("api.job_status", job_id=job_id)
        response = jsonify({"job_id": job_id, "state": p.QUEUED, "status_url": status_url})
        response.status_code = 202
        response.headers["Location"] = status_url
        return response
    return jsonify(wait_for_answer(job_id))


def wait_for_answer(job_id: str) -> dict:
    """The worker's answer to a drawing queued with ``wants_reply``: 504 when none comes within
    ``SWAGDIGITS_PREDICT_TIMEOUT``, the worker's own status (422: corrupt data) when it failed."""
    s = services()
    reply = s.queue.wait_reply(job_id, s.config.predict_timeout)
    if reply is None:
        raise ApiError(f"no worker answered within {s.config.predict_timeout:g}s; "
                       f"the job may still finish at /api/jobs/{job_id}", 504)
    if "error" in reply:
        raise ApiError(reply["error"], int(reply.get("status", 422)))
    return reply


def _owned_sid(s) -> str:
    """The ``sid`` whose socket gets the answer, only with that socket's secret (``web.socket_secrets``)."""
    sid = request.args.get("sid", "")
    if not sid:
        return ""
    if len(sid) > 64:
        raise ApiError("sid is not a Socket.IO session id", 400)
    if not s.socket_secrets.check(sid, request.headers.get(SECRET_HEADER, "")):
        raise ApiError(f"answers go only to your own socket: send the secret its 'session' event gave "
                       f"you in {SECRET_HEADER}", 403)
    return sid


def _wait_flag(value: str) -> bool:
    """``wait=1`` (the default) waits for the answer, ``wait=0`` does not; anything else is a 400."""
    if value not in ("0", "1"):
        raise ApiError("wait must be 0 (answer at once with the job id) or 1 (wait for the answer)", 400)
    return value == "1"


@bp.get("/jobs/<job_id>")
def job_status(job_id: str):
    status = services().queue.status(job_id) if is_id(job_id) else None
    if status is None:
        response = jsonify({"job_id": job_id, "state": "unknown",
                            "error": "no such job (unknown id, or its result expired)"})
        response.status_code = 404
        return response
    return jsonify(status)
