"""Socket.IO: browsers send drawings here; workers' answers arrive through Redis.

Each browser is in a room named by its sid (Flask-SocketIO's default). A
drawing sent with the ``predict`` event is validated like an HTTP upload and
queued tagged with that room; the predict worker that answers it emits
``prediction`` to the room through the Redis message queue (``shared.messaging.push``),
so whichever web process holds the browser's connection delivers it. On
connect each socket gets a ``session`` event ``{sid, secret}``: an HTTP
prediction may name the socket (``?sid=``) only with that secret
(``web.socket_secrets``). Bad
drawings, a full queue, Redis trouble and a worker that never answers all come
back as ``prediction_error`` ``{seq?, job_id?, error, status}``.

A Socket.IO packet that cannot be decoded (a type that is not a digit or
not known, bad JSON, an attachment nobody announced) disconnects its client
and logs one short line, without the packet and without a traceback:
python-socketio logged ~1.8 KB of traceback per packet, twice, and kept the
socket open, so one client could write megabytes of log a second. An
undecodable Engine.IO frame closes its WebSocket with one line too; in a
long-polling POST the engine itself catches it, and it is logged as one line
(the session stays open: the engine gives no hook there). Either way a
client causes at most ``SWAGDIGITS_LOG_LINES_PER_CLIENT`` warnings a minute
(``web.log_limit``).

Connections are capped per client address and per process
(``web/socket_caps.py``): each one holds a web thread, and HTTP must keep some.
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
from web.errors import ApiError, redis_failure
from web.log_limit import for_client
from web.services import EXTENSION_KEY, services
from web.socket_caps import SocketCaps, SocketCapsMiddleware, engine_hooks
from web.socket_manager import RedisQueue

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
        client_manager = RedisQueue(config.redis_url, channel=p.SOCKETIO_CHANNEL)
    # Always pass the manager: the global SocketIO object keeps options between
    # init_app calls, so an app made after another must not inherit its queue.
    # Only the page's own origin (or SWAGDIGITS_ALLOWED_ORIGINS) may connect: another
    # site's script cannot drive a visitor's browser into our Socket.IO.
    origins = config.origins() or None
    socketio.init_app(app, async_mode=ASYNC_MODE, client_manager=client_manager,
                      cors_allowed_origins=origins,
                      logger=_library_logger("socketio.server"),
                      engineio_logger=_library_logger("engineio.server"),
                      max_http_buffer_size=int(config.max_upload_bytes * _BASE64_OVERHEAD) + _ENVELOPE_BYTES)
    server = socketio.server
    server.eio.on("message", _disconnect_on_bad_packets(server))
    app.wsgi_app = _EngineIOErrors(app.wsgi_app)
    # Per-address and per-process connection caps, so sockets never take every web thread.
    s.socket_caps = SocketCaps(config.sockets_per_client, config.socket_limit())
    connect, disconnect = engine_hooks(s.socket_caps, server._handle_eio_connect,
                                       server._handle_eio_disconnect)
    server.eio.on("connect", connect)
    server.eio.on("disconnect", disconnect)
    app.wsgi_app = SocketCapsMiddleware(app.wsgi_app, s.socket_caps)
    # A deadline's room is a socket this process holds (``on_predict`` watches its own
    # caller): emit to it directly, not through Redis, which may be the thing that hangs.
    s.deadlines = ReplyDeadlines(
        s.queue, lambda event, data, room: server.emit(event, data, to=room, namespace="/", ignore_queue=True),
        config.predict_timeout)


def _library_logger(name: str) -> logging.Logger:
    """python-socketio's or python-engineio's own logger, passed explicitly.

    Left to itself the library adds a handler of its own to it, so everything
    it logs appears twice (once unformatted). Kept at ERROR as the library
    would: its INFO lines carry packet contents, drawings included.
    """
    logger = logging.getLogger(name)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.ERROR)
    if not any(isinstance(f, _NoTracebackForBadInput) for f in logger.filters):
        logger.addFilter(_NoTracebackForBadInput())
    return logger


class _NoTracebackForBadInput(logging.Filter):
    """One line instead of a traceback when the library logs a packet it could not decode.

    python-engineio catches a long-polling POST whose payload it cannot decode
    and logs it with ``logger.exception``: ~1.4 KB of traceback per request.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], ValueError):
            record.msg = f"{record.getMessage()} (malformed packet: {type(record.exc_info[1]).__name__})"
            record.args, record.exc_info, record.exc_text = (), None, None
        return True


def _disconnect_on_bad_packets(server: python_socketio.Server):
    """Engine.IO's message handler, ending the connection of a client whose packet cannot be read."""
    handle = server._handle_eio_message  # what python-socketio registers for Engine.IO messages

    def guarded(eio_sid: str, data) -> None:
        # Messages may be handled on a thread of their own: name the client for the log limit.
        with for_client((server.environ.get(eio_sid) or {}).get("REMOTE_ADDR")):
            try:
                handle(eio_sid, data)
            except ValueError as exc:  # decoding: packet type, attachments, JSON
                log.warning("malformed Socket.IO packet (%s); disconnected the client", type(exc).__name__)
                _drop(server, eio_sid)
            except Exception:
                log.exception("error handling a Socket.IO packet; disconnected the client")
                _drop(server, eio_sid)

    return guarded


def _drop(server: python_socketio.Server, eio_sid: str) -> None:
    """Close an Engine.IO session now, without waiting for its queue to drain.

    ``engineio.Server.disconnect`` waits until the client has read everything
    queued for it: a long-polling client that sends no GET would hold this
    thread forever. This is what the engine does itself on a transport error.
    """
    socket = server.eio.sockets.pop(eio_sid, None)
    if socket is not None:
        socket.close(wait=False, reason=server.eio.reason.SERVER_DISCONNECT)


class _EngineIOErrors:
    """Ends a WebSocket whose Engine.IO frame cannot be decoded with one log line.

    python-engineio decodes WebSocket frames outside any error handling, so
    the ValueError reaches gunicorn, which logs ~3 KB of traceback and writes
    an HTTP 500 onto the WebSocket. Raising StopIteration is how the
    simple-websocket driver itself tells gunicorn the connection is done.
    """

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        try:
            return self.wsgi_app(environ, start_response)
        except ValueError as exc:
            if environ.get("HTTP_UPGRADE", "").lower() != "websocket" or "gunicorn.socket" not in environ:
                raise
            log.warning("malformed Engine.IO packet (%s); closed the WebSocket", type(exc).__name__)
            raise StopIteration from None


def deadlines() -> ReplyDeadlines:
    return services().deadlines


def _seq(data: object):
    """The browser's drawing counter, echoed back so it can drop answers to older drawings."""
    seq = data.get("seq") if isinstance(data, dict) else None
    if isinstance(seq, bool) or not isinstance(seq, (int, str)):
        return None
    return seq if isinstance(seq, int) else seq[:64]


@socketio.on("connect")
def on_connect(auth=None):
    """Hand the new socket its secret (``web.socket_secrets``), straight to it, never through Redis.

    Without Redis there is no key to sign with: the socket still connects and
    predicts over Socket.IO, it just gets no secret for ``POST /api/predict?sid=``.
    """
    try:
        secret = services().socket_secrets.issue(request.sid)
    except redis.RedisError as exc:
        log.warning("no socket secret issued (Redis unavailable: %s)", type(exc).__name__)
        return
    emit(p.EVENT_SESSION, {"sid": request.sid, "secret": secret}, ignore_queue=True)


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
        message, status, _ = redis_failure(exc)
        return _fail(seq, message, status)
    except Exception:
        log.exception("unexpected error handling a drawing")
        return _fail(seq, "internal error", 500)
    deadlines().watch(job_id, request.sid, seq)
    return {"seq": seq, "job_id": job_id}


def _fail(seq, message: str, status: int) -> dict:
    """Tell the caller's own socket, held by this process: straight to it, not through
    Redis's message queue, so a Redis that hangs cannot hold the answer back."""
    body = {"seq": seq, "error": message, "status": status}
    emit(p.EVENT_PREDICTION_ERROR, body, ignore_queue=True)
    return body
