"""Refuse requests that name a host this service does not answer to (DNS rebinding).

Why: a page on evil.example whose DNS name is re-pointed at this server's
address (127.0.0.1 for ``swagdigits up``) is, to the browser, still
evil.example: its requests carry ``Host: evil.example`` and ``Origin:
http://evil.example``. Both origin checks compare Origin with the request's
own Host (``web.security`` for writes, python-engineio for Socket.IO), so
such a page could predict, send help data and read answers from a visitor's
local service. Only a list of the names the service answers to tells the two
apart: ``Config.host_names()`` (``SWAGDIGITS_ALLOWED_HOSTS``; by default the
loopback names when bound to a loopback address, otherwise any host).

A WSGI middleware, so Socket.IO's engine, which answers ``/socket.io/``
before Flask sees the request, is covered too; it sits inside the headers
middleware (the 400 carries the security headers) and before the socket caps
(a refused request holds no place). The Host's port is ignored. A Host that
is an IP literal always passes: a rebinding needs a name the attacker
controls, and health checks, Prometheus and Kubernetes probes name the
address. The answer is JSON ``{"error", "status"}``, without echoing the
host; nothing is logged (every such request would be a line a client
chooses).
"""
from __future__ import annotations

import ipaddress
import json

_BODY = json.dumps({"error": "this server does not answer to the host name in the request's "
                             "Host header; its operator lists the names it answers to in "
                             "SWAGDIGITS_ALLOWED_HOSTS", "status": 400}).encode()


def host_name(host: str) -> str:
    """``Host`` without its port, lower case: ``[::1]:5000`` -> ``[::1]``, ``A.example:80`` -> ``a.example``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[:host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """Whether a request whose Host header is ``host`` may be answered; ``allowed`` empty: any."""
    if not allowed:
        return True
    name = host_name(host)
    return name in allowed or is_ip_literal(name)


class HostCheckMiddleware:
    """Answers 400 JSON to a request whose Host is not one of ``allowed`` (empty: any host)."""

    def __init__(self, wsgi_app, allowed: tuple[str, ...]):
        self.wsgi_app = wsgi_app
        self.allowed = allowed

    def __call__(self, environ, start_response):
        host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
        if host_allowed(host, self.allowed):
            return self.wsgi_app(environ, start_response)
        start_response("400 Bad Request", [("Content-Type", "application/json"),
                                           ("Content-Length", str(len(_BODY)))])
        return [_BODY]
