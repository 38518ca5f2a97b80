"""prometheus.yml and prometheus/alerts.yml, checked and unit-tested with promtool."""
import subprocess

import yaml

from tests.deploy.conftest import ROOT, tool


def promtool(*args):
    res = subprocess.run([tool("promtool"), *args], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def test_the_prometheus_config_is_valid_and_loads_the_rules():
    out = promtool("check", "config", "prometheus.yml")
    assert "1 rule files found" in out


def test_the_alert_rules_are_valid():
    promtool("check", "rules", "prometheus/alerts.yml")


def test_the_alert_rules_pass_their_unit_tests():
    promtool("test", "rules", "prometheus/alerts_test.yml")


def test_predict_workers_are_found_by_dns_so_scaling_needs_no_config_change():
    config = yaml.safe_load((ROOT / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["predict-worker"]["dns_sd_configs"][0]["names"] == ["predict-worker"]
    assert {"web", "predict-worker", "retrain-worker"} <= set(jobs)


def test_every_alert_says_what_it_means_and_what_to_do():
    rules = yaml.safe_load((ROOT / "prometheus/alerts.yml").read_text())["groups"][0]["rules"]
    readme = (ROOT / "README.md").read_text()
    for rule in rules:
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        assert rule["alert"] in readme, f"README does not explain {rule['alert']}"
