"""Every error the API gives is JSON with a message, never an HTML page or a bare 500."""
from __future__ import annotations

import errno
import logging

import redis
from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from shared.images.upload import ImageRejected

log = logging.getLogger(__name__)

_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_READ_ONLY = {errno.EROFS, errno.EACCES, errno.EPERM}


class ApiError(Exception):
    """Raise from a handler to answer ``status`` with a JSON ``message``."""

    def __init__(self, message: str, status: int = 400, headers: dict | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.headers = headers or {}


def error_response(message: str, status: int, headers: dict | None = None):
    response = jsonify({"error": message, "status": status})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def redis_failure(exc: redis.RedisError) -> tuple[str, int, dict]:
    """What to answer when Redis fails: 503 either way, saying whether it is down or full.

    A Redis at its ``maxmemory`` (policy noeviction) refuses writes with an
    OOM error, raised directly or from inside a Lua script; that is not a
    client's fault nor a bug, so it is a 503 naming the cause, never a 500.
    """
    if _is_out_of_memory(exc):
        log.warning("Redis is full (maxmemory): refusing a write")
        return ("the server's queue storage is full (Redis maxmemory); nothing was saved; "
                "try again later", 503, {"Retry-After": "30"})
    log.warning("Redis unavailable: %s", type(exc).__name__)
    return "the queue is unavailable; try again shortly", 503, {"Retry-After": "2"}


def _is_out_of_memory(exc: redis.RedisError) -> bool:
    return isinstance(exc, redis.exceptions.OutOfMemoryError) or (
        isinstance(exc, redis.ResponseError) and "OOM command not allowed" in str(exc))


def register(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.message, exc.status, exc.headers)

    @app.errorhandler(ImageRejected)
    def _bad_image(exc: ImageRejected):
        return error_response(exc.message, exc.status)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if exc.code == 413:
            return error_response("request body is too large", 413)
        # Keep the exception's own headers: a 405 must say which methods are allowed
        # (``Allow``, RFC 9110 15.5.6); the body is ours, so its Content-Type is too.
        headers = {name: value for name, value in exc.get_headers() if name.lower() != "content-type"}
        return error_response(exc.description or exc.name, exc.code or 500, headers)

    @app.errorhandler(redis.RedisError)
    def _redis_down(exc: redis.RedisError):
        return error_response(*redis_failure(exc))

    @app.errorhandler(OSError)
    def _storage_error(exc: OSError):
        # A full or read-only disk is the operator's to fix, and nothing half-written is
        # left behind (shared.atomic): say so clearly instead of a bare 500.
        if exc.errno in _DISK_FULL:
            log.error("storage full: %s", exc.strerror)
            return error_response("storage is full; the data was not saved", 507)
        if exc.errno in _READ_ONLY:
            log.error("storage not writable: %s", exc.strerror)
            return error_response("storage is read-only; the data was not saved", 503, {"Retry-After": "30"})
        log.exception("unexpected error")
        return error_response("internal error", 500)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error")
        return error_response("internal error", 500)
