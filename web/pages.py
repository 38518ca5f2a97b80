"""The drawing page, its strict Content-Security-Policy, and the vendored Socket.IO client.

The Socket.IO browser client is installed from the npm registry by
``./run`` (``npm ci`` from package-lock.json) into node_modules/, which is not
committed; it is served from there so the page works offline and without a
CDN.
"""
from __future__ import annotations

from flask import Blueprint, render_template, send_from_directory

from shared.images.canvas import BRUSH_WIDTH, CANVAS_SIZE
from web.errors import ApiError
from web.services import services

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent
SOCKETIO_CLIENT_DIR = ROOT / "node_modules" / "socket.io-client" / "dist"
_VENDOR_FILES = {"socket.io.min.js", "socket.io.min.js.map"}

# No inline script or style anywhere: scripts and styles come from this origin only.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])

bp = Blueprint("pages", __name__)


@bp.after_request
def _security_headers(response):
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


@bp.get("/")
def index():
    config = services().config
    return render_template("index.html", canvas_size=CANVAS_SIZE, brush_width=BRUSH_WIDTH,
                           answer_timeout_ms=int(config.predict_timeout * 1000),
                           unsure_below=config.unsure_below)


@bp.get("/vendor/<name>")
def vendor(name: str):
    if name not in _VENDOR_FILES:
        raise ApiError("no such file", 404)
    if not (SOCKETIO_CLIENT_DIR / name).is_file():
        raise ApiError("the Socket.IO browser client is not installed; run ./run (npm ci)", 404)
    return send_from_directory(SOCKETIO_CLIENT_DIR, name, max_age=86400)
