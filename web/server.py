"""Serving the web tier with gunicorn's threaded worker (not the Werkzeug dev server).

One gunicorn worker process with many threads: Socket.IO needs every request
of a browser's session to reach the same process, and threads are what
Flask-SocketIO's threading mode uses for long-polling and WebSocket clients.
Run more web processes behind a sticky load balancer to scale out; the Redis
message queue lets any of them deliver a worker's answer.
"""
from __future__ import annotations

import logging

from gunicorn.app.base import BaseApplication

from shared.config import Config

log = logging.getLogger("swagdigits.web")


class _Gunicorn(BaseApplication):
    def __init__(self, app, options: dict):
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return self.application


def serve(config: Config | None = None) -> int:
    from shared.memory import limit_malloc_arenas
    from web import create_app

    limit_malloc_arenas()
    config = config or Config.from_env()
    app = create_app(config)
    bind = config.web_bind or f"{config.host}:{config.port}"
    log.info("web tier on http://%s/", bind)
    _Gunicorn(app, {
        "bind": bind,
        "workers": 1,
        "worker_class": "gthread",
        "threads": config.web_threads,
        "timeout": 0,           # long-lived WebSocket requests must not be killed
        "graceful_timeout": 5,
        "keepalive": 5,
        "accesslog": None,
        "control_socket_disable": True,  # several web processes may share a host
        "loglevel": config.log_level.lower(),
    }).run()
    return 0
