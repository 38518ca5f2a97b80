"""``GET /metrics`` for Prometheus, and the request hooks that time every HTTP request.

Metric definitions live in ``shared.metrics``; this module only wires them to
Flask and reads the scrape-time state. Requests are labelled by the matched URL rule (``/api/jobs/<job_id>``),
never the raw path, so a scanner cannot blow up the series count; unmatched
paths share the label ``<unmatched>``. Queue state, live workers and pending
help data are read from Redis at scrape time, and the Socket.IO client count
from this process's Socket.IO server, so none of it costs a request anything.
"""
from __future__ import annotations

import logging
import time

from flask import Blueprint, Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from shared import metrics
from shared.help_store import HelpStore
from shared.messaging import queue_state
from web.services import EXTENSION_KEY, services

log = logging.getLogger(__name__)

bp = Blueprint("metrics", __name__)

UNMATCHED = "<unmatched>"


@bp.get("/metrics")
def metrics_endpoint():
    return Response(metrics.render(services().metrics_registry), content_type=CONTENT_TYPE_LATEST)


class QueueStateCollector(Collector):
    """Queue depth and age, live workers and pending help data, read from Redis when scraped.

    The same numbers whichever web process answers, and nothing on the hot
    path. A Redis outage is reported as ``swagdigits_redis_up 0`` rather than
    a failed scrape.
    """

    def __init__(self, conn, heartbeat_s: int, help_store: HelpStore | None = None):
        self.conn = conn
        self.heartbeat_s = heartbeat_s
        self.help_store = help_store

    def describe(self):
        return []  # collected live; do not run a Redis round trip at registration

    def collect(self):
        try:
            state = queue_state.read(self.conn, self.heartbeat_s)
            pending = None if self.help_store is None else int(self.help_store.pending())
        except Exception as exc:  # a scrape must never fail because Redis is down
            log.warning("metrics: could not read queue state from Redis: %s", exc)
            yield metrics.redis_up_family(False)
            return
        yield metrics.redis_up_family(True)
        yield from metrics.queue_state_families(state, pending)


class SocketClientsCollector(Collector):
    """Browsers connected to this process's Socket.IO server, counted when scraped."""

    def describe(self):
        return []

    def collect(self):
        from web.sockets import socketio

        server = getattr(socketio, "server", None)
        count = 0
        if server is not None:
            count = len(server.manager.rooms.get("/", {}).get(None, {}))
        yield metrics.socket_clients_family(count)


def init_app(app: Flask) -> None:
    """Register /metrics and the timing hooks; build this app's exposition registry once."""
    s = app.extensions[EXTENSION_KEY]
    web_metrics = metrics.web()
    extra = (QueueStateCollector(s.conn, s.config.worker_heartbeat, s.help_store), SocketClientsCollector())
    s.metrics_registry = metrics.registry_for_exposition(s.config.metrics_multiproc_dir, extra)
    app.register_blueprint(bp)

    @app.before_request
    def _start_timer():
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _count(response):
        rule = request.url_rule
        route = rule.rule if rule is not None else UNMATCHED
        started = g.pop("metrics_started", None)
        seconds = None
        if started is not None and route != "/metrics":
            seconds = time.perf_counter() - started
        web_metrics.observe_request(route, request.method, response.status_code, seconds)
        return response
