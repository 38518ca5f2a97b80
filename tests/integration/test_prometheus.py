"""A real Prometheus scrapes a real stack; every dashboard and alert expression is asked of it.

Debian's ``prometheus`` binary runs on a free port with a private storage
folder and a 1 s scrape interval against web, two predict workers and the
retrain worker (static targets stand in for compose's DNS discovery; the job
names are the ones prometheus.yml uses, so alert expressions match).
"""
from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis
import requests
import yaml

from shared.messaging import shadows
from shared.model.store import ModelRegistry

from swagdigits.embedded_redis import free_port
from testkit.drawings import digit_png
from tests.integration.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1m", "$__interval": "5s"}

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("prometheus") is None,
                                 reason="Debian's prometheus is not installed (.ci/run installs it)")]


def dashboard_exprs() -> list[tuple[str, str]]:
    board = json.loads((ROOT / "grafana/dashboards/swagdigits.json").read_text())
    return [(p["title"], t["expr"]) for p in board["panels"] if p["type"] != "row" for t in p["targets"]]


def alert_exprs() -> list[tuple[str, str]]:
    rules = yaml.safe_load((ROOT / "prometheus/alerts.yml").read_text())
    return [(r["alert"], r["expr"]) for g in rules["groups"] for r in g["rules"]]


def grafana_to_promql(expr: str) -> str:
    for var, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(var, value)
    assert "$" not in expr, f"unsubstituted Grafana variable in {expr}"
    return expr


class Prometheus:
    def __init__(self, tmp: Path, targets: dict[str, list[str]]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        rules = tmp / "alerts.yml"
        shutil.copy(ROOT / "prometheus/alerts.yml", rules)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": hosts}]}
                               for job, hosts in targets.items()],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log_path = tmp / "prometheus.log"
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            ["prometheus", f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self._log, stderr=subprocess.STDOUT)

    def query(self, expr: str) -> list:
        res = requests.get(self.url + "/api/v1/query", params={"query": expr}, timeout=5)
        body = res.json()
        assert res.status_code == 200 and body["status"] == "success", f"{expr}: {body.get('error', body)}"
        return body["data"]["result"]

    def series_names(self) -> set[str]:
        return set(requests.get(self.url + "/api/v1/label/__name__/values", timeout=5).json()["data"])

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


@pytest.fixture
def prometheus_stack(stack, tmp_path):
    ports = [free_port() for _ in range(3)]
    for port in ports[:2]:
        stack.start("worker", "predict", env={"SWAGDIGITS_METRICS_PORT": str(port)})
    stack.start("worker", "retrain", env={"SWAGDIGITS_METRICS_PORT": str(ports[2])})
    url = stack.start_web()
    web_host = url.removeprefix("http://")
    prom_dir = tmp_path / "prometheus"
    prom_dir.mkdir()
    prom = Prometheus(prom_dir, {
        "web": [web_host],
        "predict-worker": [f"127.0.0.1:{p}" for p in ports[:2]],
        "retrain-worker": [f"127.0.0.1:{ports[2]}"],
    })
    try:
        stack.wait_ready(url, workers=2)
        # The retrain worker computes its fixed training features at start (~20 s of CPU): let it
        # finish, so a healthy stack's latency is not measured while it competes for the cores.
        wait_for(lambda: "listening on queue" in stack.procs[2].log(), "the retrain worker's warm-up",
                 stack.procs, timeout=180)
        yield url, prom
    finally:
        prom.stop()


def test_every_dashboard_and_alert_expression_works_against_a_real_prometheus(prometheus_stack, config):
    url, prom = prometheus_stack
    wait_for(lambda: len([r for r in prom.query("up") if r["value"][1] == "1"]) == 4,
             "Prometheus to scrape web, 2 predict workers and the retrain worker", timeout=30)

    # The production version also runs in shadow (the route refuses that; the store module does not),
    # so the shadow series exist: every answered drawing is scored a second time by each worker.
    shadows.start(redis.Redis.from_url(config.redis_url), ModelRegistry(config.model_dir).production_id(), 1.0)

    # Traffic: drawings over HTTP (answered by both workers in turn), one bad request, one help image.
    for i in range(40):
        res = requests.post(url + "/api/predict", files={"file": ("d.png", digit_png(i % 10), "image/png")},
                            timeout=10)
        assert res.status_code == 200, res.text
    assert requests.post(url + "/api/predict", data=b"{", headers={"Content-Type": "application/json"},
                         timeout=5).status_code == 400
    image = "data:image/png;base64," + base64.b64encode(digit_png(3)).decode()
    assert requests.post(url + "/helpdata", json={"image": image, "label": 3}, timeout=5).status_code == 201
    # A correction: a user says the answer to one drawing was wrong (its job_id names the version).
    answer = res.json()
    wrong = "data:image/png;base64," + base64.b64encode(digit_png(answer["digit"], brush=14)).decode()
    assert requests.post(url + "/helpdata", timeout=5, json={
        "image": wrong, "label": (answer["digit"] + 1) % 10, "job_id": answer["job_id"]}).status_code == 201

    # Every worker answered something, and Prometheus has seen it in at least two scrapes (rate needs two).
    wait_for(lambda: len(prom.query("swagdigits_last_prediction_timestamp_seconds > 0")) == 2
             and prom.query('sum(rate(swagdigits_predictions_total[1m])) > 0')
             and prom.query("swagdigits_help_images_received_total > 0")
             and prom.query("rate(swagdigits_corrections_total[1m]) >= 0")
             # both workers shadowed (in their idle time, so all at once: the rate may be 0; the
             # series seen in two scrapes is what rate() and the panel need)
             and len(prom.query("rate(swagdigits_shadow_predictions_total[1m]) >= 0")) == 2,
             "predictions from both workers in Prometheus", timeout=30)
    time.sleep(2)

    empty = []
    for title, expr in dashboard_exprs():
        result = prom.query(grafana_to_promql(expr))
        if not result:
            empty.append(f"{title}: {expr}")
    assert not empty, "dashboard queries without data after traffic:\n" + "\n".join(empty)

    scraped = prom.series_names()
    for alert, expr in alert_exprs():
        prom.query(expr)  # valid PromQL (an alert that is quiet returns nothing, which is fine)
        used = set(re.findall(r"\b(swagdigits_[a-z0-9_]+|up)\b", re.sub(r"\{[^}]*\}", "", expr)))
        assert used <= scraped, f"{alert} uses series nothing exports: {used - scraped}"

    # The alerts are loaded and evaluated by this Prometheus, and none is even pending on a
    # healthy stack: "firing" needs `for:` (1 min or more) to pass, so it is not what is checked.
    loaded = rules_after(prom, time.time())
    assert set(loaded) == {a for a, _ in alert_exprs()}
    assert all(r["health"] == "ok" for r in loaded.values()), {n: r.get("lastError") for n, r in loaded.items()}
    active = {n: r["state"] for n, r in loaded.items() if r["state"] != "inactive"}
    assert not active, f"alerts pending or firing on a healthy stack: {active}"
    # And each alert's condition, asked of Prometheus directly, holds for no series at all.
    true_now = {alert: prom.query(expr) for alert, expr in alert_exprs()}
    assert not any(true_now.values()), f"alert conditions true on a healthy stack: {true_now}"


def rules_after(prom: Prometheus, since: float, timeout: float = 30) -> dict[str, dict]:
    """Every alert rule by name, once Prometheus has evaluated all of them after ``since``."""
    from datetime import datetime

    def evaluated():
        groups = requests.get(prom.url + "/api/v1/rules", timeout=5).json()["data"]["groups"]
        rules = {r["name"]: r for g in groups for r in g["rules"]}
        stamps = [datetime.fromisoformat(r["lastEvaluation"][:26].rstrip("Z") + "+00:00").timestamp()
                  for r in rules.values()]
        return rules if rules and min(stamps) > since else None

    return wait_for(evaluated, "an evaluation of every alert rule", timeout=timeout)


def test_stopped_workers_make_their_alerts_pending_at_once(stack, prometheus_stack):
    """The healthy-stack check above can fail: stopping the workers turns their alerts' conditions true."""
    url, prom = prometheus_stack
    wait_for(lambda: len([r for r in prom.query("up") if r["value"][1] == "1"]) == 4, "4 targets up", timeout=30)
    watched = {"SwagdigitsNoLivePredictWorker", "SwagdigitsRetrainWorkerDown"}
    exprs = dict(alert_exprs())
    healthy = rules_after(prom, time.time())
    assert {n: healthy[n]["state"] for n in watched} == {n: "inactive" for n in watched}
    assert not any(prom.query(exprs[n]) for n in watched)

    for proc in stack.procs[:3]:           # both predict workers and the retrain worker
        proc.stop()

    def pending():
        rules = rules_after(prom, time.time())
        return all(rules[n]["state"] == "pending" for n in watched) and rules
    rules = wait_for(pending, "the worker alerts to go pending", timeout=60)
    assert all(prom.query(exprs[n]) for n in watched)
    assert rules["SwagdigitsWebDown"]["state"] == "inactive", "the web tier still runs"
