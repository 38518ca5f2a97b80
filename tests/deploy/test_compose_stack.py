"""docker-compose.yaml for real: the stack on a real Docker engine, 3 predict workers, 2 web replicas.

Runs `docker-compose -f docker-compose.yaml -f deploy/offline.yaml` (stand-in images from
Debian packages, built by deploy/offline-images.sh: no image registry is reachable here)
under a project name of its own, and checks what README promises of it, in order: ready
through the proxy's published port, which listens on 127.0.0.1 only; predictions answered;
Redis refuses a client without the password (SWAGDIGITS_REDIS_PASSWORD, which every app
container has in its REDIS_URL) and the retrain worker cannot write the help data; Prometheus finds the 3 predict workers through Docker's DNS; a worker killed under steady
load loses no prediction; a Redis killed and started again keeps the help counts and a
queued retraining (append-only file); that retraining promotes a model all 3 workers then
serve; Socket.IO clients, long-polling ones too, spread by the proxy over both web replicas
each get their own answers and nobody else's; `down -v` leaves no container, volume or
network behind.

The tests share one stack and run in file order. Containers live only on the network
compose creates for the project, every published port is bound to 127.0.0.1 (Docker picks
the port), nothing is sent anywhere but 127.0.0.1, every wait is bounded, and the stack is
taken down (volumes too) whatever happens. Models are trained as the `linear` family
(SWAGDIGITS_MODEL_FAMILY): the SVC's fit takes minutes on this shared 2-core machine, twice
(first model, then the retraining), and the deployment does not depend on the family.
"""
from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import threading
import time

import pytest
import requests
import socketio

from shared.messaging import protocol as p
from testkit.drawings import digit_png
from tests.deploy.conftest import ROOT, tool

pytestmark = pytest.mark.integration

WORKERS = 3
WEBS = 2
TOKEN = secrets.token_hex(16)
FILES = ["-f", "docker-compose.yaml", "-f", "deploy/offline.yaml"]
ARTIFACTS = ROOT / "test-artifacts"
IMAGES_TIMEOUT_S = 1500    # debootstrap + stand-ins on a cold, shared machine
BUILD_TIMEOUT_S = 900
READY_TIMEOUT_S = 420      # a fresh store: a worker trains the first model
RETRAIN_TIMEOUT_S = 600


class Compose:
    """docker-compose for one project of our own, and docker for its containers."""

    def __init__(self, project: str, env: dict[str, str], timings: dict[str, float]):
        self.project = project
        self.env = env
        self.timings = timings
        self.web_url = ""
        self.prometheus_url = ""

    def __call__(self, *args: str, timeout: float = 180, check: bool = True) -> subprocess.CompletedProcess:
        res = subprocess.run([tool("docker-compose"), *FILES, "-p", self.project, *args], cwd=ROOT,
                             env=self.env, capture_output=True, text=True, timeout=timeout)
        if check:
            assert res.returncode == 0, f"docker-compose {' '.join(args)}: {res.stdout[-2000:]}{res.stderr[-3000:]}"
        return res

    def containers(self, service: str | None = None, running_only: bool = True) -> list[str]:
        filters = ["--filter", f"label=com.docker.compose.project={self.project}"]
        if service:
            filters += ["--filter", f"label=com.docker.compose.service={service}"]
        out = docker("ps", "-q", *([] if running_only else ["-a"]), *filters)
        return sorted(out.split())

    def published(self, service: str, port: int) -> str:
        return self("port", service, str(port)).stdout.strip()

    def python_in_web(self, code: str):
        """Run Python in the web container (it has redis-py and REDIS_URL): Redis is not published."""
        web = self.containers("web")[0]
        prelude = "import json, os, redis; r = redis.Redis.from_url(os.environ['REDIS_URL']); "
        return json.loads(docker("exec", web, "python", "-c", prelude + code))

    def save_logs(self) -> None:
        """The last lines of every container's output, in test-artifacts/ (kept after `down`)."""
        if self.containers(running_only=False):
            ARTIFACTS.mkdir(exist_ok=True)
            logs = self("logs", "--no-color", "--tail", "120", check=False, timeout=60).stdout
            (ARTIFACTS / f"compose-{self.project}.log").write_text(logs)


def docker(*args: str, timeout: float = 60) -> str:
    res = subprocess.run([tool("docker"), *args], capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"docker {' '.join(args)}: {res.stderr}"
    return res.stdout


def wait_for(what: str, check, timeout: float, every: float = 1.0):
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` s with the last value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (requests.RequestException, AssertionError, ValueError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})")


def report(request, line: str) -> None:
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"[compose] {line}")


def engine_available() -> bool:
    try:
        return subprocess.run([tool("docker"), "info"], capture_output=True, timeout=30).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@pytest.fixture(scope="module")
def stack(request):
    tool("docker-compose")
    tool("debootstrap")
    if not engine_available():
        pytest.skip("no Docker engine answers (.ci/run installs docker.io and starts dockerd)")
    project = f"swagtest{os.getpid()}{secrets.token_hex(3)}"
    env = {**os.environ,
           "SWAGDIGITS_BIND_ADDR": "127.0.0.1",
           # empty: Docker picks a free port on 127.0.0.1
           "SWAGDIGITS_WEB_PORT": "", "PROMETHEUS_PORT": "", "GRAFANA_PORT": "",
           "SWAGDIGITS_ADMIN_TOKEN": TOKEN,
           "SWAGDIGITS_REDIS_PASSWORD": secrets.token_hex(16),
           "SWAGDIGITS_MODEL_FAMILY": "linear",
           # the load test alone sends more than the 600 a minute one address may
           "SWAGDIGITS_RATE_LIMIT_PREDICT": "0"}
    timings: dict[str, float] = {}
    compose = Compose(project, env, timings)

    start = time.monotonic()
    images = subprocess.run([str(ROOT / "deploy/offline-images.sh")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=IMAGES_TIMEOUT_S)
    assert images.returncode == 0, images.stderr[-3000:]
    timings["stand-in images"] = time.monotonic() - start
    start = time.monotonic()
    compose("build", "web", timeout=BUILD_TIMEOUT_S)
    timings["app image build"] = time.monotonic() - start
    try:
        start = time.monotonic()
        compose("up", "-d", "--no-build", "--scale", f"predict-worker={WORKERS}", "--scale", f"web={WEBS}",
                timeout=300)
        timings["up -d"] = time.monotonic() - start
        timings["started at"] = time.monotonic()
        compose.web_url = "http://" + compose.published("proxy", 8080)
        compose.prometheus_url = "http://" + compose.published("prometheus", 9090)
        yield compose
    finally:
        compose.save_logs()
        compose("down", "-v", "--remove-orphans", "--timeout", "10", timeout=300, check=False)
        report(request, ", ".join(f"{k} {v:.0f} s" for k, v in timings.items() if k != "started at"))


def predict(url: str, digit: int, timeout: float = 15) -> requests.Response:
    return requests.post(url + "/api/predict", json={"image": base64.b64encode(digit_png(digit)).decode()},
                         timeout=timeout)


def ready(compose: Compose) -> dict:
    res = requests.get(compose.web_url + "/readyz", timeout=5)
    body = res.json()
    return body if res.status_code == 200 and body["predict_workers"] == WORKERS else {}


def models(compose: Compose) -> dict:
    return requests.get(compose.web_url + "/api/models", timeout=5).json()


def wait_until_ready(compose: Compose, timeout: float = READY_TIMEOUT_S) -> dict:
    return wait_for(f"/readyz 200 with {WORKERS} live predict workers", lambda: ready(compose), timeout, every=2)


def test_ready_through_the_published_port_which_listens_on_loopback_only(stack, request):
    for url in (stack.web_url, stack.prometheus_url):
        assert url.startswith("http://127.0.0.1:"), url
    bound = {}
    for container in stack.containers():
        ports = json.loads(docker("inspect", "-f", "{{json .NetworkSettings.Ports}}", container))
        bound |= {f"{container[:12]} {port}": b["HostIp"] for port, binds in ports.items() for b in binds or []}
    assert bound and set(bound.values()) == {"127.0.0.1"}, bound
    body = wait_until_ready(stack)
    stack.timings["up to ready"] = time.monotonic() - stack.timings["started at"]
    report(request, f"ready {stack.timings['up to ready']:.0f} s after up: {body}")
    assert requests.get(stack.web_url + "/healthz", timeout=5).status_code == 200


def test_predictions_are_answered(stack):
    wait_until_ready(stack)
    production = models(stack)["production"]
    answers = [predict(stack.web_url, digit) for digit in range(10)]
    assert [a.status_code for a in answers] == [200] * 10, [a.text for a in answers]
    bodies = [a.json() for a in answers]
    assert {b["model_version"] for b in bodies} == {production}
    assert all(abs(sum(b["probabilities"]) - 1) < 1e-3 for b in bodies)
    right = sum(b["digit"] == digit for digit, b in enumerate(bodies))
    assert right >= 7, [b["digit"] for b in bodies]


def test_redis_refuses_clients_without_the_password_and_the_retrain_worker_cannot_write_help_data(stack):
    """The app got this far through REDIS_URL's password; without it, Redis answers NOAUTH."""
    wait_until_ready(stack)
    [redis_container] = stack.containers("redis")
    # redis-cli beside the server, its REDISCLI_AUTH (the health check's) taken away
    assert "NOAUTH" in docker("exec", redis_container, "env", "-u", "REDISCLI_AUTH", "redis-cli", "ping")
    # any other container of the project: here the web's redis-py, with no password
    web = stack.containers("web")[0]
    code = ("import redis\ntry:\n    redis.Redis(host='redis', socket_timeout=5).ping()\n"
            "except redis.AuthenticationError as exc:\n    print('refused:', exc)\nelse:\n    print('answered')")
    assert docker("exec", web, "python", "-c", code).startswith("refused:")
    [retrain_worker] = stack.containers("retrain-worker")
    code = ("import errno\ntry:\n    open('/data/help_data/probe', 'w')\n"
            "except OSError as exc:\n    print(errno.errorcode[exc.errno])\nelse:\n    print('written')")
    assert docker("exec", retrain_worker, "python", "-c", code).strip() == "EROFS"


def test_prometheus_finds_every_predict_worker_through_dns(stack):
    wait_until_ready(stack)
    addresses = set()
    for container in stack.containers("predict-worker"):
        addresses.add(docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                             container).strip() + ":9100")
    assert len(addresses) == WORKERS, addresses

    def targets_up():
        res = requests.get(stack.prometheus_url + "/api/v1/targets", timeout=5).json()
        active = res["data"]["activeTargets"]
        workers = {t["labels"]["instance"]: t["health"] for t in active if t["labels"]["job"] == "predict-worker"}
        others = {t["labels"]["job"]: t["health"] for t in active if t["labels"]["job"] != "predict-worker"}
        assert set(workers) == addresses and set(workers.values()) == {"up"}, workers
        # each target's first scrape comes at its own offset within the 15 s interval ("unknown" until then)
        assert others.get("web") == "up" and others.get("retrain-worker") == "up", others
        return True

    # DNS is re-read and targets scraped every 15 s (prometheus.yml); wait_for fails with the last state
    wait_for("3 predict-worker targets, web and retrain-worker up", targets_up, 120, every=3)


def consumers_pending(stack: Compose) -> dict[str, int]:
    """Drawings and batch chunks each consumer of the group has claimed and not finished."""
    code = (f"out = {{}}\n"
            f"for stream in ({p.PREDICT_STREAM!r}, {p.BATCH_STREAM!r}):\n"
            f"    for c in r.xinfo_consumers(stream, {p.PREDICT_GROUP!r}):\n"
            f"        out[c['name'].decode()] = out.get(c['name'].decode(), 0) + c['pending']\n"
            f"print(json.dumps(out))")
    return stack.python_in_web(code)


def kill_one_holding_work(stack: Compose, tries: int = 30) -> tuple[str | None, int, int]:
    """SIGKILL a predict worker while it holds work it has not finished: (container, work held, looks).

    Why pause first: a drawing is in a worker's hands for about a millisecond, so a kill
    at a random moment often finds it idle (CI once saw three kills in a row catch
    nothing). A paused (frozen) worker cannot finish or acknowledge anything, so what
    the group's pending list shows for it is what the kill takes away; a worker found
    holding nothing is unpaused unharmed and the next one is looked at. The kill is sent
    while it is frozen, so it dies as it thaws, before running another instruction.
    """
    workers = stack.containers("predict-worker")[:WORKERS]
    for look in range(1, tries + 1):
        container = workers[look % len(workers)]
        docker("pause", container)
        try:
            held = sum(n for name, n in consumers_pending(stack).items() if container[:12] in name)
            if held:
                docker("kill", container)
                return container, held, look
        finally:
            subprocess.run([tool("docker"), "unpause", container], capture_output=True, timeout=60)
        time.sleep(0.3)
    return None, 0, tries


def test_a_worker_killed_under_steady_load_loses_no_prediction(stack, request):
    """8 clients predict without pause and one sends a 320-image batch a second, so every worker
    holds work when one is killed; every drawing is answered and every batch image predicted."""
    wait_until_ready(stack)
    results: list[tuple[int, float, str]] = []
    batches: list[tuple[int, str]] = []
    stop = threading.Event()
    batch = {"images": [base64.b64encode(digit_png(n % 10)).decode() for n in range(320)]}

    def client(n: int):
        while not stop.is_set():
            started = time.monotonic()
            try:
                res = predict(stack.web_url, n % 10)
                results.append((res.status_code, time.monotonic() - started, res.text[:200]))
            except requests.RequestException as exc:
                results.append((0, time.monotonic() - started, repr(exc)))

    def batcher():
        while not stop.is_set():
            try:
                res = requests.post(stack.web_url + "/api/batches", json=batch, timeout=30)
                batches.append((res.status_code, res.json().get("batch_id") or res.text[:200]))
            except requests.RequestException as exc:
                batches.append((0, repr(exc)))
            stop.wait(1.0)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(8)]
    threads.append(threading.Thread(target=batcher, daemon=True))
    for t in threads:
        t.start()
    killed = None
    in_flight = 0
    tries = 0
    try:
        time.sleep(3)
        killed, in_flight, tries = kill_one_holding_work(stack)
        time.sleep(8)   # > the 2.5 s after which a dead worker's drawings are taken over, plus the client's wait
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        if killed:      # back for the tests after this one, even when this one fails
            docker("start", killed)
    report(request, f"{len(results)} predictions and {len(batches)} batches of 320 under load; a worker "
                    f"caught holding {in_flight} drawing(s) or chunk(s) after {tries} look(s), then killed")
    assert in_flight, "no kill caught a worker holding work: the test proved nothing"
    failures = [r for r in results if r[0] != 200]
    assert not failures, failures[:5]
    assert len(results) > 100
    assert batches and all(code == 202 for code, _ in batches), batches[:5]

    def finished(batch_id: str):
        body = requests.get(f"{stack.web_url}/api/batches/{batch_id}", timeout=10).json()
        return body if body["state"] == "finished" else None

    for _, batch_id in batches:   # a chunk the killed worker held is retried after 5 s
        body = wait_for(f"batch {batch_id} finished", lambda: finished(batch_id), 120)
        assert len(body["results"]) == 320 and all("digit" in r for r in body["results"]), body["results"][:3]
    # the killed one is back (a killed container is not restarted by its policy: started above)
    wait_until_ready(stack, 180)


def test_a_redis_killed_and_started_keeps_help_counts_and_a_queued_retraining(stack):
    wait_until_ready(stack)
    # The retrain worker is stopped so the retraining stays queued.
    [retrain_worker] = stack.containers("retrain-worker")
    docker("stop", retrain_worker, timeout=90)
    pending_before = requests.get(stack.web_url + "/helpdata", timeout=5).json()["pending"]
    for digit in (1, 4, 7):
        res = requests.post(stack.web_url + "/helpdata", timeout=10,
                            json={"image": base64.b64encode(digit_png(digit, brush=20)).decode(), "label": digit})
        assert res.status_code == 201, res.text
    res = requests.post(stack.web_url + "/api/retrain", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert res.status_code == 202, res.text
    job_id = res.json()["job_id"]
    queued = stack.python_in_web(f"print(json.dumps([j.decode() for j in r.lrange('rq:queue:{p.RETRAIN_QUEUE}', 0, -1)]))")
    assert job_id in queued
    total_before = stack.python_in_web(f"print(json.dumps(int(r.get({p.HELP_TOTAL_KEY!r}))))")

    time.sleep(2)   # appendfsync everysec: what is a second old is on disk
    [redis_container] = stack.containers("redis")
    docker("kill", redis_container)
    docker("start", redis_container)
    wait_for("Redis healthy again", lambda: "healthy" in docker(
        "inspect", "-f", "{{.State.Health.Status}}", redis_container), 60)

    # Read the raw keys before anything could rebuild them from the help files.
    after = stack.python_in_web(
        f"print(json.dumps({{'total': int(r.get({p.HELP_TOTAL_KEY!r}) or -1), "
        f"'queue': [j.decode() for j in r.lrange('rq:queue:{p.RETRAIN_QUEUE}', 0, -1)], "
        f"'job': r.exists('rq:job:{job_id}')}}))")
    assert after == {"total": total_before, "queue": [job_id], "job": 1}, after
    helpdata = wait_for("GET /helpdata after the restart", lambda: requests.get(
        stack.web_url + "/helpdata", timeout=5).json(), 30)
    assert helpdata["pending"] == pending_before + 3
    assert models(stack)["retrain"]["waiting"] == job_id


def test_the_queued_retraining_promotes_a_model_every_worker_serves(stack, request):
    before = models(stack)["production"]
    [retrain_worker] = stack.containers("retrain-worker", running_only=False)
    started = time.monotonic()
    docker("start", retrain_worker)

    def promoted():
        state = models(stack)
        new = state["production"]
        return state if new != before and state["serving"] == {new: WORKERS} else None

    state = wait_for("a promoted model served by every worker", promoted, RETRAIN_TIMEOUT_S, every=3)
    stack.timings["retrain to served"] = time.monotonic() - started
    new = state["production"]
    entry = next(m for m in state["models"] if m["model_id"] == new)
    # the 3 help images reached the retraining: trained on, or held back for its evaluation (the
    # split is keyed by the deployment's random server secret, so which is not known in advance)
    meta = entry["metadata"]
    assert meta["n_help_images"] + meta["n_help_holdout"] >= 3, meta
    # each worker's own /metrics says it serves the new version
    for container in stack.containers("predict-worker"):
        metrics = docker("exec", container, "python", "-c", "import urllib.request; print(urllib.request."
                         "urlopen('http://127.0.0.1:9100/metrics', timeout=5).read().decode())")
        serving = [line for line in metrics.splitlines() if line.startswith("swagdigits_model_info{")]
        assert any(f'version="{new}"' in line and line.endswith(" 1.0") for line in serving), serving
    answers = [predict(stack.web_url, digit).json() for digit in range(6)]
    assert {a["model_version"] for a in answers} == {new}
    report(request, f"retraining promoted {new} and every worker served it "
                    f"{stack.timings['retrain to served']:.0f} s after the retrain worker started")


class Socket:
    """A Socket.IO client of its own (own cookie jar) that records every answer pushed to it."""

    def __init__(self, url: str, transport: str):
        self.sio = socketio.Client(reconnection=False)
        self.got: list[dict] = []
        self._cv = threading.Condition()
        for event in (p.EVENT_PREDICTION, p.EVENT_PREDICTION_ERROR):
            self.sio.on(event, self._record)
        self.sio.connect(url, transports=[transport], wait_timeout=10)

    def _record(self, data: dict) -> None:
        with self._cv:
            self.got.append(data)
            self._cv.notify_all()

    def predict(self, digit: int, seq: int) -> str:
        image = "data:image/png;base64," + base64.b64encode(digit_png(digit)).decode()
        ack = self.sio.call(p.EVENT_PREDICT, {"image": image, "seq": seq}, timeout=10)
        assert "job_id" in ack, ack
        return ack["job_id"]

    def wait_for(self, job_ids: set[str], timeout: float = 15) -> None:
        with self._cv:
            self._cv.wait_for(lambda: job_ids <= {d.get("job_id") for d in self.got}, timeout)

    def close(self) -> None:
        self.sio.disconnect()


def sockets_per_web(stack: Compose) -> dict[str, int]:
    """Socket.IO clients each web replica holds, from its own /metrics."""
    counts = {}
    for container in stack.containers("web"):
        metrics = docker("exec", container, "python", "-c", "import urllib.request; print(urllib.request."
                         "urlopen('http://127.0.0.1:5000/metrics', timeout=5).read().decode())")
        [line] = [line for line in metrics.splitlines() if line.startswith("swagdigits_socketio_connected_clients ")]
        counts[container[:12]] = int(float(line.split()[1]))
    return counts


def test_sockets_on_different_web_replicas_each_get_only_their_own_answers(stack, request):
    """Long-polling sockets (a series of requests: they work only if every one reaches the replica
    holding the session) and WebSockets, spread over both replicas by the proxy."""
    wait_until_ready(stack)
    assert len(stack.containers("web")) == WEBS
    sockets: list[Socket] = []
    try:
        # Keys are random: open sockets until each replica holds at least 2.
        for _ in range(6):
            sockets += [Socket(stack.web_url, "polling") for _ in range(3)] + [Socket(stack.web_url, "websocket")]
            counts = sockets_per_web(stack)
            if len(counts) == WEBS and min(counts.values()) >= 2:
                break
        assert len(counts) == WEBS and min(counts.values()) >= 2, counts
        assert sum(counts.values()) == len(sockets), counts
        sent = {id(s): {s.predict(n % 10, seq) for seq in range(1, 4)} for n, s in enumerate(sockets)}
        for s in sockets:
            s.wait_for(sent[id(s)])
        time.sleep(1)   # anything pushed to the wrong socket would have arrived by now
        for s in sockets:
            got = [d.get("job_id") for d in s.got]
            assert sorted(got) == sorted(sent[id(s)]), (got, sent[id(s)])
            assert all("digit" in d for d in s.got), s.got
        report(request, f"{len(sockets)} sockets over {WEBS} web replicas {counts}: each got only its own answers")
    finally:
        for s in sockets:
            s.close()


def test_down_with_volumes_leaves_nothing(stack):
    label = f"label=com.docker.compose.project={stack.project}"
    containers = stack.containers(running_only=False)
    # named volumes carry the project's label; anonymous ones (a VOLUME of the image that
    # the service mounts nothing on) only show in the containers' mounts
    mounted = {m["Name"] for c in containers for m in json.loads(docker("inspect", "-f", "{{json .Mounts}}", c))
               if m["Type"] == "volume"}
    labelled = set(docker("volume", "ls", "-q", "--filter", label).split())
    assert containers and labelled and mounted - labelled, (labelled, mounted)
    stack.save_logs()
    stack("down", "-v", "--remove-orphans", "--timeout", "10", timeout=300)
    assert stack.containers(running_only=False) == []
    assert set(docker("volume", "ls", "-q").split()) & (mounted | labelled) == set()
    assert docker("network", "ls", "-q", "--filter", label).split() == []
