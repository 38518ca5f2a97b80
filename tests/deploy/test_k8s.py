"""deploy/k8s: valid Kubernetes objects that run what compose runs, scaled by KEDA on the real streams.

No cluster and no kustomize binary: ``build()`` reads kustomization.yaml the way kustomize
would for the fields it uses (and refuses any other field, so a new one cannot slip past
these checks), then every core object is validated in strict mode against the API's own
schemas (kubernetes-validate, offline). KEDA's kinds are not in those schemas: they are
checked field by field against KEDA's documented names instead.
"""
from __future__ import annotations

import base64
import os
import re
import subprocess
import sys

import kubernetes_validate
import pytest
import redis
import yaml

from shared.config import SETTINGS, Config
from shared.messaging import protocol as p
from tests.deploy.conftest import ROOT

K8S = ROOT / "deploy/k8s"
APP_SERVICES = ("web", "predict-worker", "retrain-worker")
# Kubernetes releases whose schemas every core object must satisfy (oldest we claim, a recent one).
K8S_VERSIONS = ("1.29", "1.33")
# The kustomization fields build() understands; anything else must be taught to it first.
KUSTOMIZATION_FIELDS = {"apiVersion", "kind", "namespace", "labels", "resources", "secretGenerator"}
# Custom resources: not in kubernetes-validate's schemas, checked by the KEDA tests below.
CUSTOM_KINDS = {("keda.sh/v1alpha1", "ScaledObject"), ("keda.sh/v1alpha1", "TriggerAuthentication")}

# KEDA's documented ScaledObject spec fields and redis-streams trigger metadata
# (keda.sh/docs/latest/reference/scaledobject-spec, keda.sh/docs/latest/scalers/redis-streams).
KEDA_SCALEDOBJECT_SPEC = {"scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod",
                          "idleReplicaCount", "minReplicaCount", "maxReplicaCount", "fallback", "advanced",
                          "triggers"}
KEDA_TRIGGER_FIELDS = {"type", "name", "metadata", "authenticationRef", "metricType", "useCachedMetrics"}
KEDA_REDIS_STREAMS_METADATA = {"address", "host", "port", "addressFromEnv", "hostFromEnv", "portFromEnv",
                               "usernameFromEnv", "passwordFromEnv", "stream", "consumerGroup",
                               "pendingEntriesCount", "streamLength", "lagCount", "activationLagCount",
                               "enableTLS", "unsafeSsl", "databaseIndex"}
KEDA_REDIS_AUTH_PARAMETERS = {"username", "password", "tls", "ca", "cert", "key", "keyPassword"}


def kustomization() -> dict:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def secret_from_env_file(name: str, path) -> dict:
    """What kustomize's secretGenerator makes of an env file (name hash disabled)."""
    data = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            data[key] = base64.b64encode(value.encode()).decode()
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque", "data": data}


def build() -> list[dict]:
    """`kustomize build deploy/k8s`, for the fields kustomization.yaml uses.

    The Secret comes from secrets.env.example (secrets.env is the operator's, git-ignored).
    """
    k = kustomization()
    unknown = set(k) - KUSTOMIZATION_FIELDS
    assert not unknown, f"build() does not apply {unknown}: teach it, or these tests check the wrong objects"
    objects = []
    for resource in k["resources"]:
        objects += [doc for doc in yaml.safe_load_all((K8S / resource).read_text()) if doc]
    for generator in k.get("secretGenerator", []):
        assert generator["options"]["disableNameSuffixHash"] is True   # KEDA's reference is not rewritten
        assert generator["envs"] == ["secrets.env"]
        objects.append(secret_from_env_file(generator["name"], K8S / "secrets.env.example"))
    for obj in objects:
        meta = obj.setdefault("metadata", {})
        assert "namespace" not in meta, f"{obj['kind']}/{meta['name']}: the kustomization sets the namespace"
        if obj["kind"] != "Namespace":
            meta["namespace"] = k["namespace"]
        for group in k.get("labels", []):
            meta.setdefault("labels", {}).update(group["pairs"])
            assert group.get("includeSelectors") is False   # selectors are matched as written below
    return objects


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    return build()


def find(objects, kind: str, name: str | None = None) -> list[dict] | dict:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    if name is None:
        return found
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def container(workload: dict) -> dict:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def mebibytes(quantity: str) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)(Mi|Gi)", quantity).groups()
    return float(number) * (1024 if unit == "Gi" else 1)


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def compose_default(value: str) -> str:
    """`${VAR:-default}` (or `${VAR-default}`) as compose resolves it with VAR unset."""
    return re.sub(r"\$\{[A-Z_]+:?-([^}]*)\}", r"\1", str(value))


# -- the build ----------------------------------------------------------------------------------

def test_the_kustomization_lists_every_manifest_and_keeps_the_secret_out_of_git():
    k = kustomization()
    manifests = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(k["resources"]) == manifests, "a manifest in deploy/k8s that kubectl apply -k would skip"
    assert (ROOT / ".gitignore").read_text().count("/deploy/k8s/secrets.env\n") == 1
    example = (K8S / "secrets.env.example").read_text()
    keys = dict(line.split("=", 1) for line in example.splitlines() if line and not line.startswith("#"))
    assert set(keys) == {"redis-password", "admin-token"}
    assert keys["redis-password"].startswith("REPLACE"), "the example holds a placeholder, never a password"


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_core_object_is_valid_in_strict_mode(objects, version):
    validated, skipped = [], set()
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in CUSTOM_KINDS:
            skipped.add((obj["apiVersion"], obj["kind"]))   # KEDA's: test_the_scaled_object_* below
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message} at {list(exc.path)}")
        validated.append(obj["kind"])
    assert skipped == CUSTOM_KINDS
    assert sorted(set(validated)) == ["ConfigMap", "Deployment", "Ingress", "Namespace", "PersistentVolumeClaim",
                                      "PodDisruptionBudget", "Secret", "Service", "StatefulSet"]


def test_selectors_pick_the_pods_they_mean(objects):
    workloads = {o["metadata"]["name"]: o for o in objects if o["kind"] in ("Deployment", "StatefulSet")}
    pod_labels = {}
    for name, workload in workloads.items():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
        pod_labels[name] = labels

    def selected(selector: dict) -> set[str]:
        return {name for name, labels in pod_labels.items() if selector.items() <= labels.items()}

    for service in find(objects, "Service"):
        name = service["metadata"]["name"]
        assert len(selected(service["spec"]["selector"])) == 1, f"Service/{name}"
        ports = {port["name"] for port in container(workloads[selected(service["spec"]["selector"]).pop()])["ports"]}
        assert {port["targetPort"] for port in service["spec"]["ports"]} <= ports, f"Service/{name}"
    for pdb in find(objects, "PodDisruptionBudget"):
        assert selected(pdb["spec"]["selector"]["matchLabels"]) == {pdb["metadata"]["name"]}
    redis_set = find(objects, "StatefulSet", "redis")
    assert find(objects, "Service", redis_set["spec"]["serviceName"])["spec"]["clusterIP"] == "None"


# -- what compose runs ------------------------------------------------------------------------

def app_env(objects, workload: dict) -> dict[str, str | None]:
    """Every variable a container gets: its ConfigMaps' keys, then its own env (None: from a Secret)."""
    c = container(workload)
    env = {}
    for source in c.get("envFrom", []):
        env.update(find(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    for var in c.get("env", []):
        env[var["name"]] = var.get("value")
    return env


def test_deployments_run_the_compose_image_command_and_volumes(objects):
    services = compose()["services"]
    claims = {o["metadata"]["name"] for o in find(objects, "PersistentVolumeClaim")}
    for name in APP_SERVICES:
        service, deployment = services[name], find(objects, "Deployment", name)
        c = container(deployment)
        assert c["image"] == compose_default(services[name]["image"]), name
        assert "command" not in c, f"{name}: keep the image's entrypoint (python -m swagdigits)"
        assert c["args"] == service["command"], name
        # the same named volumes at the same paths
        volumes = {v["name"]: v["persistentVolumeClaim"]["claimName"]
                   for v in deployment["spec"]["template"]["spec"]["volumes"]}
        # ...read-only where compose's are (`:ro`)
        mounts = {(volumes[m["name"]], m["mountPath"], m.get("readOnly", False)) for m in c["volumeMounts"]}
        assert mounts == {(*v.split(":")[:2], v.split(":")[2:] == ["ro"]) for v in service["volumes"]}, name
        assert set(volumes.values()) <= claims
        # every variable both set has the value compose gives it (REDIS_URL: each takes the
        # password from its own source, the Secret here, compose's SWAGDIGITS_REDIS_PASSWORD there)
        env = app_env(objects, deployment)
        for var, value in service["environment"].items():
            if var == "REDIS_URL":
                assert env[var].replace("$(REDIS_PASSWORD)", "PASSWORD") == \
                    re.sub(r"\$\{SWAGDIGITS_REDIS_PASSWORD:\?[^}]*\}", "PASSWORD", value), name
            elif var in env and env[var] is not None:
                assert env[var] == compose_default(value), f"{name}: {var}"
        # ...and nothing compose sets is forgotten (the operator token matters to the web tier only)
        expected = set(service["environment"]) - (set() if name == "web" else {"SWAGDIGITS_ADMIN_TOKEN"})
        assert expected <= env.keys(), f"{name}: {expected - env.keys()}"


def test_redis_runs_compose_settings_with_a_password_and_a_volume_of_its_own(objects):
    statefulset = find(objects, "StatefulSet", "redis")
    c = container(statefulset)
    command = compose()["services"]["redis"]["command"]
    # the same flags, the password from the Secret here and from SWAGDIGITS_REDIS_PASSWORD there
    assert c["args"][:-1] == command[:-1] and c["args"][-2] == "--requirepass"
    assert c["args"][-1] == "$(REDIS_PASSWORD)" and command[-1].startswith("${SWAGDIGITS_REDIS_PASSWORD:?")
    # both health checks' redis-cli authenticate through REDISCLI_AUTH
    assert "REDISCLI_AUTH" in {v["name"] for v in c["env"]} & set(compose()["services"]["redis"]["environment"])
    assert c["args"][c["args"].index("--maxmemory") + 1] == Config.from_env({}).redis_maxmemory
    image, tag = c["image"].split(":")
    assert image == "redis" and int(tag.split(".")[0]) >= 7, "KEDA's lagCount needs Redis 7+"
    password = next(v for v in c["env"] if v["name"] == "REDIS_PASSWORD")
    assert password["valueFrom"]["secretKeyRef"] == {"name": "swagdigits-secrets", "key": "redis-password"}
    assert [t["metadata"]["name"] for t in statefulset["spec"]["volumeClaimTemplates"]] == \
        [m["name"] for m in c["volumeMounts"]]
    assert c["volumeMounts"][0]["mountPath"] == "/data" and statefulset["spec"]["replicas"] == 1


def test_every_variable_the_pods_get_is_a_setting_the_service_reads(objects):
    settings = {s.env for s in SETTINGS.values()}
    for name in APP_SERVICES:
        deployment = find(objects, "Deployment", name)
        env = app_env(objects, deployment)
        c = container(deployment)
        defined = {key for source in c.get("envFrom", [])
                   for key in find(objects, "ConfigMap", source["configMapRef"]["name"])["data"]}
        for var in c.get("env", []):
            # $(VAR) expands only from variables defined before it (otherwise it stays literal)
            for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", var.get("value", "")):
                assert ref in defined, f"{name}: {var['name']} uses $({ref}) before it is defined"
            defined.add(var["name"])
        values = " ".join(v or "" for v in env.values())
        for var in env:
            # a variable no setting reads is only there to be expanded into another one
            assert var in settings or f"$({var})" in values, f"{name}: {var} is read by nothing (typo?)"
        # and the values are ones the service accepts (secrets stand in as dummies)
        environ = {k: re.sub(r"\$\([A-Z_]+\)", "secret", v or "secret") for k, v in env.items()}
        Config.from_env(environ)


def test_web_is_two_probed_pods_behind_a_sticky_ingress(objects):
    web = find(objects, "Deployment", "web")
    c = container(web)
    assert web["spec"]["replicas"] == 2
    env = app_env(objects, web)
    assert env["SWAGDIGITS_PROXY_HOPS"] == "1" and env["SWAGDIGITS_HOST"] == "0.0.0.0"
    http = next(port for port in c["ports"] if port["name"] == "http")
    assert str(http["containerPort"]) == env["SWAGDIGITS_PORT"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    ingress = find(objects, "Ingress", "web")
    notes = ingress["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    assert notes["nginx.ingress.kubernetes.io/affinity-mode"] == "persistent"
    assert notes["nginx.ingress.kubernetes.io/session-cookie-name"]
    assert int(notes["nginx.ingress.kubernetes.io/proxy-read-timeout"]) > 25   # Socket.IO's ping interval
    [path] = [path for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]
    assert path["backend"]["service"] == {"name": "web", "port": {"name": "http"}}
    assert find(objects, "Service", "web")["spec"]["ports"][0]["name"] == "http"
    assert find(objects, "PodDisruptionBudget", "web")["spec"]["minAvailable"] == 1


def test_workers_are_alive_while_metrics_answer_and_predict_workers_ready_once_serving(objects):
    from prometheus_client import start_http_server

    from shared import metrics

    for name in ("predict-worker", "retrain-worker"):
        c = container(find(objects, "Deployment", name))
        assert c["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}, name
        assert {"name": "metrics", "containerPort": int(app_env(objects, find(objects, "Deployment", name))[
            "SWAGDIGITS_METRICS_PORT"])} in c["ports"], name
    # the readiness command itself, against a worker's metrics on loopback: before and after
    # the worker has a model to serve
    ready = container(find(objects, "Deployment", "predict-worker"))["readinessProbe"]["exec"]["command"]
    assert ready[:2] == ["python", "-c"]
    registry = metrics.CollectorRegistry()
    worker_metrics = metrics.PredictMetrics.build(registry)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)   # as a worker does
    try:
        env = {**os.environ, "SWAGDIGITS_METRICS_PORT": str(server.server_port)}

        def probe() -> int:
            return subprocess.run([sys.executable, "-c", ready[2]], env=env, timeout=30).returncode

        assert probe() == 1, "ready before a model is served"
        worker_metrics.serving("v1", swapped=False)
        assert probe() == 0, "not ready while serving a model"
    finally:
        server.shutdown()
        thread.join(timeout=5)


def test_only_the_retrain_worker_reads_a_volume_it_cannot_write(objects):
    readonly = {}
    for name in APP_SERVICES:
        for mount in container(find(objects, "Deployment", name))["volumeMounts"]:
            readonly[name, mount["mountPath"]] = mount.get("readOnly", False)
    # web writes both; predict workers train the first model when there is none; the retrain
    # worker publishes models but only reads help images; the server secret is made by whichever
    # of web and the retrain worker needs it first
    assert readonly == {("web", "/data/models"): False, ("web", "/data/help_data"): False,
                        ("web", "/data/secrets"): False,
                        ("predict-worker", "/data/models"): False,
                        ("retrain-worker", "/data/models"): False, ("retrain-worker", "/data/help_data"): True,
                        ("retrain-worker", "/data/secrets"): False}
    for claim in find(objects, "PersistentVolumeClaim"):
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"], claim["metadata"]["name"]
    retrain = find(objects, "Deployment", "retrain-worker")
    assert retrain["spec"]["replicas"] == 1 and retrain["spec"]["strategy"] == {"type": "Recreate"}


def test_every_container_has_requests_and_a_memory_limit_and_app_pods_are_scraped(objects):
    for workload in find(objects, "Deployment") + find(objects, "StatefulSet"):
        name = workload["metadata"]["name"]
        c = container(workload)
        resources = c["resources"]
        assert {"cpu", "memory"} <= resources["requests"].keys(), name
        assert mebibytes(resources["limits"]["memory"]) >= mebibytes(resources["requests"]["memory"]), name
        pod = workload["spec"]["template"]
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True, name
        if name in APP_SERVICES:
            notes = pod["metadata"]["annotations"]
            assert notes["prometheus.io/scrape"] == "true", name
            env = app_env(objects, workload)
            port = env.get("SWAGDIGITS_METRICS_PORT") or env["SWAGDIGITS_PORT"]
            assert notes["prometheus.io/port"] == port, name
            assert int(port) in {declared["containerPort"] for declared in c["ports"]}, name
    metrics_service = find(objects, "Service", "predict-worker")
    assert metrics_service["spec"]["clusterIP"] == "None"
    assert metrics_service["spec"]["ports"][0]["port"] == int(
        app_env(objects, find(objects, "Deployment", "predict-worker"))["SWAGDIGITS_METRICS_PORT"])


# -- KEDA ---------------------------------------------------------------------------------------

def test_the_scaled_object_watches_the_real_streams_with_kedas_names(objects):
    [scaled] = find(objects, "ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert set(spec) <= KEDA_SCALEDOBJECT_SPEC, set(spec) - KEDA_SCALEDOBJECT_SPEC
    target = spec["scaleTargetRef"]
    assert target.get("kind", "Deployment") == "Deployment"
    deployment = find(objects, "Deployment", target["name"])
    assert container(deployment)["args"] == ["worker", "predict"]
    assert "replicas" not in deployment["spec"], "KEDA owns the count; a value here resets it on every apply"
    assert isinstance(spec["pollingInterval"], int) and isinstance(spec["cooldownPeriod"], int)
    # never 0: web pods are ready only while a predict worker lives (web/health.py)
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    pdb = find(objects, "PodDisruptionBudget", "predict-worker")
    assert pdb["spec"]["maxUnavailable"] < spec["minReplicaCount"], "a drain must leave a worker serving"

    streams = {}
    redis_service = find(objects, "Service", "redis")
    namespace = kustomization()["namespace"]
    for trigger in spec["triggers"]:
        assert set(trigger) <= KEDA_TRIGGER_FIELDS, set(trigger) - KEDA_TRIGGER_FIELDS
        assert trigger["type"] == "redis-streams"
        meta = trigger["metadata"]
        assert set(meta) <= KEDA_REDIS_STREAMS_METADATA, set(meta) - KEDA_REDIS_STREAMS_METADATA
        assert all(isinstance(value, str) for value in meta.values()), "trigger metadata values are strings"
        assert meta["consumerGroup"] == p.PREDICT_GROUP
        # KEDA 2.16.0 refuses an activationLagCount of 0 as missing (kedacore/keda#6478)
        assert int(meta["lagCount"]) > 0 and int(meta["activationLagCount"]) >= 1
        # with lagCount these would be ignored: one measure per trigger
        assert not {"pendingEntriesCount", "streamLength"} & set(meta)
        # KEDA's operator connects from its own namespace: the Service's name in ours, its port
        host, port = meta["address"].rsplit(":", 1)
        assert host in (f"redis.{namespace}.svc", f"redis.{namespace}.svc.cluster.local")
        assert redis_service["metadata"]["name"] == "redis"
        assert int(port) == redis_service["spec"]["ports"][0]["port"]
        streams[meta["stream"]] = trigger
    assert set(streams) == {p.PREDICT_STREAM, p.BATCH_STREAM}

    # the password comes through a TriggerAuthentication from the Secret Redis itself uses
    for trigger in streams.values():
        auth = find(objects, "TriggerAuthentication", trigger["authenticationRef"]["name"])
        assert set(auth["spec"]) == {"secretTargetRef"}
        for ref in auth["spec"]["secretTargetRef"]:
            assert ref["parameter"] in KEDA_REDIS_AUTH_PARAMETERS
            assert ref["key"] in find(objects, "Secret", ref["name"])["data"]
        assert {ref["parameter"] for ref in auth["spec"]["secretTargetRef"]} == {"password"}


def test_the_lag_keda_reads_counts_the_entries_no_worker_has_taken(clean_redis, redis_conn):
    """XINFO GROUPS' lag under the project's own queue code: it counts entries not yet handed to
    a worker, and stays computable after workers acknowledge and delete what they finish."""
    from shared.messaging.batch_queue import BatchQueue
    from shared.messaging.predict_queue import PredictQueue

    if int(redis_conn.info("server")["redis_version"].split(".")[0]) < 7:
        pytest.skip("XINFO GROUPS reports lag from Redis 7 on")

    def lag(stream: str) -> int:
        [group] = [g for g in redis_conn.xinfo_groups(stream) if g["name"].decode() == p.PREDICT_GROUP]
        return group["lag"]

    queue = PredictQueue(redis_conn)
    queue.group.ensure()
    assert lag(p.PREDICT_STREAM) == 0
    for _ in range(5):
        queue.submit(b"drawing", limit=100)
    assert lag(p.PREDICT_STREAM) == 5
    jobs = queue.claim("worker-1", 3, block_ms=None)
    assert lag(p.PREDICT_STREAM) == 2            # taken: pending, no longer lag
    queue.complete([(job, p.PredictionError(job.job_id, "test")) for job in jobs])
    assert lag(p.PREDICT_STREAM) == 2
    jobs = queue.claim("worker-1", 10, block_ms=None)
    queue.complete([(job, p.PredictionError(job.job_id, "test")) for job in jobs])
    assert lag(p.PREDICT_STREAM) == 0            # the last taken entry deleted: still a number

    batches = BatchQueue(redis_conn, chunk_size=2)
    batches.group.ensure()
    batches.submit([b"image"] * 7)               # 4 chunks
    assert lag(p.BATCH_STREAM) == 4
    chunk = batches.claim("worker-1")
    batches.record(chunk, [{"digit": 1}] * len(chunk.indexes))
    assert lag(p.BATCH_STREAM) == 3


def test_the_in_cluster_scrape_config_names_jobs_as_the_alerts_do(objects):
    """deploy/k8s/extras/prometheus-scrape.yml keeps annotated pods and names the job after the
    pod's component label: those must be the job names prometheus/alerts.yml uses."""
    config = yaml.safe_load((K8S / "extras/prometheus-scrape.yml").read_text())
    assert (K8S / "extras" / config["rule_files"][0]).resolve() == ROOT / "prometheus/alerts.yml"
    [job] = config["scrape_configs"]
    relabel = job["relabel_configs"]
    assert {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"], "regex": "true",
            "action": "keep"} in relabel
    assert {"source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"],
            "target_label": "job"} in relabel
    assert job["kubernetes_sd_configs"][0]["namespaces"]["names"] == [kustomization()["namespace"]]
    scraped = {w["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
               for w in find(objects, "Deployment")
               if w["spec"]["template"]["metadata"].get("annotations", {}).get("prometheus.io/scrape") == "true"}
    alerts = set(re.findall(r'job="([a-z-]+)"', (ROOT / "prometheus/alerts.yml").read_text()))
    assert scraped == alerts == set(APP_SERVICES)


def test_the_readme_states_the_numbers_the_manifests_use(objects):
    readme = (ROOT / "README.md").read_text()
    section = " ".join(readme.split("### Past one machine (Kubernetes)")[1].split("\n### ")[0].split())
    spec = find(objects, "ScaledObject", "predict-worker")["spec"]
    lags = {t["metadata"]["stream"]: t["metadata"]["lagCount"] for t in spec["triggers"]}
    assert f"`lagCount` {lags[p.PREDICT_STREAM]} and {lags[p.BATCH_STREAM]}" in section
    assert f"{spec['minReplicaCount']} to {spec['maxReplicaCount']} pods" in section
    for name, figure in (("web", "web requests {requests}"), ("predict-worker", "workers request {requests}"),
                         ("retrain-worker", "worker requests {requests}")):
        resources = container(find(objects, "Deployment", name))["resources"]
        assert figure.format(requests=resources["requests"]["memory"]) in section, name
        assert f"limit {resources['limits']['memory']}" in section, name
    redis_resources = container(find(objects, "StatefulSet", "redis"))["resources"]
    assert f"Redis requests {redis_resources['requests']['memory']}" in section
    assert f"limit {redis_resources['limits']['memory']}" in section


def test_the_service_talks_to_a_redis_that_requires_a_password(tmp_path):
    """deploy/k8s and docker-compose.yaml give Redis a password and every app container a REDIS_URL
    carrying it: the clients the service opens from that URL (its own, RQ's, Socket.IO's) must all
    use it (tests/deploy/test_compose.py checks compose's URLs; test_compose_stack.py runs them)."""
    import socket
    import subprocess
    import time

    from shared.messaging import retrain_trigger
    from shared.messaging.connection import connect
    from shared.messaging.predict_queue import PredictQueue
    from shared.messaging.push import Pusher
    from tests.deploy.conftest import tool

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([tool("redis-server"), "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                               "--appendonly", "no", "--dir", str(tmp_path), "--requirepass", "s3cret-hex"],
                              stdout=subprocess.DEVNULL)
    try:
        url = f"redis://:s3cret-hex@127.0.0.1:{port}/0"
        conn = connect(url)
        for _ in range(100):
            try:
                conn.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).ping()          # without it: refused
        listener = redis.Redis.from_url(url).pubsub(ignore_subscribe_messages=True)
        listener.subscribe(p.SOCKETIO_CHANNEL)
        listener.get_message(timeout=1)

        queue = PredictQueue(conn)
        queue.group.ensure()
        queue.submit(b"drawing", limit=10)
        assert [job.image for job in queue.claim("worker-1", 10, block_ms=None)] == [b"drawing"]
        retrain_trigger.retrain_queue(conn).enqueue(p.RETRAIN_JOB_FUNC)
        assert retrain_trigger.retrain_queue(conn).count == 1
        Pusher(url).emit(p.EVENT_MODEL_CHANGED, {"model_version": "v"})
        message = listener.get_message(timeout=5)
        assert message and b"model_changed" in message["data"]
    finally:
        server.terminate()
        server.wait(timeout=10)
