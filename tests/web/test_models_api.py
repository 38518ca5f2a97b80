"""GET /api/models and the operator routes, over a real (trained) model store and fakeredis."""
import json
import subprocess
import sys
from dataclasses import replace

import pytest
from shared.messaging import retrain_trigger

from shared.messaging import protocol as p
from shared.model.store import ModelRegistry
from web import create_app
from web.services import Services

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def store_config(web_config, model_dir):
    return replace(web_config, model_dir=model_dir, admin_token=TOKEN)


@pytest.fixture
def admin_client(store_config, fake_conn):
    app = create_app(store_config, services=Services.connect(store_config, conn=fake_conn))
    app.testing = True
    return app.test_client()


def _second_model(model_dir):
    """A second version (the fixture's estimator re-published: no training needed)."""
    registry = ModelRegistry(model_dir)
    current = registry.load_production()
    return registry.publish(registry.load_trained(current.version), {**current.metadata, "source": "test copy"})


def _next_event(pubsub, timeout_s: float = 10.0):
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.5)
        if message:
            return json.loads(message["data"])
    raise AssertionError(f"no model event published within {timeout_s}s")


def test_models_are_listed_with_state_metrics_and_which_is_live(admin_client, model_dir, fake_conn):
    production = ModelRegistry(model_dir).production_id()
    fake_conn.zadd(p.WORKERS_KEY, {"w1": __import__("time").time()})
    fake_conn.hset(p.WORKER_KEY.format("w1"), mapping={"role": "predict", "model_version": production})
    body = admin_client.get("/api/models").json
    assert body["production"] == production and body["serving"] == {production: 1}
    [model] = body["models"]
    assert model["state"] == "production" and model["live"] is True
    assert 0.9 < model["metadata"]["holdout_accuracy"] <= 1.0


@pytest.mark.parametrize("method, path", [("post", "/api/retrain"), ("post", "/api/models/rollback"),
                                          ("post", "/api/models/abc/promote")])
def test_operator_routes_are_off_without_a_configured_token(client, method, path):
    """Off is its own answer (404: the routes do not exist here), whatever the caller sends."""
    for headers in (AUTH, {}):
        res = getattr(client, method)(path, headers=headers)
        assert res.status_code == 404 and "SWAGDIGITS_ADMIN_TOKEN" in res.json["error"], headers
        assert "WWW-Authenticate" not in res.headers


def test_the_operator_view_of_the_listing_is_refused_when_operator_routes_are_off(client):
    assert client.get("/api/models").status_code == 200
    res = client.get("/api/models", headers=AUTH)
    assert res.status_code == 403 and "SWAGDIGITS_ADMIN_TOKEN" in res.json["error"]


def test_operator_routes_need_the_right_bearer_token(admin_client):
    missing = admin_client.post("/api/retrain")
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = admin_client.post("/api/retrain", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403 and wrong.json["error"] == "wrong admin token"
    assert admin_client.post("/api/retrain", headers=AUTH).status_code == 202


def test_retrain_requests_coalesce_into_one_waiting_job(admin_client, fake_conn):
    answers = [admin_client.post("/api/retrain", headers=AUTH).json for _ in range(5)]
    assert [a["queued"] for a in answers] == [True, False, False, False, False]
    assert {a["job_id"] for a in answers} == {answers[0]["job_id"]}
    assert retrain_trigger.retrain_queue(fake_conn).count == 1


def test_promote_and_rollback_change_the_store_and_tell_the_workers(admin_client, model_dir, fake_conn,
                                                                    socket_manager):
    registry = ModelRegistry(model_dir)
    first = registry.production_id()
    second = _second_model(model_dir)
    pubsub = fake_conn.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(p.MODEL_EVENTS_CHANNEL)

    res = admin_client.post(f"/api/models/{second}/promote", headers=AUTH)
    assert res.status_code == 200 and res.json == {"production": second, "previous": first}
    assert registry.production_id() == second
    assert _next_event(pubsub)["model_version"] == second

    res = admin_client.post("/api/models/rollback", headers=AUTH)
    assert res.json == {"production": first, "previous": second}
    assert registry.production_id() == first
    states = {m["model_id"]: m["state"] for m in admin_client.get("/api/models").json["models"]}
    assert states == {first: "production", second: "retired"}
    browsers = [data for event, data, _ in socket_manager.emitted if event == p.EVENT_MODEL_CHANGED]
    assert browsers == [{"model_version": second, "previous": first},
                        {"model_version": first, "previous": second}], "every open page is told"
    assert _next_event(pubsub)["model_version"] == first


def test_unknown_models_and_nothing_to_roll_back_are_4xx(admin_client):
    assert admin_client.post("/api/models/no-such-model/promote", headers=AUTH).status_code == 404
    assert admin_client.post("/api/models/..%2Fetc/promote", headers=AUTH).status_code == 404
    res = admin_client.post("/api/models/rollback", headers=AUTH)
    assert res.status_code == 409 and "no retired model" in res.json["error"]


def test_listing_and_promoting_never_import_scikit_learn(model_dir, tmp_path):
    """The web tier's memory budget: GET /api/models and promote must stay sklearn-free."""
    second = _second_model(model_dir)
    script = f"""
import sys, fakeredis
from shared.config import Config
from web import create_app
from web.services import Services
config = Config.from_env({{}}, model_dir={str(model_dir)!r}, help_dir={str(tmp_path / 'h')!r},
                         admin_token="t")
app = create_app(config, services=Services.connect(config, conn=fakeredis.FakeRedis()))
c = app.test_client()
assert c.get("/api/models").status_code == 200
assert c.post("/api/models/{second}/promote", headers={{"Authorization": "Bearer t"}}).status_code == 200
print("sklearn" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_anonymous_callers_see_no_library_versions_host_or_pid(admin_client, model_dir, fake_conn):
    import os
    import socket
    import time

    name = f"predict-{socket.gethostname()}-{os.getpid()}"
    fake_conn.zadd(p.WORKERS_KEY, {name: time.time()})
    fake_conn.hset(p.WORKER_KEY.format(name), mapping={"role": "predict", "pid": os.getpid(),
                                                       "model_version": ModelRegistry(model_dir).production_id()})
    anonymous = admin_client.get("/api/models")
    text = anonymous.get_data(as_text=True)
    assert anonymous.status_code == 200 and anonymous.json["models"]
    assert "libraries" not in text and socket.gethostname() not in text and str(os.getpid()) not in text
    operator = admin_client.get("/api/models", headers=AUTH).json
    [model] = operator["models"]
    assert {"python", "numpy", "scikit-learn"} <= set(model["metadata"]["libraries"])
    assert [w["name"] for w in operator["workers"]] == [name] and operator["workers"][0]["pid"] == str(os.getpid())


def test_a_wrong_token_on_the_listing_is_refused_rather_than_treated_as_anonymous(admin_client):
    res = admin_client.get("/api/models", headers={"Authorization": "Bearer wrong"})
    assert res.status_code == 403


def test_a_model_id_with_a_trailing_newline_is_not_a_model_id(admin_client, model_dir):
    production = ModelRegistry(model_dir).production_id()
    res = admin_client.post(f"/api/models/{production}%0A/promote", headers=AUTH)
    assert res.status_code == 404 and res.json["error"] == "no such model"


def test_an_operator_runs_a_version_in_shadow_sees_its_tallies_and_stops_it(admin_client, model_dir, fake_conn):
    from shared.messaging import shadows

    second = _second_model(model_dir)
    production = ModelRegistry(model_dir).production_id()
    assert admin_client.post(f"/api/models/{second}/shadow", json={"share": 0.2}).status_code == 401
    res = admin_client.post(f"/api/models/{second}/shadow", json={"share": 0.2}, headers=AUTH)
    assert res.status_code == 201 and res.json == {"shadow": second, "share": 0.2}
    shadows.record(fake_conn, second, [shadows.ShadowAnswer("a" * 32, 3, 0.9, 5, 0.6)], ttl=60)

    listed = admin_client.get("/api/models").json["shadow"]
    assert listed[second]["share"] == 0.2 and listed[second]["seen"] == 1 and listed[second]["agreement"] == 0.0

    for bad in ({"share": 0}, {"share": 1.5}, {"share": "half"}, {"share": True}, [1]):
        res = admin_client.post(f"/api/models/{second}/shadow", json=bad, headers=AUTH)
        assert res.status_code == 400 and res.json["error"], bad
    assert admin_client.post("/api/models/nope/shadow", headers=AUTH).status_code == 404
    assert admin_client.post(f"/api/models/{production}/shadow", headers=AUTH).status_code == 409

    res = admin_client.delete(f"/api/models/{second}/shadow", headers=AUTH)
    assert res.status_code == 200 and res.json["stopped"] == second and res.json["seen"] == 1
    assert admin_client.get("/api/models").json["shadow"] == {}
    assert admin_client.delete(f"/api/models/{second}/shadow", headers=AUTH).status_code == 404


def test_an_operator_starts_a_canary_sees_it_and_a_promotion_ends_it(admin_client, model_dir, fake_conn):
    from shared.messaging import canary

    second = _second_model(model_dir)
    production = ModelRegistry(model_dir).production_id()
    assert admin_client.post(f"/api/models/{second}/canary").status_code == 401
    res = admin_client.post(f"/api/models/{second}/canary", json={"share": 0.25}, headers=AUTH)
    assert res.status_code == 201 and (res.json["version"], res.json["share"], res.json["production"]) == (
        second, 0.25, production)
    listed = admin_client.get("/api/models").json["canary"]
    assert listed["version"] == second and listed["canary_answers"] == 0
    assert admin_client.post(f"/api/models/{production}/canary", headers=AUTH).status_code == 409
    assert admin_client.post("/api/models/nope/canary", headers=AUTH).status_code == 404
    assert admin_client.post(f"/api/models/{second}/canary", json={"share": 2}, headers=AUTH).status_code == 400

    assert admin_client.post(f"/api/models/{second}/promote", headers=AUTH).status_code == 200
    assert canary.active(fake_conn) is None and admin_client.get("/api/models").json["canary"] is None
    assert admin_client.delete("/api/models/canary", headers=AUTH).status_code == 404


def test_a_canary_users_correct_more_than_production_is_rolled_back_and_rejected(
        store_config, model_dir, fake_conn):
    from prometheus_client import REGISTRY

    from shared.messaging import canary
    from testkit.drawings import digit_png

    config = replace(store_config, canary_min_answers=20, canary_margin=0.05)
    app = create_app(config, services=Services.connect(config, conn=fake_conn))
    app.testing = True
    client = app.test_client()
    second = _second_model(model_dir)
    production = ModelRegistry(model_dir).production_id()
    canary.start(fake_conn, second, 0.1, production=production)
    canary.count_answers(fake_conn, second, 20, 180)     # what the workers counted so far
    rollbacks = REGISTRY.get_sample_value("swagdigits_canary_rollbacks_total") or 0

    def correct(job_id, version, brush):
        fake_conn.hset(p.JOB_KEY.format(job_id), mapping={"state": p.FINISHED, "result": json.dumps(
            {"job_id": job_id, "digit": 1, "probabilities": [0.1] * 10, "model_version": version})})
        image = "data:image/png;base64," + __import__("base64").b64encode(digit_png(7, brush=brush)).decode()
        res = client.post("/helpdata", json={"image": image, "label": 7, "job_id": job_id})
        assert res.status_code == 201, res.json

    correct("a" * 32, production, 12)                     # production corrected once in 180: 0.6%
    correct("b" * 32, second, 14)                         # canary 1 in 20: 5%, not yet 5 points over
    assert canary.active(fake_conn) is not None
    correct("c" * 32, second, 16)                         # canary 2 in 20: 10%: rolled back
    assert canary.active(fake_conn) is None
    assert "rejected" in [m for m in ModelRegistry(model_dir).list() if m.model_id == second][0].states
    assert ModelRegistry(model_dir).production_id() == production
    assert REGISTRY.get_sample_value("swagdigits_canary_rollbacks_total") - rollbacks == 1
