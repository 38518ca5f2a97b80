"""Web tier: serves the page, the HTTP API and Socket.IO; never runs the model."""
from __future__ import annotations

import logging

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from shared.config import Config
from web.services import EXTENSION_KEY, Services

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


def create_app(config: Config | None = None, services: Services | None = None,
               socket_manager=None) -> Flask:
    """Build the Flask app from ``config``; tests pass ``services`` to use fakeredis.

    ``socket_manager`` replaces the Redis message queue of Socket.IO with another
    python-socketio client manager (Flask-SocketIO's test client needs an
    in-process one).
    """
    config = config or Config.from_env()
    app = Flask(__name__, template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static"))
    app.config["MAX_CONTENT_LENGTH"] = config.max_upload_bytes
    app.config["JSON_SORT_KEYS"] = False
    app.extensions[EXTENSION_KEY] = services or Services.connect(config)

    from web import api, batches, errors, health, pages, sockets

    errors.register(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(api.bp)
    from web import helpdata, models_api

    app.register_blueprint(helpdata.bp)
    app.register_blueprint(models_api.bp)
    app.register_blueprint(batches.bp)
    from web import inference_v2

    app.register_blueprint(inference_v2.bp)
    sockets.init_app(app, socket_manager)
    from web import metrics

    metrics.init_app(app)
    from web import openapi, security

    security.init_app(app)
    app.register_blueprint(openapi.bp)
    from web import log_limit

    log_limit.init_app(app, config.log_lines_per_client)   # outside all but ProxyFix: sees the client
    if config.proxy_hops:
        # Outermost, so the socket caps and every per-address rule see the client's address.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=config.proxy_hops)
    logging.getLogger(__name__).debug("app created for %s", security.redact_url(config.redis_url))
    return app
