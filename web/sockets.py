"""Socket.IO: browsers send drawings here; workers' answers arrive through Redis.

Each browser is in a room named by its sid (Flask-SocketIO's default). A
drawing sent with the ``predict`` event is validated like an HTTP upload and
queued tagged with that room; the predict worker that answers it emits
``prediction`` to the room through the Redis message queue (``shared.messaging.push``),
so whichever web process holds the browser's connection delivers it. Bad
drawings, a full queue, Redis trouble and a worker that never answers all come
back as ``prediction_error`` ``{seq?, job_id?, error, status}``.
"""
from __future__ import annotations

import logging

import redis
import socketio as python_socketio
from flask import Flask, request
from flask_socketio import SocketIO, emit

from shared.messaging import protocol as p
from shared.images.upload import ImageRejected, bytes_from_text, inspect
from web.deadlines import ReplyDeadlines
from web.api import submit_drawing
from web.errors import ApiError
from web.services import EXTENSION_KEY, services

log = logging.getLogger(__name__)

# Threading mode with simple-websocket, served by gunicorn's threaded worker:
# the mode Flask-SocketIO recommends now that eventlet is unmaintained.
ASYNC_MODE = "threading"
# A data URL is base64, a third larger than the image bytes it carries.
_BASE64_OVERHEAD = 4 / 3
_ENVELOPE_BYTES = 4096

socketio = SocketIO()


def init_app(app: Flask, client_manager: python_socketio.Manager | None = None) -> None:
    """Attach Socket.IO; ``client_manager`` defaults to the Redis message queue of the config."""
    s = app.extensions[EXTENSION_KEY]
    config = s.config
    if client_manager is None:
        client_manager = python_socketio.RedisManager(config.redis_url, channel=p.SOCKETIO_CHANNEL)
    # Always pass the manager: the global SocketIO object keeps options between
    # init_app calls, so an app made after another must not inherit its queue.
    # Only the page's own origin (or SWAGDIGITS_ALLOWED_ORIGINS) may connect: another
    # site's script cannot drive a visitor's browser into our Socket.IO.
    origins = config.origins() or None
    socketio.init_app(app, async_mode=ASYNC_MODE, client_manager=client_manager,
                      cors_allowed_origins=origins,
                      max_http_buffer_size=int(config.max_upload_bytes * _BASE64_OVERHEAD) + _ENVELOPE_BYTES)
    server = socketio.server
    s.deadlines = ReplyDeadlines(
        s.queue, lambda event, data, room: server.emit(event, data, to=room, namespace="/"),
        config.predict_timeout)


def deadlines() -> ReplyDeadlines:
    return services().deadlines


def _seq(data: object):
    """The browser's drawing counter, echoed back so it can drop answers to older drawings."""
    seq = data.get("seq") if isinstance(data, dict) else None
    if isinstance(seq, bool) or not isinstance(seq, (int, str)):
        return None
    return seq if isinstance(seq, int) else seq[:64]


@socketio.on(p.EVENT_PREDICT)
def on_predict(data=None):
    """Queue the drawing for this browser's room; the ack carries ``{seq, job_id}``."""
    seq = _seq(data)
    try:
        if not isinstance(data, dict) or "image" not in data:
            raise ApiError("send {\"image\": \"data:image/png;base64,...\"}", 400)
        from web.security import check_rate

        check_rate("predict")
        s = services()
        image = bytes_from_text(data["image"], s.limits.max_bytes)
        inspect(image, s.limits)
        job_id = submit_drawing(image, room=request.sid, wants_reply=False)
    except (ApiError, ImageRejected) as exc:
        return _fail(seq, exc.message, exc.status)
    except redis.RedisError as exc:
        log.warning("Redis unavailable: %s", type(exc).__name__)
        return _fail(seq, "the queue is unavailable; try again shortly", 503)
    except Exception:
        log.exception("unexpected error handling a drawing")
        return _fail(seq, "internal error", 500)
    deadlines().watch(job_id, request.sid, seq)
    return {"seq": seq, "job_id": job_id}


def _fail(seq, message: str, status: int) -> dict:
    body = {"seq": seq, "error": message, "status": status}
    emit(p.EVENT_PREDICTION_ERROR, body)
    return body
