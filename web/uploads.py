"""Getting the image bytes out of a request: JSON ``{"image": ...}`` or a multipart ``file``."""
from __future__ import annotations

import json

from flask import Request

from shared.images.upload import ImageLimits, bytes_from_text, inspect
from web.errors import ApiError


def image_from_request(request: Request, limits: ImageLimits, field: str = "image") -> bytes:
    """Return validated image bytes, or raise a 4xx saying what is wrong."""
    data = _raw_image(request, limits, field)
    inspect(data, limits)
    return data


def json_body(request: Request) -> dict:
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # json's parser recurses once per nesting level
        raise ApiError("JSON body is nested too deeply", 400) from None
    if not isinstance(body, dict):
        raise ApiError("body must be a JSON object", 400)
    return body


def large_json_body(request: Request) -> dict:
    """A batch's JSON object, parsed with at most two copies of the body alive at once.

    Why not ``request.get_json``: it keeps the raw bytes cached, decodes them
    to text and parses that, so a maximal batch lived three times over in
    the web process (1.5 GB peak for two 256 MB batches). Here the bytes are
    read uncached, turned into text and dropped, then parsed.
    """
    text = request.get_data(cache=False).decode("utf-8", errors="replace")
    try:
        body = json.loads(text)
    except RecursionError:  # json's parser recurses once per nesting level
        raise ApiError("JSON body is nested too deeply", 400) from None
    except ValueError:
        raise ApiError("body must be a JSON object", 400) from None
    finally:
        del text
    if not isinstance(body, dict):
        raise ApiError("body must be a JSON object", 400)
    return body


def _raw_image(request: Request, limits: ImageLimits, field: str) -> bytes:
    if request.mimetype == "application/json":
        body = json_body(request)
        if field not in body:
            raise ApiError(f"JSON body needs an '{field}' field (data URL or base64 PNG/JPEG)", 400)
        return bytes_from_text(body[field], limits.max_bytes)
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is not None:
            return upload.read(limits.max_bytes + 1)
        if field in request.form:
            return bytes_from_text(request.form[field], limits.max_bytes)
        raise ApiError("multipart body needs a 'file' part holding a PNG or JPEG", 400)
    raise ApiError("send JSON {\"image\": ...} or multipart/form-data with a 'file' part", 415)
