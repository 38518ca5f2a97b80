"""docker-compose.yaml: valid for docker-compose, and shaped so the stack scales and survives restarts."""
import os
import re
import subprocess

import yaml

from tests.deploy.conftest import ROOT, tool

APP_SERVICES = ("web", "predict-worker", "retrain-worker")
PASSWORD_VARIABLE = "SWAGDIGITS_REDIS_PASSWORD"
# what compose reads: required, with a message naming the variable and where to put it
PASSWORD = r"\$\{SWAGDIGITS_REDIS_PASSWORD:\?[^}$]*\.env[^}$]*\}"
TEST_PASSWORD = "0123abcd" * 4


def load():
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def compose_env(**variables: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k != PASSWORD_VARIABLE}, **variables}


def test_docker_compose_accepts_the_file():
    res = subprocess.run([tool("docker-compose"), "-f", str(ROOT / "docker-compose.yaml"), "config", "-q"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60,
                         env=compose_env(**{PASSWORD_VARIABLE: TEST_PASSWORD}))
    assert res.returncode == 0, res.stderr


def test_without_a_redis_password_compose_refuses_to_start_and_says_what_to_set(tmp_path):
    empty = tmp_path / "empty.env"      # not the checkout's .env, which may hold one
    empty.write_text("")
    for unset in (compose_env(), compose_env(**{PASSWORD_VARIABLE: ""})):
        res = subprocess.run([tool("docker-compose"), "--env-file", str(empty), "-f", str(ROOT / "docker-compose.yaml"),
                              "config", "-q"], capture_output=True, text=True, cwd=ROOT, timeout=60, env=unset)
        assert res.returncode != 0
        assert f"set {PASSWORD_VARIABLE} in .env" in res.stderr, res.stderr


def test_every_part_of_the_service_is_there_with_health_checks_and_restarts():
    services = load()["services"]
    assert set(services) >= {"redis", *APP_SERVICES, "prometheus", "grafana"}
    for name, service in services.items():
        assert service.get("restart") in ("unless-stopped", "always"), name
        assert "healthcheck" in service, f"{name} has no health check"


def test_predict_workers_and_web_can_be_scaled():
    services = load()["services"]
    for name in ("predict-worker", "web"):
        assert "container_name" not in services[name] and "ports" not in services[name], name
    assert services["predict-worker"]["environment"]["SWAGDIGITS_METRICS_PORT"] == "9100"
    # the proxy alone publishes the web tier, and keeps each browser on one replica
    assert services["proxy"]["depends_on"]["web"]["condition"] == "service_healthy"
    nginx = (ROOT / "deploy/nginx.conf").read_text()
    assert "hash $swagdigits_route;" in nginx and "server web:5000;" in nginx


def test_app_services_wait_for_a_healthy_redis_and_keep_data_in_named_volumes():
    compose = load()
    services = compose["services"]
    for name in APP_SERVICES:
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy", name
    named = set(compose["volumes"])
    mounts = {m.split(":")[0]: m.split(":")[1] for s in services.values() for m in s.get("volumes", [])}
    assert {"models", "help-data", "redis-data", "prometheus-data", "grafana-data"} <= named
    assert mounts["models"] == "/data/models" and mounts["help-data"] == "/data/help_data"
    assert "--appendonly" in services["redis"]["command"]
    command = services["redis"]["command"]   # capped, and full means refusing writes, never evicting
    assert command[command.index("--maxmemory") + 1] == "512mb"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"


def test_redis_requires_the_password_and_every_client_and_the_health_check_give_it():
    """The Redis clients the app opens from REDIS_URL (its own, RQ's, Socket.IO's message queue)
    all authenticate with a password in it: tests/deploy/test_k8s.py::
    test_the_service_talks_to_a_redis_that_requires_a_password, against a real redis-server."""
    raw = load()["services"]
    redis_url = rf"redis://:{PASSWORD}@redis:6379/0"
    for name in APP_SERVICES:
        assert re.fullmatch(redis_url, raw[name]["environment"]["REDIS_URL"]), name
    assert raw["redis"]["command"][-2] == "--requirepass" and re.fullmatch(PASSWORD, raw["redis"]["command"][-1])
    assert re.fullmatch(PASSWORD, raw["redis"]["environment"]["REDISCLI_AUTH"])

    services = resolved("docker-compose.yaml")["services"]
    urls = {name: env["REDIS_URL"] for name, s in services.items() for env in [s.get("environment") or {}]
            if "REDIS_URL" in env}
    assert urls == {name: f"redis://:{TEST_PASSWORD}@redis:6379/0" for name in APP_SERVICES}
    redis = services["redis"]
    assert redis["command"][-2:] == ["--requirepass", TEST_PASSWORD]
    # redis-cli reads REDISCLI_AUTH; it exits 0 on "NOAUTH ...", so the check wants PONG itself
    assert redis["environment"]["REDISCLI_AUTH"] == TEST_PASSWORD
    assert redis["healthcheck"]["test"] == ["CMD-SHELL", "redis-cli ping | grep -q PONG"]
    # nothing else carries it (Prometheus scrapes the apps, Grafana asks Prometheus)
    for name, service in services.items():
        if name not in (*APP_SERVICES, "redis"):
            assert TEST_PASSWORD not in yaml.safe_dump(service), name
    # the password stays out of git and out of the image's build context
    assert "/.env" in (ROOT / ".gitignore").read_text().split()
    assert ".env" in (ROOT / ".dockerignore").read_text().split()


def test_only_what_only_reads_is_mounted_read_only():
    """The retrain worker reads help images and writes nothing there; web stores help images and
    records promotions in models/; predict workers may train and publish the first model; the
    server secret is made by whichever of web and the retrain worker needs it first.
    deploy/k8s mounts the same (tests/deploy/test_k8s.py compares the readOnly flags)."""
    services = load()["services"]
    mounts = {name: {m.split(":")[0]: m.split(":")[2:] for m in services[name]["volumes"]} for name in APP_SERVICES}
    assert mounts == {"web": {"models": [], "help-data": [], "server-secrets": []},
                      "predict-worker": {"models": []},
                      "retrain-worker": {"models": [], "help-data": ["ro"], "server-secrets": []}}


def test_the_config_files_the_services_mount_exist():
    services = load()["services"]
    for service in services.values():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), mount
    assert services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] == \
        "/etc/grafana/dashboards/swagdigits.json"


def test_the_image_runs_as_a_non_root_user_with_a_health_check_and_the_socketio_client():
    dockerfile = (ROOT / "Dockerfile").read_text()
    final_stage = dockerfile.split("\nFROM ")[-1]
    assert "\nUSER swag" in final_stage and "HEALTHCHECK" in final_stage
    assert "npm ci" in dockerfile and "node_modules/socket.io-client/dist" in final_stage
    assert "build-essential" not in final_stage and "gcc" not in final_stage
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "node_modules", "models", "help_data", ".git"} <= set(ignored)


IMAGE_VARIABLES = ("PYTHON_IMAGE", "NODE_IMAGE", "SWAGDIGITS_IMAGE", "REDIS_IMAGE", "PROMETHEUS_IMAGE", "NGINX_IMAGE",
                   "GRAFANA_IMAGE", "SWAGDIGITS_BIND_ADDR", "SWAGDIGITS_WEB_PORT", "PROMETHEUS_PORT", "GRAFANA_PORT")


def resolved(*files: str) -> dict:
    """The compose configuration docker-compose itself resolves, with none of its variables set."""
    env = {k: v for k, v in os.environ.items() if k not in IMAGE_VARIABLES}
    env[PASSWORD_VARIABLE] = TEST_PASSWORD   # required: compose stops without it
    args = [a for f in files for a in ("-f", str(ROOT / f))]
    res = subprocess.run([tool("docker-compose"), *args, "config"], capture_output=True, text=True, cwd=ROOT,
                         env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    return yaml.safe_load(res.stdout)


def test_images_default_to_the_official_ones_and_ports_to_loopback():
    services = resolved("docker-compose.yaml")["services"]
    assert services["redis"]["image"] == "redis:7.2-alpine"
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana-oss:")
    assert services["proxy"]["image"].startswith("nginx:")
    assert services["web"]["build"]["args"] == {"PYTHON_IMAGE": "python:3.11-slim-bookworm",
                                               "NODE_IMAGE": "node:20-bookworm-slim"}
    published = [port for s in services.values() for port in s.get("ports", [])]
    assert published and all(port.startswith("127.0.0.1:") for port in published), published
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ARG NODE_IMAGE=node:20-bookworm-slim" in dockerfile
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in dockerfile
    froms = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("FROM ")]
    assert froms == ["${NODE_IMAGE}", "${PYTHON_IMAGE}", "${PYTHON_IMAGE}"], froms


def test_the_offline_override_uses_only_the_stand_in_images_the_script_builds():
    services = resolved("docker-compose.yaml", "deploy/offline.yaml")["services"]
    script = (ROOT / "deploy/offline-images.sh").read_text()
    started = {name: s for name, s in services.items() if not s.get("profiles")}
    assert set(started) == {"redis", *APP_SERVICES, "proxy", "prometheus"}   # Grafana: no Debian package
    for name, service in started.items():
        image = service["image"]
        if name in APP_SERVICES:
            assert image == "swagdigits:offline" and service["build"]["network"] == "host", name
            bases = service["build"]["args"].values()
        else:
            bases = [image]
        for base in bases:
            repo, tag = base.split(":")
            assert repo.startswith("swagdigits-offline/"), base
            assert f'"$PREFIX/{repo.split("/", 1)[1]}:{tag}"' in script.replace("$SUITE", "bookworm"), base


def test_the_processes_that_hash_clients_or_split_help_data_share_one_secrets_volume():
    """shared/server_secrets.py: every web replica and the retrain worker must derive the same
    keys, for as long as the help data lives: one named volume at DATA_DIR/secrets, the default
    SWAGDIGITS_SECRETS_DIR (unless the operator gives SWAGDIGITS_SECRET_KEY)."""
    compose = load()
    services = compose["services"]
    assert "server-secrets" in compose["volumes"]
    for name in ("web", "retrain-worker"):
        assert "server-secrets:/data/secrets" in services[name]["volumes"], name
        assert services[name]["environment"]["SWAGDIGITS_DATA_DIR"] == "/data"
    assert "server-secrets:/data/secrets" not in services["predict-worker"]["volumes"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "/data/secrets" in dockerfile and "chmod 700 /data/secrets" in dockerfile


def test_the_web_tier_gets_the_operators_host_list_and_nginx_passes_the_clients_host():
    """web/host_check.py: compose binds 0.0.0.0, so any host is answered unless the operator sets
    SWAGDIGITS_ALLOWED_HOSTS (passed through); nginx forwards the browser's Host, so the listed
    public names match, and the health checks name IP addresses, which always pass."""
    web = load()["services"]["web"]
    assert web["environment"]["SWAGDIGITS_ALLOWED_HOSTS"] == "${SWAGDIGITS_ALLOWED_HOSTS:-}"
    assert "proxy_set_header Host $http_host;" in (ROOT / "deploy/nginx.conf").read_text()
    assert "http://127.0.0.1:5000/healthz" in " ".join(web["healthcheck"]["test"])
