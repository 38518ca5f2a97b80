"""Standard security headers on every response, and per-client rate limits.

Headers: the page's strict Content-Security-Policy (``web.pages``) and the
usual companions go on *every* response, JSON and errors included, so no
route can be framed, sniffed into HTML or leak its URL in a Referer. They are
added by a WSGI middleware around the whole app rather than Flask's
``after_request``: Socket.IO's engine answers ``/socket.io/`` itself, before
Flask sees the request (a WebSocket's 101 handshake is written by
simple-websocket and carries none; no browser reads them there).

Cross-site writes: an HTML form on any site can POST multipart data here
without a CORS preflight, from each visitor's browser and address. Writes
(any method but GET, HEAD, OPTIONS) are refused with 403 when the browser
says they come from another site: ``Sec-Fetch-Site: cross-site``, or an
``Origin`` that is neither this service's own host nor one of
``SWAGDIGITS_ALLOWED_ORIGINS``. Programs (curl, Python) send neither header
and are not affected.

Host names: a request whose Host is not one this service answers to is a 400
before anything else sees it (``web.host_check``: DNS rebinding).

Rate limits: prediction routes (``POST /api/predict``, ``POST /api/batches``,
``POST /v2/models/digits/infer``, the Socket.IO ``predict`` event) and ``POST /helpdata`` count requests per
client address in Redis (``web.rate_limit``); a batch counts one per image
(``web.batches`` charges the rest once it has counted them), so the limit holds however
many web processes serve the client. Over the limit: 429 JSON with
``Retry-After``. The client is ``request.remote_addr`` as ``web.client_key``
counts it (an IPv6 address by its /64); forwarded-for headers
are trusted only from the ``SWAGDIGITS_PROXY_HOPS`` reverse proxies the
operator declares (``web/__init__.py``), since anyone can send them.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, request

from web import rate_limit
from web.client_key import client_key
from web.errors import ApiError
from web.host_check import HostCheckMiddleware
from web.services import EXTENSION_KEY, services

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

# Flask endpoint -> the rate-limit counter it spends.
LIMITED_ENDPOINTS = {
    "api.predict": rate_limit.PREDICT,
    "batches.submit": rate_limit.PREDICT,
    "inference_v2.infer": rate_limit.PREDICT,   # one per image too (web.batches.admit)
    "helpdata.add_help": rate_limit.HELP,
}

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def init_app(app: Flask) -> None:
    from web.pages import CONTENT_SECURITY_POLICY

    @app.before_request
    def _same_site_writes():
        if request.method not in SAFE_METHODS:
            check_same_site()

    @app.before_request
    def _rate_limit():
        kind = LIMITED_ENDPOINTS.get(request.endpoint or "")
        if kind and request.method == "POST":
            check_rate(kind)

    headers = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, **SECURITY_HEADERS}
    config = app.extensions[EXTENSION_KEY].config
    app.wsgi_app = HostCheckMiddleware(app.wsgi_app, config.host_names())
    app.wsgi_app = HeadersMiddleware(app.wsgi_app, headers)


class HeadersMiddleware:
    """Adds ``headers`` to every response that does not set them itself."""

    def __init__(self, wsgi_app, headers: dict[str, str]):
        self.wsgi_app = wsgi_app
        self.headers = list(headers.items())

    def __call__(self, environ, start_response):
        def start_with_headers(status, response_headers, exc_info=None):
            present = {name.lower() for name, _ in response_headers}
            response_headers = list(response_headers) + [
                (name, value) for name, value in self.headers if name.lower() not in present]
            return start_response(status, response_headers, exc_info)

        return self.wsgi_app(environ, start_with_headers)


def check_same_site() -> None:
    """Refuse (403) a write a browser sent on behalf of another site's page."""
    origin = request.headers.get("Origin")
    if origin is not None and origin.rstrip("/") in services().config.origins():
        return
    cross_site = request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site"
    if cross_site or (origin is not None and not _is_own_origin(origin)):
        raise ApiError("cross-site request refused: writes are accepted from this service's own "
                       "pages, the origins in SWAGDIGITS_ALLOWED_ORIGINS, and programs that send "
                       "no Origin", 403)


def _is_own_origin(origin: str) -> bool:
    """``origin`` names this host and port (the scheme may differ behind a TLS proxy)."""
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == request.host.lower()


def check_rate(kind: str, cost: int = 1) -> None:
    """Spend ``cost`` requests of ``kind`` for this client, or raise 429 with Retry-After."""
    limiter = services().rate_limiter
    verdict = limiter.hit(kind, client_key(request.remote_addr), cost=cost)
    if not verdict.allowed:
        raise ApiError(f"too many {kind} requests from this address: at most {verdict.limit} per "
                       f"{limiter.window_s}s; retry in {verdict.retry_after}s", 429,
                       {"Retry-After": str(verdict.retry_after)})


def redact_url(url: str) -> str:
    """A URL fit for a log: any password replaced by ``***``."""
    from urllib.parse import urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))
