"""Bearer-token check for operator routes (retrain, promote, rollback) and operator views.

Off unless ``SWAGDIGITS_ADMIN_TOKEN`` is set: a service started without one
cannot have its models changed over HTTP at all, rather than being open. The
answers follow RFC 9110 so standard clients and API testers read them right:

- operator routes off (no token configured): 404, whatever is sent; the
  routes do not exist in this configuration, and no credential could help;
- no ``Authorization`` header (or not a bearer token): 401 with
  ``WWW-Authenticate: Bearer``, saying what to send;
- a wrong token: 403.

The token is compared in constant time so response timing does not leak it.
"""
from __future__ import annotations

import functools
import hmac

from flask import request

from web.errors import ApiError
from web.services import services


OFF_MESSAGE = "operator routes are off: set SWAGDIGITS_ADMIN_TOKEN to use them"


def check_admin(off_status: int = 404) -> None:
    """Refuse the request unless it carries the operator token; ``off_status`` when there is none to carry."""
    token = services().config.admin_token
    if not token:
        raise ApiError(OFF_MESSAGE, off_status)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise ApiError("send 'Authorization: Bearer <SWAGDIGITS_ADMIN_TOKEN>'", 401,
                       {"WWW-Authenticate": 'Bearer realm="swagdigits"'})
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise ApiError("wrong admin token", 403)


def is_operator() -> bool:
    """Whether the caller sent the operator token; a wrong token is refused, not taken as anonymous."""
    if "Authorization" not in request.headers:
        return False
    check_admin(off_status=403)  # the route exists; only its operator view is off
    return True


def admin_required(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        check_admin()
        return view(*args, **kwargs)
    return wrapper
