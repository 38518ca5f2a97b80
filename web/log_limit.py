"""At most N warning lines per client a minute: no client chooses how fast the log grows.

Some lines are written because of what one client sent: a malformed
Socket.IO or Engine.IO packet (``web.sockets``; in a long-polling POST the
session even stays open, so the same client can send another at once), or
a request refused for a server condition (help data full, Redis full or
down) that every request of the client meets again. Each line is short, but
their number was the client's to choose.

So records of WARNING and above from the loggers these come through
(``LIMITED_LOGGERS``) pass a filter that counts them per client
(``web.client_key``: an IPv6 client by its /64) in fixed one-minute
windows: the first ``SWAGDIGITS_LOG_LINES_PER_CLIENT`` are written, the next
becomes one line saying the rest of the minute's are suppressed, the others
are dropped. The client is the one whose request (or Socket.IO message) this
thread is handling: ``ClientContextMiddleware`` sets it for each request,
``web.sockets`` for each message. Records with no client (start-up, the
deadline thread) are never limited. Counts are per process and forgotten
each minute; past ``max_clients`` clients in a minute, the rest share one
count, so memory stays bounded whatever the number of addresses.
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
import time

from web.client_key import client_key

ALLOW, NOTICE, DROP = "allow", "notice", "drop"
WINDOW_S = 60
MAX_CLIENTS = 10_000
_OTHERS = "(other clients)"
LIMITED_LOGGERS = ("web.sockets", "web.errors", "web.helpdata", "engineio.server", "socketio.server")

current_client: contextvars.ContextVar[str | None] = contextvars.ContextVar("swagdigits_client", default=None)


class PerClientLogLimit:
    """Counts lines per client per window: ALLOW up to ``per_window``, then one NOTICE, then DROP."""

    def __init__(self, per_window: int, window_s: float = WINDOW_S, clock=time.monotonic,
                 max_clients: int = MAX_CLIENTS):
        self.per_window = per_window   # 0: no limit
        self.window_s = window_s
        self.clock = clock
        self.max_clients = max_clients
        self._lock = threading.Lock()
        self._window = None
        self._counts: dict[str, int] = {}

    def check(self, client: str) -> str:
        if self.per_window <= 0:
            return ALLOW
        with self._lock:
            window = int(self.clock() // self.window_s)
            if window != self._window:
                self._window, self._counts = window, {}
            if client not in self._counts and len(self._counts) >= self.max_clients:
                client = _OTHERS
            n = self._counts[client] = self._counts.get(client, 0) + 1
        if n <= self.per_window:
            return ALLOW
        return NOTICE if n == self.per_window + 1 else DROP


_NOTICE = ("further warnings caused by one client are suppressed for the rest of this minute "
           "(SWAGDIGITS_LOG_LINES_PER_CLIENT)")


class ClientLogFilter(logging.Filter):
    """Lets a client's WARNING+ records through while ``limit`` allows; turns the next into the notice."""

    def __init__(self, limit: PerClientLogLimit):
        super().__init__()
        self.limit = limit

    def filter(self, record: logging.LogRecord) -> bool:
        client = current_client.get()
        if record.levelno < logging.WARNING or client is None:
            return True
        verdict = self.limit.check(client)
        if verdict == NOTICE:
            record.msg, record.args, record.exc_info, record.exc_text = _NOTICE, (), None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return verdict != DROP


class ClientContextMiddleware:
    """Names the client (``current_client``) for everything logged while its request is handled."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        token = current_client.set(client_key(environ.get("REMOTE_ADDR")))
        try:
            return self.wsgi_app(environ, start_response)
        finally:
            current_client.reset(token)


@contextlib.contextmanager
def for_client(address: str | None):
    """``with for_client(address):`` what is logged inside counts against that address's client."""
    token = current_client.set(client_key(address))
    try:
        yield
    finally:
        current_client.reset(token)


def init_app(app, per_minute: int) -> None:
    """Install one limit on ``LIMITED_LOGGERS`` (replacing an earlier app's) and name each request's client."""
    log_filter = ClientLogFilter(PerClientLogLimit(per_minute))
    for name in LIMITED_LOGGERS:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, ClientLogFilter)]:
            logger.removeFilter(old)
        logger.addFilter(log_filter)
    app.wsgi_app = ClientContextMiddleware(app.wsgi_app)
