"""Every Prometheus metric the service exports, defined once, grouped by the process that owns it.

Why one module: names, label sets and buckets are part of a contract with
``prometheus/alerts.yml`` and ``grafana/dashboards/swagdigits.json``; keeping
them together makes that contract reviewable (tests/deploy checks every
expression in those files against a real Prometheus).

Each process builds only its own group (``web()``, ``predict()``,
``retrain()``), so the web's ``/metrics`` never shows worker series stuck at
zero. Everything follows Prometheus naming: base units (seconds, ratios),
``_total`` for counters, low-cardinality labels (route templates, digit 0-9,
queue names, fixed outcome sets). Label values that a dashboard divides by
are created up front so their series exist at zero before the first event.

Queue depth, oldest-job age, live workers and pending help data are read
from Redis when Prometheus scrapes the web tier (``web.metrics``, through
``shared.messaging.queue_state``): nothing on the request or prediction hot path.

Multi-process web tier: when ``PROMETHEUS_MULTIPROC_DIR`` is set (an empty
directory, wiped before start), prometheus_client keeps every process's
values in files there and ``registry_for_exposition`` merges them with
``MultiProcessCollector``, so counters from several web processes add up.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from prometheus_client import (REGISTRY, CollectorRegistry, Counter, Gauge, Histogram,
                               generate_latest, start_http_server)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from shared.model.drift import DriftWindow

log = logging.getLogger(__name__)

NAMESPACE = "swagdigits"

# Prediction latencies are a few milliseconds: buckets must resolve 1 ms steps
# at the low end and still catch multi-second stalls.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03,
                   0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
RETRAIN_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

RETRAIN_QUEUE_LABEL = "retrain"
RETRAIN_OUTCOMES = ("promoted", "canary", "shadow", "rejected", "failed")
SHADOW_TRIAL_OUTCOMES = ("promoted", "canary", "rejected", "abandoned")
FAILURE_REASONS = ("bad_image", "worker_died")
DIGITS = tuple(str(d) for d in range(10))


def _name(short: str) -> str:
    return f"{NAMESPACE}_{short}"


# -- web tier -----------------------------------------------------------------
@dataclass
class WebMetrics:
    http_requests: Counter
    http_duration: Histogram
    help_images: Counter
    corrections: Counter
    canary_rollbacks: Counter
    retrain_requests: Counter

    @classmethod
    def build(cls, registry: CollectorRegistry = REGISTRY) -> "WebMetrics":
        return cls(
            http_requests=Counter(_name("http_requests_total"), "HTTP requests answered, by route template, "
                                  "method and status.", ["route", "method", "status"], registry=registry),
            http_duration=Histogram(_name("http_request_duration_seconds"), "Time to answer an HTTP request "
                                    "(/metrics excluded).", ["route", "method", "status"],
                                    buckets=HTTP_BUCKETS, registry=registry),
            help_images=Counter(_name("help_images_received_total"), "Labelled help images accepted from users.",
                                registry=registry),
            corrections=Counter(_name("corrections_total"), "Help images that correct an answer (the label "
                                "differs from the digit the worker recorded for the job_id sent), by the "
                                "model version that gave the answer.", ["version"], registry=registry),
            canary_rollbacks=Counter(_name("canary_rollbacks_total"), "Canaries rolled back because users "
                                     "corrected them more than production.", registry=registry),
            retrain_requests=Counter(_name("retrain_requests_total"), "Retrain requests (threshold, API or CLI).",
                                     registry=registry),
        )

    def observe_request(self, route: str, method: str, status: int, seconds: float | None) -> None:
        labels = (route, method, str(status))
        self.http_requests.labels(*labels).inc()
        if seconds is not None:
            self.http_duration.labels(*labels).observe(seconds)


# -- predict workers -----------------------------------------------------------
@dataclass
class PredictMetrics:
    predictions: Counter
    queue_wait: Histogram
    compute: Histogram
    end_to_end: Histogram
    batch_size: Histogram
    confidence: Histogram
    last_digit: Gauge
    last_time: Gauge
    failed: Counter
    model_info: Gauge
    model_swaps: Counter
    model_swap_failures: Counter
    drift_psi: Gauge
    low_confidence: Gauge
    low_confidence_reference: Gauge
    drift_window: Gauge
    shadow_predictions: Counter
    shadow_agreements: Counter
    shadow_trials: Counter
    _drift = None       # the worker's DriftWindow once watch_drift attaches it (not a field)

    @classmethod
    def build(cls, registry: CollectorRegistry = REGISTRY) -> "PredictMetrics":
        m = cls(
            predictions=Counter(_name("predictions_total"), "Drawings answered, by predicted digit.",
                                ["digit"], registry=registry),
            queue_wait=Histogram(_name("prediction_queue_wait_seconds"), "Time a drawing waited in the queue "
                                 "before a worker claimed it.", buckets=LATENCY_BUCKETS, registry=registry),
            compute=Histogram(_name("prediction_compute_seconds"), "Time to decode, preprocess and predict one "
                              "group of drawings (one predict_proba call).", buckets=LATENCY_BUCKETS,
                              registry=registry),
            end_to_end=Histogram(_name("prediction_end_to_end_seconds"), "Time from enqueue to the answer "
                                 "being stored and pushed.", buckets=LATENCY_BUCKETS, registry=registry),
            batch_size=Histogram(_name("prediction_batch_size"), "Drawings predicted per predict_proba call.",
                                 buckets=BATCH_BUCKETS, registry=registry),
            confidence=Histogram(_name("prediction_confidence_ratio"), "Probability of the predicted digit.",
                                 buckets=CONFIDENCE_BUCKETS, registry=registry),
            last_digit=Gauge(_name("last_predicted_digit"), "The digit this worker predicted last.",
                             registry=registry),
            last_time=Gauge(_name("last_prediction_timestamp_seconds"), "Unix time of this worker's last "
                            "prediction.", registry=registry),
            failed=Counter(_name("prediction_jobs_failed_total"), "Drawings answered with an error, by reason.",
                           ["reason"], registry=registry),
            model_info=Gauge(_name("model_info"), "The model version this worker serves (value 1).",
                             ["version"], registry=registry),
            model_swaps=Counter(_name("model_swaps_total"), "Live model swaps after a promotion.",
                                registry=registry),
            model_swap_failures=Counter(_name("model_swap_failures_total"), "Promoted models refused (bad "
                                        "checksum, failed smoke test).", registry=registry),
            drift_psi=Gauge(_name("prediction_drift_psi"), "Population stability index of the digits this "
                            "worker's last answers name against the serving model's evaluation set (NaN "
                            "before the first answer).", registry=registry),
            low_confidence=Gauge(_name("low_confidence_share"), "Share of this worker's last answers whose "
                                 "top probability is under SWAGDIGITS_UNSURE_BELOW.", registry=registry),
            low_confidence_reference=Gauge(_name("low_confidence_reference_share"), "The same share on the "
                                           "serving model's evaluation set.", registry=registry),
            drift_window=Gauge(_name("drift_window_answers"), "Answers the drift gauges are computed over "
                               "(at most SWAGDIGITS_DRIFT_WINDOW; the window restarts with each model).",
                               registry=registry),
            shadow_predictions=Counter(_name("shadow_predictions_total"), "Drawings a shadow model scored after "
                                       "production answered, by shadow version.", ["version"], registry=registry),
            shadow_agreements=Counter(_name("shadow_agreements_total"), "Shadow scorings that read the same "
                                      "digit as production, by shadow version.", ["version"], registry=registry),
            shadow_trials=Counter(_name("shadow_trials_total"), "Shadow trials this worker decided "
                                  "(SWAGDIGITS_SHADOW_GATE_DRAWINGS), by outcome.", ["outcome"], registry=registry),
        )
        # Label lookups cost more than the increments: keep the ten digit children at hand.
        m._by_digit = [m.predictions.labels(digit) for digit in DIGITS]
        for reason in FAILURE_REASONS:
            m.failed.labels(reason)
        for outcome in SHADOW_TRIAL_OUTCOMES:
            m.shadow_trials.labels(outcome)
        return m

    def observe_batch(self, claimed_at: float, compute_s: float, done_at: float,
                      enqueued_at: list[float], digits: list[int], confidences: list[float],
                      failures: dict[str, int]) -> None:
        """Record one group of drawings: a few observations per job, no I/O."""
        if enqueued_at:
            self.batch_size.observe(len(enqueued_at))
            self.compute.observe(compute_s)
        wait, e2e = self.queue_wait.observe, self.end_to_end.observe
        for t in enqueued_at:
            wait(max(0.0, claimed_at - t))
            e2e(max(0.0, done_at - t))
        per_digit = [0] * 10
        for digit in digits:
            per_digit[digit] += 1
        for digit, n in enumerate(per_digit):
            if n:
                self._by_digit[digit].inc(n)
        confidence = self.confidence.observe
        for conf in confidences:
            confidence(conf)
        if self._drift is not None:
            self._drift.add(digits, confidences)
        if digits:
            self.last_digit.set(digits[-1])
            self.last_time.set(done_at)
        for reason, n in failures.items():
            if n:
                self.failed.labels(reason).inc(n)

    def observe_batch_results(self, results: list[dict]) -> None:
        """Count a batch chunk's answers by digit (its latencies would drown the interactive ones: not timed)."""
        digits, confidences = [], []
        for result in results:
            digit = result.get("digit")
            if digit is None:
                self.failed.labels("bad_image").inc()
                continue
            self._by_digit[digit].inc()
            self.confidence.observe(result["probabilities"][digit])
            digits.append(digit)
            confidences.append(result["probabilities"][digit])
        if self._drift is not None:
            self._drift.add(digits, confidences)

    def observe_shadow(self, version: str, scored: int, agreed: int) -> None:
        self.shadow_predictions.labels(version).inc(scored)
        self.shadow_agreements.labels(version).inc(agreed)

    def observe_shadow_trial(self, outcome: str) -> None:
        self.shadow_trials.labels(outcome).inc()

    def watch_drift(self, window: DriftWindow) -> None:
        """Compute the drift gauges from ``window`` whenever Prometheus scrapes (nothing per answer)."""
        self._drift = window
        self.drift_psi.set_function(window.digit_psi)
        self.low_confidence.set_function(window.low_confidence_share)
        self.low_confidence_reference.set_function(window.reference_low_confidence_share)
        self.drift_window.set_function(lambda: window.count)

    def serving(self, version: str, swapped: bool, reference: dict | None = None) -> None:
        """A model went live: replace the info series, count it as a swap unless it is the first,
        and restart the drift window against the new model's reference."""
        self.model_info.clear()
        self.model_info.labels(version).set(1)
        if swapped:
            self.model_swaps.inc()
        if self._drift is not None:
            self._drift.reset(reference)


# -- retrain worker -----------------------------------------------------------
@dataclass
class RetrainMetrics:
    runs: Counter
    duration: Histogram
    candidate_accuracy: Gauge
    production_accuracy: Gauge
    help_images: Gauge
    last_run: Gauge

    @classmethod
    def build(cls, registry: CollectorRegistry = REGISTRY) -> "RetrainMetrics":
        m = cls(
            runs=Counter(_name("retrain_runs_total"), "Retrain runs, by outcome.", ["outcome"], registry=registry),
            duration=Histogram(_name("retrain_duration_seconds"), "Wall time of a retrain run.",
                               buckets=RETRAIN_BUCKETS, registry=registry),
            candidate_accuracy=Gauge(_name("retrain_candidate_accuracy_ratio"), "Last candidate's accuracy on "
                                     "the fixed evaluation set.", registry=registry),
            production_accuracy=Gauge(_name("retrain_production_accuracy_ratio"), "Production model's accuracy "
                                      "on the same set, measured in the last run.", registry=registry),
            help_images=Gauge(_name("retrain_help_images"), "Help images the last run trained on.",
                              registry=registry),
            last_run=Gauge(_name("retrain_last_run_timestamp_seconds"), "Unix time the last run ended.",
                           registry=registry),
        )
        for outcome in RETRAIN_OUTCOMES:
            m.runs.labels(outcome)
        return m

    def record(self, outcome: str, seconds: float, candidate_acc: float | None = None,
               production_acc: float | None = None, help_images: int | None = None) -> None:
        if outcome not in RETRAIN_OUTCOMES:
            raise ValueError(f"retrain outcome {outcome!r} is not one of {RETRAIN_OUTCOMES}")
        self.runs.labels(outcome).inc()
        self.duration.observe(seconds)
        if candidate_acc is not None:
            self.candidate_accuracy.set(candidate_acc)
        if production_acc is not None:
            self.production_accuracy.set(production_acc)
        if help_images is not None:
            self.help_images.set(help_images)
        self.last_run.set(time.time())


# -- one group per process, built on first use --------------------------------
_groups: dict[str, object] = {}
_groups_lock = threading.Lock()


def _group(name: str, build):
    with _groups_lock:
        if name not in _groups:
            _groups[name] = build()
        return _groups[name]


def web() -> WebMetrics:
    return _group("web", WebMetrics.build)


def predict() -> PredictMetrics:
    return _group("predict", PredictMetrics.build)


def retrain() -> RetrainMetrics:
    return _group("retrain", RetrainMetrics.build)


def record_retrain(outcome: str, seconds: float, candidate_acc: float | None = None,
                   production_acc: float | None = None, help_images: int | None = None) -> None:
    """The retrain worker's one call per run (outcome: promoted, rejected or failed)."""
    retrain().record(outcome, seconds, candidate_acc, production_acc, help_images)


def record_help_image() -> None:
    """The web tier accepted one labelled help image."""
    web().help_images.inc()


def record_canary_rollback() -> None:
    web().canary_rollbacks.inc()


def record_correction(model_version: str) -> None:
    """A user said the answer ``model_version`` gave was wrong (the correction rate's numerator)."""
    web().corrections.labels(model_version).inc()


def record_retrain_request() -> None:
    """A retrain was asked for (threshold reached, API or CLI)."""
    web().retrain_requests.inc()


# -- scrape-time state (read by the web tier from Redis) -----------------------
def redis_up_family(up: bool) -> GaugeMetricFamily:
    family = GaugeMetricFamily(_name("redis_up"), "1 when Redis answered this scrape.")
    family.add_metric([], 1 if up else 0)
    return family


def queue_state_families(state, pending_help: int | None = None):
    """Metric families of a ``shared.messaging.queue_state.QueueState`` snapshot."""
    depth = GaugeMetricFamily(_name("queue_depth"), "Jobs waiting or being worked on, per queue.",
                              labels=["queue"])
    age = GaugeMetricFamily(_name("queue_oldest_job_age_seconds"), "Age of the oldest job still in the "
                            "queue (0 when empty).", labels=["queue"])
    enqueued = CounterMetricFamily(_name("jobs_enqueued"), "Jobs ever added to the queue (Redis "
                                   "stream entries-added; same value from every web process).",
                                   labels=["queue"])
    for label, stats in state.streams.items():
        depth.add_metric([label], stats.depth)
        age.add_metric([label], stats.oldest_age_s)
        enqueued.add_metric([label], stats.added)
    depth.add_metric([RETRAIN_QUEUE_LABEL], state.retrain_depth)
    age.add_metric([RETRAIN_QUEUE_LABEL], state.retrain_oldest_age_s)
    workers = GaugeMetricFamily(_name("predict_workers_live"), "Predict workers whose heartbeat is "
                                "recent, as /readyz counts them.")
    workers.add_metric([], state.predict_workers)
    families = [depth, age, enqueued, workers]
    if pending_help is not None:
        pending = GaugeMetricFamily(_name("help_images_pending"), "Help images received but not yet "
                                    "used by a trained model.")
        pending.add_metric([], pending_help)
        families.append(pending)
    return families


def socket_clients_family(count: int) -> GaugeMetricFamily:
    family = GaugeMetricFamily(_name("socketio_connected_clients"),
                               "Socket.IO clients connected to this web process.")
    family.add_metric([], count)
    return family


# -- exposition ---------------------------------------------------------------
def registry_for_exposition(multiproc_dir: str = "", extra: tuple[Collector, ...] = ()) -> CollectorRegistry:
    """The registry a /metrics handler renders: this process's, or every process's in multiprocess mode."""
    if multiproc_dir:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=multiproc_dir)
    else:
        registry = CollectorRegistry()
        registry.register(_Delegate(REGISTRY))
    for collector in extra:
        registry.register(collector)
    return registry


class _Delegate(Collector):
    """Lets a per-app registry include the process-wide default one without re-registering its metrics."""

    def __init__(self, inner: CollectorRegistry):
        self.inner = inner

    def describe(self):
        return []

    def collect(self):
        return self.inner.collect()


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


def serve(port: int, addr: str = "127.0.0.1") -> int:
    """Start a worker's /metrics HTTP server in a daemon thread; return the port (0 picks a free one)."""
    server, _ = start_http_server(port, addr=addr)
    return server.server_address[1]
