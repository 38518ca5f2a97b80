"""The Open Inference Protocol (KServe v2, Triton's HTTP API) under ``/v2``.

Why: MLOps tooling (KServe, Triton clients, perf_analyzer-style load
generators) speaks this protocol; with it the service is one more model
server to them, with no client of ours. The model is ``digits``: one input,
``images`` (BYTES, shape [N]: PNG/JPEG images), two outputs,
``probabilities`` (FP32 [N, 10]) and ``digit`` (INT64 [N]).

Nothing new runs a model here: one image takes the interactive path of
``POST /api/predict`` (queued on the predict stream, the worker's answer
awaited), several the batch path of ``POST /api/batches`` (chunks on the
batch stream, awaited up to ``SWAGDIGITS_INFER_TIMEOUT``), with the same
image checks, queue limit, batch size cap and rate limit (an image costs
one prediction; ``web.security`` charges the first, ``web.batches.admit`` the
rest). Tensors are parsed and encoded by ``web.inference_tensors``.

Only the production version is served: predict workers hold that one model
(``workers/model_holder.py``), so a named version other than production is a
404; answering for a retired version would need workers that load models on
demand. Readiness is ``/readyz``'s rule (``web.health.readiness``). Errors
are the protocol's ``{"error": ...}`` (plus ``status``, as everywhere here):
400 for a malformed request or an image that cannot be read, 404 for an
unknown model or version, 503 when not ready, the queue is full or Redis
is down; 413, 429 and 504 keep their HTTP meaning (body or batch too large,
rate limit, no answer in time).
"""
from __future__ import annotations

import logging
from importlib import metadata

from flask import Blueprint, Response, jsonify, request

from shared.messaging import protocol as p
from web import inference_tensors as tensors
from web.api import submit_drawing, wait_for_answer
from web.batches import admit, allow_batch_body, validated
from web.errors import ApiError
from web.health import readiness
from web.services import services

log = logging.getLogger(__name__)

bp = Blueprint("inference_v2", __name__, url_prefix="/v2")

SERVER_NAME = "swagdigits"
MODEL_NAME = "digits"
PLATFORM = "scikit-learn"
# Triton's binary tensor data extension (web.inference_tensors) is the one we implement.
EXTENSIONS = ["binary_tensor_data"]


@bp.get("/health/live")
def live():
    return jsonify({"live": True})


@bp.get("/health/ready")
def ready():
    return _ready_answer(readiness())


@bp.get("")
def server_metadata():
    return jsonify({"name": SERVER_NAME, "version": _server_version(), "extensions": EXTENSIONS})


@bp.get("/models/<model_name>", defaults={"model_version": None})
@bp.get("/models/<model_name>/versions/<model_version>")
def model_metadata(model_name: str, model_version: str | None):
    production = _served_version(model_name, model_version)
    return jsonify({
        "name": MODEL_NAME,
        "versions": [production] if production else [],
        "platform": PLATFORM,
        "inputs": [{"name": tensors.INPUT_NAME, "datatype": tensors.INPUT_DATATYPE, "shape": [-1]}],
        "outputs": [{"name": name, "datatype": datatype, "shape": shape}
                    for name, (datatype, shape) in tensors.OUTPUTS.items()],
    })


@bp.get("/models/<model_name>/ready", defaults={"model_version": None})
@bp.get("/models/<model_name>/versions/<model_version>/ready")
def model_ready(model_name: str, model_version: str | None):
    production = _served_version(model_name, model_version)
    state = readiness()
    if state["ready"] and production and production not in state["model_versions"]:
        # Workers still serve the previous version (a promotion being swapped in).
        state = {**state, "ready": False, "missing": ["production_model"]}
    return _ready_answer(state, name=MODEL_NAME)


@bp.post("/models/<model_name>/infer", defaults={"model_version": None})
@bp.post("/models/<model_name>/versions/<model_version>/infer")
def infer(model_name: str, model_version: str | None):
    s = services()
    if model_version is None:   # the hot path: no need to read the model store
        _check_model(model_name)
    else:
        _served_version(model_name, model_version)
    if request.mimetype not in ("", "application/json", tensors.BINARY_MIMETYPE):
        raise ApiError(f"send the inference request as application/json (or {tensors.BINARY_MIMETYPE} "
                       f"with {tensors.HEADER_LENGTH}), not {request.mimetype}", 415)
    allow_batch_body()
    body = tensors.decoded_body(request.get_data(cache=False), request.headers.get("Content-Encoding"),
                                s.config.batch_max_bytes)
    req = tensors.parse_request(body, request.headers.get(tensors.HEADER_LENGTH))
    admit(len(req.images))
    images = [_checked(index, item) for index, item in enumerate(req.images)]
    results = _predict_one(images[0]) if len(images) == 1 else _predict_batch(images)
    versions = sorted({r["model_version"] for r in results})
    if model_version is not None and versions != [model_version]:
        raise ApiError(f"version {model_version} stopped being production while this request was "
                       "answered; retry", 503, {"Retry-After": "1"})
    data, headers = tensors.encode_response(MODEL_NAME, ",".join(versions), req.request_id,
                                            req.outputs, results)
    return Response(data, status=200, headers=headers)


def _served_version(model_name: str, model_version: str | None) -> str | None:
    """The production version, after 404s for another model or another version."""
    _check_model(model_name)
    production = services().registry.production_id(missing_ok=True)
    if model_version is not None and model_version != production:
        raise ApiError(f"version {model_version!r} of '{MODEL_NAME}' is not served: only the production "
                       f"version ({production or 'none yet'}) is; GET /api/models lists every version", 404)
    return production


def _check_model(model_name: str) -> None:
    if model_name != MODEL_NAME:
        raise ApiError(f"unknown model {model_name!r}: this server serves '{MODEL_NAME}'", 404)


def _ready_answer(state: dict, name: str | None = None):
    if state["ready"]:
        return jsonify({"ready": True, **({"name": name} if name else {})})
    response = jsonify({"error": f"not ready: missing {', '.join(state['missing'])}", "status": 503,
                        "ready": False, "missing": state["missing"]})
    response.status_code = 503
    response.headers["Retry-After"] = "2"
    return response


def _checked(index: int, item: bytes | str) -> bytes:
    """An image that passed the checks every upload passes, or 400 naming which one did not."""
    image = validated(item)
    if isinstance(image, str):
        raise ApiError(f"image {index}: {image}", 400)
    return image


def _predict_one(image: bytes) -> list[dict]:
    """The interactive path: the predict stream, and the worker's pushed answer."""
    try:
        return [wait_for_answer(submit_drawing(image))]
    except ApiError as exc:
        if exc.status == 422:   # the worker found the data corrupt: a bad input, in protocol terms
            raise ApiError(f"image 0: {exc.message}", 400) from None
        raise


def _predict_batch(images: list[bytes]) -> list[dict]:
    """The batch path, awaited: chunks on the batch stream, results read once all are done."""
    s = services()
    batch_id, _ = s.batches.submit(images)
    progress = s.batches.wait_finished(batch_id, s.config.infer_timeout)
    if progress is None or progress.state != p.FINISHED:
        done = f"{progress.done}/{progress.total}" if progress else "expired"
        log.warning("infer batch %s of %d images unfinished after %gs (%s)", batch_id, len(images),
                    s.config.infer_timeout, done)
        raise ApiError(f"the batch of {len(images)} images did not finish within "
                       f"{s.config.infer_timeout:g}s ({done}); its results may still be read at "
                       f"/api/batches/{batch_id}", 504)
    results = s.batches.results(batch_id)
    s.batches.discard(batch_id)   # answered here: nobody will read them at /api/batches
    failed = [r for r in results if "error" in r]
    if failed:
        raise ApiError(f"image {failed[0]['index']}: {failed[0]['error']}", 400)
    return results


def _server_version() -> str:
    try:
        return metadata.version("swagdigits")
    except metadata.PackageNotFoundError:   # run from a checkout that was never installed
        return "unknown"
