"""``GET /metrics`` for Prometheus, and the request hooks that time every HTTP request.

Metric definitions live in ``shared.metrics``; this module only wires them to
Flask. Requests are labelled by the matched URL rule (``/api/jobs/<job_id>``),
never the raw path, so a scanner cannot blow up the series count; unmatched
paths share the label ``<unmatched>``. Queue state, live workers and pending
help data are read from Redis at scrape time, and the Socket.IO client count
from this process's Socket.IO server, so none of it costs a request anything.
"""
from __future__ import annotations

import logging
import time

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shared import metrics

log = logging.getLogger(__name__)

bp = Blueprint("metrics", __name__)

UNMATCHED = "<unmatched>"
_REGISTRY_KEY = "swagdigits.metrics_registry"


@bp.get("/metrics")
def metrics_endpoint():
    registry = current_app.extensions[_REGISTRY_KEY]
    return Response(metrics.render(registry), content_type=CONTENT_TYPE_LATEST)


class SocketClientsCollector(Collector):
    """Browsers connected to this process's Socket.IO server, counted when scraped."""

    def describe(self):
        return []

    def collect(self):
        from web.sockets import socketio

        family = GaugeMetricFamily(metrics._name("socketio_connected_clients"),
                                   "Socket.IO clients connected to this web process.")
        server = getattr(socketio, "server", None)
        count = 0
        if server is not None:
            count = len(server.manager.rooms.get("/", {}).get(None, {}))
        family.add_metric([], count)
        yield family


def _pending_help_reader(app: Flask):
    """How many help images await training (the help store's Redis counters; None: unknown)."""
    from shared.help_store import HelpStore

    s = app.extensions["swagdigits"]
    store = HelpStore(s.config.help_dir, s.conn)

    def read() -> int | None:
        try:
            return int(store.pending())
        except Exception as exc:  # never fail a scrape over it
            log.warning("metrics: could not count pending help images: %s", exc)
            return None
    return read


def init_app(app: Flask) -> None:
    """Register /metrics and the timing hooks; build this app's exposition registry once."""
    s = app.extensions["swagdigits"]
    web_metrics = metrics.web()
    extra = (metrics.RedisStateCollector(s.conn, s.config.worker_heartbeat, _pending_help_reader(app)),
             SocketClientsCollector())
    app.extensions[_REGISTRY_KEY] = metrics.registry_for_exposition(s.config.metrics_multiproc_dir, extra)
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
