"""POST /helpdata: a user's drawing with the label the model should have given.

Validated like a prediction (header first), then decoded and stored as a
small normalised PNG (``shared.images.normalise``: grey, at most the canvas's
size, no trailing bytes or metadata) rather than the bytes sent, once per
distinct image by ``shared.help_store``, and counted; when the count of help
images no retraining has seen reaches ``SWAGDIGITS_RETRAIN_THRESHOLD``, a
retraining is requested (coalesced).

Help data is kept for good and every retraining reads it, so beside the
per-minute rate limit two quotas bound it: each client address may add
``SWAGDIGITS_HELP_CLIENT_QUOTA`` new images a day (429 + ``Retry-After``; a
duplicate costs nothing), and all of it may take ``SWAGDIGITS_HELP_MAX_BYTES``
of disk (507 once full).
"""
from __future__ import annotations

import logging
import re

from flask import Blueprint, jsonify, request

from shared import metrics
from shared.messaging import canary, retrain_trigger, shadows
from shared.help_store import HelpStore, HelpStoreFull
from shared.images.normalise import normalised_png
from shared.messaging.ids import is_id
from web import rate_limit
from web.client_key import client_key
from web.errors import ApiError
from web.services import services
from web.uploads import image_from_request, json_body

bp = Blueprint("helpdata", __name__)
log = logging.getLogger(__name__)

_DIGIT = re.compile(r"[0-9]")


def help_store() -> HelpStore:
    return services().help_store


@bp.post("/helpdata")
def add_help():
    s = services()
    fields = _fields()
    as_json = request.mimetype == "application/json"
    label = _digit(fields.get("label"), "label", required=True, as_json=as_json)
    predicted = _digit(fields.get("predicted"), "predicted", required=False, as_json=as_json)
    job_id = fields.get("job_id")
    if job_id is not None and not (isinstance(job_id, str) and is_id(job_id)):
        raise ApiError("'job_id' must be the 32-hex id a prediction returned", 400)
    image = normalised_png(image_from_request(request, s.limits), s.limits)
    model_version = None
    if job_id:  # trust what the worker recorded over what the client says
        result = (s.queue.status(job_id) or {}).get("result") or {}
        model_version = result.get("model_version")
        if "digit" in result:
            predicted = int(result["digit"])
    client = client_key(request.remote_addr)   # an IPv6 client by its /64 (web.client_key)
    _spend_quota(client)
    try:
        added = help_store().add(image, label, predicted=predicted, model_version=model_version,
                                 job_id=job_id, client=client)
    except HelpStoreFull as full:
        _refund_quota(client)
        log.warning("help data is full (%d bytes); refusing new help images", full.max_bytes)
        raise ApiError("help data storage is full: no new help images are accepted until an "
                       "operator makes room (SWAGDIGITS_HELP_MAX_BYTES)", 507) from None
    except Exception:
        _refund_quota(client)
        raise
    if added.created:
        metrics.record_help_image()
        if model_version and predicted is not None and predicted != label:
            metrics.record_correction(model_version)
            _judge_canary(model_version)
        if model_version and predicted is not None:   # score any shadow that read this drawing
            shadows.record_correction(s.conn, job_id, label, predicted)
    else:  # a duplicate takes no room
        _refund_quota(client)
    body = {"id": added.id, "label": added.label, "pending": added.pending, "duplicate": not added.created}
    if added.created and retrain_trigger.should_trigger(added.pending, s.config.retrain_threshold):
        requested = retrain_trigger.request_retrain(s.conn, reason=f"{added.pending} new help images")
        body["retrain_job_id"] = requested.job_id
    return jsonify(body), (201 if added.created else 200)


def _judge_canary(answered_by: str) -> None:
    """A correction of a canary's or production's answer during a canary: roll the canary back if
    users now correct it ``SWAGDIGITS_CANARY_MARGIN`` more often than production."""
    s = services()
    running = canary.active(s.conn)
    if running is None or not canary.count_correction(s.conn, running, answered_by):
        return
    verdict = canary.judge(canary.stats(s.conn, running.version), s.config.canary_min_answers,
                           s.config.canary_margin)
    if not verdict.rollback or canary.stop(s.conn, reason="rolled back") is None:
        return   # (None: another web process rolled it back first)
    s.registry.reject(running.version)
    metrics.record_canary_rollback()
    log.warning("canary %s rolled back: %s", running.version, verdict.reason)


def _spend_quota(client: str) -> None:
    """One of the address's new help images for today, or 429 with Retry-After."""
    quota = services().help_quota
    verdict = quota.hit(rate_limit.HELP_QUOTA, client)
    if not verdict.allowed:
        raise ApiError(f"this address has sent its {verdict.limit} help images for today; "
                       f"more are accepted in {verdict.retry_after}s (at 00:00 UTC)", 429,
                       {"Retry-After": str(verdict.retry_after)})


def _refund_quota(client: str) -> None:
    services().help_quota.refund(rate_limit.HELP_QUOTA, client)


@bp.get("/helpdata")
def help_summary():
    store = help_store()
    return jsonify({"pending": store.pending(), "threshold": services().config.retrain_threshold})


def _fields() -> dict:
    if request.mimetype == "application/json":
        return json_body(request)
    if request.mimetype == "multipart/form-data":
        return request.form.to_dict()
    raise ApiError("send JSON {\"image\", \"label\"} or multipart/form-data with 'file' and 'label'", 415)


def _digit(value, name: str, required: bool, as_json: bool) -> int | None:
    """A digit 0-9 given as a JSON integer (null: not given) or, in a multipart form, a one-digit string.

    A JSON string is refused, as the OpenAPI document says: what the document
    admits and what the service accepts are the same set.
    """
    if value is None or (value == "" and not as_json):
        if required:
            raise ApiError(f"'{name}' is required: the digit 0-9 the drawing shows", 400)
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 3.0 is the integer 3 in JSON Schema, as in the OpenAPI document
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 9:
        return value
    if not as_json and isinstance(value, str) and _DIGIT.fullmatch(value.strip()):
        return int(value.strip())
    raise ApiError(f"'{name}' must be an integer 0-9", 400)
