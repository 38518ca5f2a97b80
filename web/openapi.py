"""The HTTP API as an OpenAPI 3.1 document, served at ``GET /openapi.json``.

Written by hand, next to the routes it describes; ``tests/web/test_openapi.py``
fails when a route under /api, /helpdata, /healthz, /readyz or /v2 is added or
removed without updating it, ``tests/web/test_fuzz.py`` generates hostile
requests from it, and ``tests/integration/test_schemathesis.py`` runs the
standard OpenAPI tester (every check, stateful phase) against a real stack.
Every error anywhere is the same JSON ``Error`` object.

The document admits only what the service accepts (an empty image or an
empty batch is refused, so the schema says ``minLength``/``minItems``), and
its links (predict -> job, batch -> batch status, model list -> promote) let
a tester, or a client generator, follow an answer to the resource it names.
"""
from __future__ import annotations

from flask import Blueprint, jsonify

bp = Blueprint("openapi", __name__)


_MODEL_ID_PATH = {"name": "model_id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}}


def _share_body(example: float) -> dict:
    """The optional ``{"share": ...}`` body of the shadow and canary routes."""
    return {"required": False, "content": {"application/json": {
        "schema": {"type": "object", "properties": {"share": {"type": "number", "exclusiveMinimum": 0, "maximum": 1}}},
        "example": {"share": example}}}}


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
_E401 = {**_error("no bearer token sent"),
         "headers": {"WWW-Authenticate": {"schema": {"type": "string"},
                                          "description": "Bearer realm=\"swagdigits\""}}}
_E403 = _error("the token is wrong, or the request came from another site's page")
_E403_VIEW = _error("the token is wrong, or the operator view is off (no SWAGDIGITS_ADMIN_TOKEN "
                    "configured) and a token was sent anyway")
_E404_OFF = _error("operator routes are off: the service runs without SWAGDIGITS_ADMIN_TOKEN")
_E403_CROSS = _error("the request came from another site's page (Origin or Sec-Fetch-Site)")
_E404 = _error("unknown id (or its result expired)")

# An image as JSON text: a PNG/JPEG data URL or bare base64, never empty. The pattern
# admits exactly what the service decodes (padded base64, at least one 4-character
# group); that the bytes really are a PNG or JPEG is beyond JSON Schema (415 if not).
_B64_IMAGE = {"type": "string", "minLength": 4,
              "pattern": r"^(data:image/(png|jpeg);base64,)?([A-Za-z0-9+/]{4})*"
                         r"([A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)$",
              "contentEncoding": "base64", "contentMediaType": "image/png",
              "description": "data:image/png;base64,... or bare base64 PNG/JPEG"}
_IMAGE_PARTS = {"contentType": "image/png, image/jpeg"}
# A drawn 3 at 28x28 (transparent background, the page's ink): the examples below are
# requests the service answers with a prediction, so testers reach the success paths.
EXAMPLE_PNG = ("data:image/png;base64,"
               "iVBORw0KGgoAAAANSUhEUgAAABwAAAAcCAYAAAByDd+UAAACw0lEQVR42s1WvWsUURD/zeyZS0zu3s4meGn8SiIYEFJoIRHRziIQ"
               "bGxS2eVfSCwsLAz+CWohgq2FAb+wkBSCoKLBQgsJQgqJEG43QVyPuxmbF13P3GcSceCxj32/2fnY+b0Z4B8LdYhnr0MAzC/dC8fY"
               "r07PuoowAFADAOfcESI6QURFM9s0s/dJknyux+3EIANQ59xJZr5KRNNEv1XMDGa2qKrXkiR5s4Xv1iADUBGZAnCfmfOq+lJVnxLR"
               "VzM7wMwXmPm0qlbM7FIcx4vtGG1YHCJyKIoii6JIRWRmO6CIzIjIDxH5VigUjvkguNn/aSSWz+eZiI6b2UIcx/c8PsgUCqdputzX"
               "17fOzBeJyNI0fewxO67eoEEmglKp1B+G4WYYhh8ztGmYulb/eCui7SrQAOja2loK4DuAQoaj1I1B84a0zomcd6QHgDnnJph5iIje"
               "emzgdf+SXBepNQBVv68NDAwMMfNNIiJVvd1KOdfhNWilUqm/UqlMm9kmEQ0DmGPmUVW9G8fxgybp79hgAKBaqVRmgiC4ZWa/yK+q"
               "z8vl8uV2qjPoNJ35fB4Axs3snaquAjgK4HBvb+/+NE2f+Qhtz9pNGIZnRWRlcHDQRGS2VSDUhQ3KPBlAtVgsjuVyuddmVlPV0SRJ"
               "kkyBdUSLRlW61QerAHo2NjY+qeodZo6YedKfc7fEb4VTAAEzL/v9wWbZa4f4yJC50Tdqqjrh96uN0tmyekVkNoqiV865kcz7XN1C"
               "sVgci6IoFpF151zY7D7lZqk0s33MfIqZn4jIpCd0NbtEZDIIgkdE5ABcSZIkbkaNdhrwdWae9919SVWXmPmLqg4z83kiOkdEqNVq"
               "N+I4nms1arQ1YojIlJnNM/OZ+hFDVV8Q0UK5XH640xHjD6N+iBph5nEzGySidVX9kCTJSj1uNyRo4hx1ckX+t4PwrslP8CgaWkLK"
               "4fwAAAAASUVORK5CYII=")

_IMAGE_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {
            "type": "object", "required": ["image"],
            "properties": {"image": _B64_IMAGE}},
            "example": {"image": EXAMPLE_PNG}},
        "multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary", "minLength": 1}}},
            "encoding": {"file": _IMAGE_PARTS}},
    },
}

_DIGIT = {"type": "integer", "minimum": 0, "maximum": 9}
_HEX32 = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
_ADMIN = [{"bearer": []}]
# OpenAPI links: from an answer naming a resource to the operation that reads it.
_TO_JOB = {"GetJob": {"operationId": "getJob", "parameters": {"job_id": "$response.body#/job_id"}}}
_TO_BATCH = {"GetBatch": {"operationId": "getBatch", "parameters": {"batch_id": "$response.body#/batch_id"}}}
_TO_PROMOTE = {"PromoteProduction": {"operationId": "promoteModel",
                                     "parameters": {"model_id": "$response.body#/production"}}}


def _linked(response: dict, links: dict) -> dict:
    return {**response, "links": links}


# -- Open Inference Protocol (web.inference_v2) ------------------------------------------
_V2_MODEL_NAME = {"name": "model_name", "in": "path", "required": True,
                  "schema": {"type": "string", "enum": ["digits"]},
                  "description": "the one model served: digits (another name is a 404)"}
_V2_MODEL_VERSION = {"name": "model_version", "in": "path", "required": True,
                     "schema": {"type": "string", "pattern": "^[0-9A-Za-z][0-9A-Za-z_-]{0,63}$"},
                     "description": "only the production version is served (another is a 404)"}
_V2_404 = _error("unknown model, or a version that is not the production one")
_V2_503 = _error("not ready: `missing` names what is not there", retry_after=True)
# From a model's metadata to the operations on the version it names.
_TO_VERSION = {op: {"operationId": op, "parameters": {"model_name": "$response.body#/name",
                                                      "model_version": "$response.body#/versions/0"}}
               for op in ("v2ModelVersionMetadata", "v2ModelVersionReady", "v2InferVersion")}
_V2_INFER_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {
            "type": "object", "required": ["inputs"],
            "properties": {
                "id": {"type": "string", "description": "echoed in the answer"},
                "parameters": {"type": "object", "properties": {"binary_data_output": {"type": "boolean"}},
                               "description": "binary_data_output: outputs not named in `outputs` come "
                                              "back as binary data (Inference-Header-Content-Length)"},
                "inputs": {"type": "array", "minItems": 1, "maxItems": 1, "items": {
                    "type": "object", "required": ["name", "datatype", "shape", "data"],
                    "properties": {"name": {"type": "string", "enum": ["images"]},
                                   "datatype": {"type": "string", "enum": ["BYTES"]},
                                   "shape": {"type": "array", "minItems": 1, "maxItems": 1,
                                             "items": {"type": "integer", "minimum": 1},
                                             "description": "[N]: the number of images in data"},
                                   "data": {"type": "array", "minItems": 1, "items": _B64_IMAGE}}}},
                "outputs": {"type": "array", "minItems": 1, "maxItems": 2, "items": {
                    "type": "object", "required": ["name"],
                    "properties": {"name": {"type": "string", "enum": ["probabilities", "digit"]},
                                   "parameters": {"type": "object",
                                                  "properties": {"binary_data": {"type": "boolean"}}}}}},
            }},
            "example": {"id": "example-1", "inputs": [{"name": "images", "datatype": "BYTES", "shape": [1],
                                                       "data": [EXAMPLE_PNG]}]}},
        # Triton's binary tensor data extension: the JSON header (its inputs' parameters carry
        # binary_data_size instead of data), then each image as a 4-byte little-endian length
        # and its bytes; Inference-Header-Content-Length gives the header's length.
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
}
_V2_INFER = {
    "parameters": [{"name": "Inference-Header-Content-Length", "in": "header",
                    "schema": {"type": "integer", "minimum": 0},
                    "description": "binary tensor data extension: length of the JSON header that "
                                   "starts the body (binary tensor data follows it)"}],
    "requestBody": _V2_INFER_BODY,
    "responses": {
        "200": {"description": "outputs probabilities (FP32 [N,10]) and digit (INT64 [N]); binary "
                               "outputs when asked, after the JSON header",
                "headers": {"Inference-Header-Content-Length": {
                    "schema": {"type": "integer"}, "description": "set when binary outputs follow"}},
                "content": {"application/json": {"schema": {"type": "object"}},
                            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
        "400": _error("malformed inference request, or an image that cannot be read"),
        "403": _E403_CROSS, "404": _V2_404,
        "413": _error("body or batch over the limit, or more images than a rate-limit window allows"),
        "415": _error("a content type or Content-Encoding other than JSON/octet-stream, gzip or deflate"),
        "429": _E429, "503": _E503, "504": _error("the images were not all answered in time")},
}


def _v2(operation_id: str, summary: str, responses: dict, version: bool = False, **more) -> dict:
    params = [_V2_MODEL_NAME, _V2_MODEL_VERSION] if version else [_V2_MODEL_NAME]
    op = {"operationId": operation_id, "summary": summary, **more}
    op["parameters"] = params + op.get("parameters", [])
    op["responses"] = responses
    return op

SPEC: dict = {
    "openapi": "3.1.0",
    "info": {"title": "SwagDigitClassifier3000", "version": "1",
             "description": "Handwritten-digit recognition. Every error is JSON {error, status}."},
    "paths": {
        "/healthz": {"get": {"operationId": "healthz", "summary": "the process is up",
                             "responses": {"200": _object("ok")}}},
        "/readyz": {"get": {"operationId": "readyz", "summary": "Redis answers and a live predict worker serves a model",
                            "responses": {"200": _object("ready"),
                                          "503": _object("not ready; `missing` names what is not there")}}},
        "/api/predict": {"post": {
            "operationId": "predict", "summary": "predict one drawing (waits for the answer unless wait=0)",
            "parameters": [{"name": "wait", "in": "query", "schema": {"type": "string", "enum": ["0", "1"]}},
                           {"name": "sid", "in": "query", "schema": {"type": "string", "maxLength": 64},
                            "description": "Socket.IO session that should also receive the answer; "
                                           "needs that socket's secret in X-Socket-Secret"},
                           {"name": "X-Socket-Secret", "in": "header", "schema": {"type": "string"},
                            "description": "the secret the socket's 'session' event carried on connect"}],
            "requestBody": _IMAGE_BODY,
            "responses": {"200": _linked(_json("Prediction", "the answer"), _TO_JOB),
                          "202": _linked(_json("Queued", "queued (wait=0): job_id and status_url"), _TO_JOB),
                          "400": _E400,
                          "403": _error("sid names a socket and X-Socket-Secret is not its secret, or the "
                                        "request came from another site's page"),
                          "413": _E413, "415": _E415, "422": _E422,
                          "429": _E429, "503": _E503, "504": _error("no worker answered in time")}}},
        "/api/jobs/{job_id}": {"get": {
            "operationId": "getJob", "summary": "state of a queued prediction",
            "parameters": [{"name": "job_id", "in": "path", "required": True, "schema": _HEX32}],
            "responses": {"200": _object("queued, started, finished (result) or failed (error)"),
                          "404": _object("unknown or expired job"), "503": _E503}}},
        "/helpdata": {
            "post": {"operationId": "addHelpData",
                     "summary": "a drawing with the digit it really shows (training data)",
                     "requestBody": {"required": True, "content": {
                         "application/json": {"schema": {
                             "type": "object", "required": ["image", "label"],
                             "properties": {"image": _B64_IMAGE, "label": _DIGIT,
                                            "predicted": {**_DIGIT, "type": ["integer", "null"]},
                                            "job_id": {**_HEX32, "type": ["string", "null"]}}},
                             "example": {"image": EXAMPLE_PNG, "label": 3}},
                         "multipart/form-data": {"schema": {
                             "type": "object", "required": ["file", "label"],
                             "properties": {"file": {"type": "string", "format": "binary", "minLength": 1},
                                            "label": {"type": "string", "pattern": "^[0-9]$"}}},
                             "encoding": {"file": _IMAGE_PARTS}}}},
                     "responses": {"201": _object("stored"), "200": _object("already stored"),
                                   "400": _E400, "403": _E403_CROSS, "413": _E413, "415": _E415,
                                   "429": _E429, "503": _E503, "507": _E507}},
            "get": {"operationId": "helpDataSummary", "summary": "help images not yet trained on",
                    "responses": {"200": _object("pending count and retrain threshold"), "503": _E503}}},
        "/api/models": {"get": {"operationId": "listModels",
                                "summary": "model versions, their states and which workers serve them "
                                           "(with the admin token: library versions and live workers too)",
                                "responses": {"200": _linked(_object("models"), _TO_PROMOTE),
                                              "401": _E401, "403": _E403_VIEW, "503": _E503}}},
        "/api/retrain": {"post": {"operationId": "retrain", "summary": "queue a retraining (operator)",
                                  "security": _ADMIN,
                                  "responses": {"202": _object("queued or joined"), "401": _E401,
                                                "403": _E403, "404": _E404_OFF, "503": _E503}}},
        "/api/models/{model_id}/promote": {"post": {
            "operationId": "promoteModel", "summary": "make a version production (operator)", "security": _ADMIN,
            "parameters": [_MODEL_ID_PATH],
            "responses": {"200": _object("promoted"), "401": _E401, "403": _E403,
                          "404": _error("no such model, or operator routes are off (the service runs "
                                        "without SWAGDIGITS_ADMIN_TOKEN)"),
                          "503": _E503, "507": _E507}}},
        "/api/models/{model_id}/canary": {"post": {
            "operationId": "startCanary", "security": _ADMIN,
            "summary": "answer a share of live drawings with a version; rolled back by itself when users "
                       "correct it more than production (operator)",
            "parameters": [_MODEL_ID_PATH],
            "requestBody": _share_body(0.1),
            "responses": {"201": _object("canary running"), "400": _E400, "401": _E401, "403": _E403,
                          "404": _error("no such model, or operator routes are off"),
                          "409": _error("that version is production"), "503": _E503}}},
        "/api/models/canary": {"delete": {
            "operationId": "stopCanary", "security": _ADMIN,
            "summary": "end the canary and return its tallies (operator)",
            "responses": {"200": _object("stopped, with its tallies"), "401": _E401, "403": _E403,
                          "404": _error("no canary is running, or operator routes are off"), "503": _E503}}},
        "/api/models/{model_id}/shadow": {
            "post": {
                "operationId": "startShadow", "security": _ADMIN,
                "summary": "score a share of live drawings with a version too, after production answered (operator)",
                "parameters": [_MODEL_ID_PATH],
                "requestBody": _share_body(0.2),
                "responses": {"201": _object("in shadow"), "400": _E400, "401": _E401, "403": _E403,
                              "404": _error("no such model, or operator routes are off"),
                              "409": _error("that version is production"), "503": _E503}},
            "delete": {
                "operationId": "stopShadow", "security": _ADMIN,
                "summary": "stop a shadow and return its tallies (operator)",
                "parameters": [_MODEL_ID_PATH],
                "responses": {"200": _object("stopped, with its tallies"), "401": _E401, "403": _E403,
                              "404": _error("not in shadow, or operator routes are off"), "503": _E503}}},
        "/api/models/rollback": {"post": {
            "operationId": "rollbackModel", "summary": "re-promote the previous production version (operator)", "security": _ADMIN,
            "responses": {"200": _object("rolled back"), "401": _E401, "403": _E403, "404": _E404_OFF,
                          "409": _error("nothing to roll back to"), "503": _E503, "507": _E507}}},
        "/api/batches": {"post": {
            "operationId": "submitBatch", "summary": "predict many images; answers at once with a batch id",
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": {
                    "type": "object", "required": ["images"],
                    "properties": {"images": {"type": "array", "items": {"type": "string"}, "minItems": 1}}},
                    "example": {"images": [EXAMPLE_PNG, EXAMPLE_PNG]}},
                # any number of file parts, each one image (the part name is free; `file` here)
                "multipart/form-data": {"schema": {
                    "type": "object", "required": ["file"],
                    "properties": {"file": {"type": "array", "minItems": 1,
                                            # an empty or unreadable part is that image's error entry
                                            "items": {"type": "string", "format": "binary"}}}},
                    "encoding": {"file": _IMAGE_PARTS}}}},
            "responses": {"202": _linked(_object("batch queued: batch_id, size, invalid, status_url, "
                                                 "expires_at"), _TO_BATCH), "400": _E400, "403": _E403_CROSS,
                          "413": _E413, "415": _E415, "429": _E429, "503": _E503}}},
        "/api/batches/{batch_id}": {"get": {
            "operationId": "getBatch", "summary": "a batch's progress, and its results once finished (JSON or format=csv)",
            "parameters": [{"name": "batch_id", "in": "path", "required": True, "schema": _HEX32},
                           {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["json", "csv"]},
                            "description": "csv: the results as CSV (409 until finished); json (default)"}],
            "responses": {"200": {"description": "progress and results (JSON), or the results as CSV "
                                                 "with format=csv",
                                  "content": {"application/json": {"schema": {"type": "object"}},
                                              "text/csv": {"schema": {"type": "string"}}}},
                          "400": _error("format is neither json nor csv"), "404": _E404,
                          "409": _error("CSV asked for before the batch finished"), "503": _E503}}},
        "/v2/health/live": {"get": {"operationId": "v2Live", "summary": "Open Inference Protocol: live",
                                    "responses": {"200": _object("live")}}},
        "/v2/health/ready": {"get": {"operationId": "v2Ready",
                                     "summary": "Open Inference Protocol: ready (the /readyz rule)",
                                     "responses": {"200": _object("ready"), "503": _V2_503}}},
        "/v2": {"get": {"operationId": "v2ServerMetadata", "summary": "Open Inference Protocol: server metadata",
                        "responses": {"200": _object("name, version, extensions")}}},
        "/v2/models/{model_name}": {"get": _v2(
            "v2ModelMetadata", "model metadata: versions, platform, input and output tensors",
            {"200": _linked(_object("model metadata"), _TO_VERSION), "404": _V2_404})},
        "/v2/models/{model_name}/versions/{model_version}": {"get": _v2(
            "v2ModelVersionMetadata", "metadata of the production version",
            {"200": _object("model metadata"), "404": _V2_404}, version=True)},
        "/v2/models/{model_name}/ready": {"get": _v2(
            "v2ModelReady", "the model is ready: live workers serve the production version",
            {"200": _object("ready"), "404": _V2_404, "503": _V2_503})},
        "/v2/models/{model_name}/versions/{model_version}/ready": {"get": _v2(
            "v2ModelVersionReady", "the production version is ready",
            {"200": _object("ready"), "404": _V2_404, "503": _V2_503}, version=True)},
        "/v2/models/{model_name}/infer": {"post": _v2(
            "v2Infer", "predict N images (one: the interactive path; several: a batch, awaited)", **_V2_INFER)},
        "/v2/models/{model_name}/versions/{model_version}/infer": {"post": _v2(
            "v2InferVersion", "predict N images with the production version", version=True, **_V2_INFER)},
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                       "description": "SWAGDIGITS_ADMIN_TOKEN"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error", "status"],
                      "properties": {"error": {"type": "string"}, "status": {"type": "integer"}}},
            "Queued": {"type": "object", "required": ["job_id", "status_url"],
                       "properties": {"job_id": _HEX32, "state": {"type": "string"},
                                      "status_url": {"type": "string"}}},
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
