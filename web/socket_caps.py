"""How many Socket.IO connections one address, and the whole process, may hold.

Why: the web tier runs Flask-SocketIO in ``threading`` mode under gunicorn's
``gthread`` worker (``web/server.py``). A WebSocket holds one of the
process's ``SWAGDIGITS_WEB_THREADS`` threads for as long as it is open, and a
long-polling session holds one for each GET that waits for news (up to the
25 s ping interval). The review (issue 17, finding 3) opened 64 complete,
well-formed WebSockets from one address: every thread was taken and
``/healthz`` and ``/`` timed out. A proxy's client timeouts do not help
against connections that behave.

So a new Engine.IO session (a ``GET /socket.io/`` without ``sid``: the
handshake of either transport) is admitted only while

- its address (an IPv6 one by its /64, ``web.client_key``) holds fewer than ``SWAGDIGITS_SOCKETS_PER_CLIENT`` sessions in
  this process (else 429 + ``Retry-After``), and
- the process holds fewer than ``SWAGDIGITS_WEB_THREADS`` -
  ``SWAGDIGITS_HTTP_THREADS`` sessions (else 503 + ``Retry-After``), so HTTP
  requests always find a free thread.

Both answers are JSON ``{"error", "status"}`` and are written before the
request reaches the engine, so a refused handshake costs a thread for
microseconds. The count is per process, like the threads it protects.

Bookkeeping: the middleware reserves a place before the handshake runs; the
engine's ``connect`` event hands it to the new session's id and its
``disconnect`` event (closed, timed out, dropped for a bad packet) gives it
back. A handshake the engine refused, or a WebSocket request that ends,
gives its place back when the request returns, so a place is never kept by
a session that no longer exists. Refusals are logged once per address per
episode (the first refusal after the address was under its cap), without
the address, so a client cannot flood the log either.
"""
from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from urllib.parse import parse_qs

from web.client_key import client_key

log = logging.getLogger(__name__)

ENVIRON_KEY = "swagdigits.socket_place"
RETRY_AFTER_S = 5


class Place:
    """One admitted Engine.IO session (or handshake in progress) of one client address."""

    __slots__ = ("caps", "client", "sid", "released")

    def __init__(self, caps: "SocketCaps", client: str):
        self.caps, self.client, self.sid, self.released = caps, client, None, False

    def release(self) -> None:
        self.caps._release(self)


class Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class SocketCaps:
    """Counts open Socket.IO sessions per client address and in total, under one lock."""

    def __init__(self, per_client: int, total: int):
        self.per_client = per_client   # 0: no per-address cap
        self.total = total
        self._lock = threading.Lock()
        self._by_client: Counter[str] = Counter()
        self._open = 0
        self._sessions: dict[str, Place] = {}
        self._warned: set[str] = set()

    def reserve(self, client: str) -> Place:
        """A place for a new session of ``client``, or ``Refused`` (429 per address, 503 in total)."""
        with self._lock:
            if self.per_client and self._by_client[client] >= self.per_client:
                self._warn_once(client, "a client address reached SWAGDIGITS_SOCKETS_PER_CLIENT "
                                        "(%d open Socket.IO connections); refusing its new ones", self.per_client)
                raise Refused(429, f"too many open Socket.IO connections from this address: at most "
                                   f"{self.per_client}; close one or retry in {RETRY_AFTER_S}s")
            if self._open >= self.total:
                self._warn_once("", "Socket.IO connections reached their limit (%d: web threads minus "
                                    "SWAGDIGITS_HTTP_THREADS); refusing new ones", self.total)
                raise Refused(503, f"the server holds as many Socket.IO connections as it can "
                                   f"({self.total}); retry in {RETRY_AFTER_S}s")
            self._by_client[client] += 1
            self._open += 1
            return Place(self, client)

    def _warn_once(self, key: str, message: str, *args) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

    def bind(self, place: Place, eio_sid: str) -> None:
        """The engine opened session ``eio_sid`` in ``place``: its disconnect gives it back."""
        with self._lock:
            if not place.released:
                place.sid = eio_sid
                self._sessions[eio_sid] = place

    def session_ended(self, eio_sid: str) -> None:
        with self._lock:
            place = self._sessions.pop(eio_sid, None)
        if place is not None:
            place.release()

    def _release(self, place: Place) -> None:
        with self._lock:
            if place.released:
                return
            place.released = True
            self._open -= 1
            self._by_client[place.client] -= 1
            if self._by_client[place.client] <= 0:
                del self._by_client[place.client]
            if self.per_client and self._by_client[place.client] < self.per_client:
                self._warned.discard(place.client)
            if self._open < self.total:
                self._warned.discard("")
            if place.sid is not None:
                self._sessions.pop(place.sid, None)

    def open_count(self, client: str | None = None) -> int:
        with self._lock:
            return self._open if client is None else self._by_client.get(client, 0)


def is_handshake(environ: dict, path: str = "/socket.io") -> bool:
    """A request that opens a new Engine.IO session: a GET on the Socket.IO path without ``sid``."""
    if environ.get("REQUEST_METHOD") != "GET" or not environ.get("PATH_INFO", "").startswith(path):
        return False
    return "sid" not in parse_qs(environ.get("QUERY_STRING", ""))


class SocketCapsMiddleware:
    """WSGI middleware in front of the engine: refuses handshakes over a cap, frees places after."""

    def __init__(self, wsgi_app, caps: SocketCaps):
        self.wsgi_app = wsgi_app
        self.caps = caps

    def __call__(self, environ, start_response):
        if not is_handshake(environ):
            return self.wsgi_app(environ, start_response)
        try:
            place = self.caps.reserve(client_key(environ.get("REMOTE_ADDR")))
        except Refused as refused:
            body = json.dumps({"error": refused.message, "status": refused.status}).encode()
            reason = "Too Many Requests" if refused.status == 429 else "Service Unavailable"
            start_response(f"{refused.status} {reason}", [
                ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                ("Retry-After", str(RETRY_AFTER_S))])
            return [body]
        environ[ENVIRON_KEY] = place
        try:
            return self.wsgi_app(environ, start_response)
        finally:
            # A polling handshake returns at once and its session lives on (its disconnect
            # frees the place); a WebSocket request returns when its session is over.
            if place.sid is None or environ.get("HTTP_UPGRADE", "").lower() == "websocket":
                place.release()


def engine_hooks(caps: SocketCaps, on_connect, on_disconnect):
    """The engine's ``connect``/``disconnect`` handlers, wrapped to bind and free places."""

    def connect(eio_sid, environ):
        place = environ.get(ENVIRON_KEY)
        if place is not None:
            caps.bind(place, eio_sid)
        return on_connect(eio_sid, environ)

    def disconnect(eio_sid, reason=None):
        try:
            return on_disconnect(eio_sid, reason)
        finally:
            caps.session_ended(eio_sid)

    return connect, disconnect
