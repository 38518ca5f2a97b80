"""grafana/: provisioned data source and a dashboard whose every panel queries metrics we export."""
import json
import re

import yaml
from prometheus_client import CollectorRegistry

from shared import metrics
from tests.deploy.conftest import ROOT

DASHBOARD = ROOT / "grafana/dashboards/swagdigits.json"
# Series Prometheus itself adds to every target.
PROMETHEUS_SERIES = {"up"}
PROMQL_WORDS = {"sum", "max", "min", "count", "rate", "increase", "histogram_quantile", "by", "on", "and",
                "or", "unless", "scalar", "clamp_min", "topk", "le", "instance", "job", "queue", "digit",
                "version", "route", "status", "outcome", "delta", "absent"}


def panels():
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def exported_series() -> set[str]:
    """Every series name the three metric groups and the scrape-time collectors can produce."""
    registry = CollectorRegistry()
    metrics.WebMetrics.build(registry)
    metrics.PredictMetrics.build(registry)
    metrics.RetrainMetrics.build(registry)
    names = set()
    for family in registry.collect():
        names.add(family.name)
        names |= {family.name + s for s in ("_total", "_bucket", "_count", "_sum")}
    # read at scrape time from Redis / Socket.IO (see RedisStateCollector, web.metrics)
    names |= {"swagdigits_redis_up", "swagdigits_queue_depth", "swagdigits_queue_oldest_job_age_seconds",
              "swagdigits_jobs_enqueued_total", "swagdigits_predict_workers_live",
              "swagdigits_help_images_pending", "swagdigits_socketio_connected_clients"}
    return names | PROMETHEUS_SERIES


def series_in(expr: str) -> set[str]:
    without_labels = re.sub(r"\{[^}]*\}", "", expr)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_labels)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_ranges))
    return {w for w in words if w.startswith("swagdigits_") or w in PROMETHEUS_SERIES}


def test_the_datasource_uid_matches_every_panel_and_target():
    provisioned = yaml.safe_load((ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text())
    [source] = provisioned["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    for panel in panels():
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == source["uid"], panel["title"]


def test_every_panel_has_a_query_on_metrics_we_export():
    known = exported_series()
    for panel in panels():
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            expr = target["expr"]
            assert expr.count("(") == expr.count(")"), expr
            used = series_in(expr)
            assert used, f"{panel['title']}: {expr} queries no metric"
            assert used <= known, f"{panel['title']}: unknown series {used - known}"


def test_the_alert_rules_use_only_metrics_we_export():
    rules = yaml.safe_load((ROOT / "prometheus/alerts.yml").read_text())["groups"][0]["rules"]
    known = exported_series()
    for rule in rules:
        assert series_in(rule["expr"]) <= known, rule["alert"]


def test_the_dashboard_covers_what_operators_asked_for():
    exprs = " ".join(t["expr"] for p in panels() for t in p["targets"])
    for needed in ("swagdigits_queue_depth", "swagdigits_queue_oldest_job_age_seconds",
                   "swagdigits_jobs_enqueued_total", "swagdigits_prediction_end_to_end_seconds_bucket",
                   "swagdigits_prediction_queue_wait_seconds_bucket", "swagdigits_prediction_compute_seconds_bucket",
                   "swagdigits_predictions_total", "swagdigits_last_predicted_digit",
                   "swagdigits_last_prediction_timestamp_seconds", "swagdigits_prediction_confidence_ratio_bucket",
                   "swagdigits_help_images_received_total", "swagdigits_model_info", "swagdigits_model_swaps_total",
                   'up{job="predict-worker"}', "swagdigits_retrain_runs_total",
                   "swagdigits_retrain_candidate_accuracy_ratio", "swagdigits_http_requests_total"):
        assert needed in exprs, needed


def test_panels_fit_the_grid_and_have_unique_ids():
    all_panels = json.loads(DASHBOARD.read_text())["panels"]
    ids = [p["id"] for p in all_panels]
    assert len(ids) == len(set(ids))
    for p in all_panels:
        grid = p["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, p["title"]
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] == "swagdigits"
    provider = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/dashboards.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"
