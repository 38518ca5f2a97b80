"""The HTTP API as an OpenAPI 3.1 document, served at ``GET /openapi.json``.

Written by hand, next to the routes it describes; ``tests/web/test_openapi.py``
fails when a route under /api, /helpdata, /healthz or /readyz is added or
removed without updating it, and ``tests/web/test_fuzz.py`` generates hostile
requests from it. Every error anywhere is the same JSON ``Error`` object.
"""
from __future__ import annotations

from flask import Blueprint, jsonify

bp = Blueprint("openapi", __name__)


def _error(description: str, retry_after: bool = False) -> dict:
    response = {"description": description,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    if retry_after:
        response["headers"] = {"Retry-After": {"schema": {"type": "integer"},
                                               "description": "seconds to wait before retrying"}}
    return response


def _json(schema_ref: str, description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}}}


def _object(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"type": "object"}}}}


_E400 = _error("malformed request (bad JSON, missing or invalid field, bad base64)")
_E413 = _error("body, image bytes, pixel count, image side or batch size over the limit")
_E415 = _error("wrong content type, or the image is not a PNG or JPEG")
_E422 = _error("the image data is corrupt (found by the worker while decoding)")
_E429 = _error("this client sent too many requests in the rate-limit window", retry_after=True)
_E503 = _error("the queue is full or Redis is unavailable", retry_after=True)
_E507 = _error("storage is full")
_E401 = _error("no bearer token sent")
_E403 = _error("operator routes are off, the token is wrong, or the request came from another "
               "site's page")
_E403_CROSS = _error("the request came from another site's page (Origin or Sec-Fetch-Site)")
_E404 = _error("unknown id (or its result expired)")

_IMAGE_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {
            "type": "object", "required": ["image"],
            "properties": {"image": {"type": "string",
                                     "description": "data:image/png;base64,... or bare base64 PNG/JPEG"}}}},
        "multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary"}}}},
    },
}

_DIGIT = {"type": "integer", "minimum": 0, "maximum": 9}
_HEX32 = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
_ADMIN = [{"bearer": []}]

SPEC: dict = {
    "openapi": "3.1.0",
    "info": {"title": "SwagDigitClassifier3000", "version": "1",
             "description": "Handwritten-digit recognition. Every error is JSON {error, status}."},
    "paths": {
        "/healthz": {"get": {"summary": "the process is up",
                             "responses": {"200": _object("ok")}}},
        "/readyz": {"get": {"summary": "Redis answers and a live predict worker serves a model",
                            "responses": {"200": _object("ready"),
                                          "503": _object("not ready; `missing` names what is not there")}}},
        "/api/predict": {"post": {
            "summary": "predict one drawing (waits for the answer unless wait=0)",
            "parameters": [{"name": "wait", "in": "query", "schema": {"type": "string", "enum": ["0", "1"]}},
                           {"name": "sid", "in": "query", "schema": {"type": "string", "maxLength": 64},
                            "description": "Socket.IO session that should also receive the answer"}],
            "requestBody": _IMAGE_BODY,
            "responses": {"200": _json("Prediction", "the answer"),
                          "202": _object("queued (wait=0): job_id and status_url"),
                          "400": _E400, "403": _E403_CROSS, "413": _E413, "415": _E415, "422": _E422,
                          "429": _E429, "503": _E503, "504": _error("no worker answered in time")}}},
        "/api/jobs/{job_id}": {"get": {
            "summary": "state of a queued prediction",
            "parameters": [{"name": "job_id", "in": "path", "required": True, "schema": _HEX32}],
            "responses": {"200": _object("queued, started, finished (result) or failed (error)"),
                          "404": _object("unknown or expired job"), "503": _E503}}},
        "/helpdata": {
            "post": {"summary": "a drawing with the digit it really shows (training data)",
                     "requestBody": {"required": True, "content": {
                         "application/json": {"schema": {
                             "type": "object", "required": ["image", "label"],
                             "properties": {"image": {"type": "string"}, "label": _DIGIT,
                                            "predicted": _DIGIT, "job_id": _HEX32}}},
                         "multipart/form-data": {"schema": {
                             "type": "object", "required": ["file", "label"],
                             "properties": {"file": {"type": "string", "format": "binary"},
                                            "label": {"type": "string", "pattern": "^[0-9]$"}}}}}},
                     "responses": {"201": _object("stored"), "200": _object("already stored"),
                                   "400": _E400, "403": _E403_CROSS, "413": _E413, "415": _E415,
                                   "429": _E429, "503": _E503, "507": _E507}},
            "get": {"summary": "help images not yet trained on",
                    "responses": {"200": _object("pending count and retrain threshold"), "503": _E503}}},
        "/api/models": {"get": {"summary": "model versions, their states and which workers serve them "
                                           "(with the admin token: library versions and live workers too)",
                                "responses": {"200": _object("models"), "401": _E401, "403": _E403,
                                              "503": _E503}}},
        "/api/retrain": {"post": {"summary": "queue a retraining (operator)", "security": _ADMIN,
                                  "responses": {"202": _object("queued or joined"), "401": _E401,
                                                "403": _E403, "503": _E503}}},
        "/api/models/{model_id}/promote": {"post": {
            "summary": "make a version production (operator)", "security": _ADMIN,
            "parameters": [{"name": "model_id", "in": "path", "required": True,
                            "schema": {"type": "string", "maxLength": 64}}],
            "responses": {"200": _object("promoted"), "401": _E401, "403": _E403, "404": _E404,
                          "503": _E503, "507": _E507}}},
        "/api/models/rollback": {"post": {
            "summary": "re-promote the previous production version (operator)", "security": _ADMIN,
            "responses": {"200": _object("rolled back"), "401": _E401, "403": _E403,
                          "409": _error("nothing to roll back to"), "503": _E503, "507": _E507}}},
        "/api/batches": {"post": {
            "summary": "predict many images; answers at once with a batch id",
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": {
                    "type": "object", "required": ["images"],
                    "properties": {"images": {"type": "array", "items": {"type": "string"}}}}},
                "multipart/form-data": {"schema": {"type": "object", "additionalProperties": {
                    "type": "string", "format": "binary"}}}}},
            "responses": {"202": _object("batch queued"), "400": _E400, "403": _E403_CROSS,
                          "413": _E413, "415": _E415, "429": _E429, "503": _E503}}},
        "/api/batches/{batch_id}": {"get": {
            "summary": "a batch's progress, and its results once finished (JSON or format=csv)",
            "parameters": [{"name": "batch_id", "in": "path", "required": True, "schema": _HEX32},
                           {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["csv"]}}],
            "responses": {"200": _object("progress and results"), "404": _E404,
                          "409": _error("CSV asked for before the batch finished"), "503": _E503}}},
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                       "description": "SWAGDIGITS_ADMIN_TOKEN"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error", "status"],
                      "properties": {"error": {"type": "string"}, "status": {"type": "integer"}}},
            "Prediction": {"type": "object",
                           "required": ["job_id", "digit", "probabilities", "model_version"],
                           "properties": {"job_id": _HEX32, "digit": _DIGIT,
                                          "probabilities": {"type": "array", "items": {"type": "number"},
                                                            "minItems": 10, "maxItems": 10},
                                          "model_version": {"type": "string"},
                                          "timings": {"type": "object"}}},
        },
    },
}


@bp.get("/openapi.json")
def openapi():
    return jsonify(SPEC)
