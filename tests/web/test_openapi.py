"""GET /openapi.json documents exactly the routes the app serves under the API prefixes,
admits only requests the service accepts, and links answers to the resources they name."""
import dataclasses
import re

import pytest

from web import create_app
from web.openapi import EXAMPLE_PNG, SPEC
from web.services import Services

DOCUMENTED_PREFIXES = ("/api", "/helpdata", "/healthz", "/readyz", "/v2")


def _flask_routes(app) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(DOCUMENTED_PREFIXES):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes.add((path, method.lower()))
    return routes


def _documented(spec) -> set[tuple[str, str]]:
    return {(path, method) for path, ops in spec["paths"].items() for method in ops}


def test_every_api_route_is_documented_and_every_documented_route_exists(app):
    assert _flask_routes(app) == _documented(SPEC)


def test_the_document_is_served_as_json(client):
    res = client.get("/openapi.json")
    assert res.status_code == 200 and res.mimetype == "application/json"
    assert res.json["openapi"].startswith("3.") and _documented(res.json) == _documented(SPEC)


def test_path_parameters_match_the_path_templates():
    for path, ops in SPEC["paths"].items():
        in_path = set(re.findall(r"{([^}]+)}", path))
        for method, op in ops.items():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == in_path, (method, path)


def test_every_operation_documents_its_errors_as_the_error_schema():
    for path, ops in SPEC["paths"].items():
        for method, op in ops.items():
            assert op["responses"], (method, path)
            for status, response in op["responses"].items():
                if status.startswith(("4", "5")) and status not in ("404", "503") or status == "429":
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)


@pytest.fixture
def operator_client(web_config, fake_conn):
    config = dataclasses.replace(web_config, admin_token="openapi-token")
    app = create_app(config, services=Services.connect(config, conn=fake_conn))
    app.testing = True
    return app.test_client()


def test_the_routes_marked_as_operator_only_are_exactly_those_refusing_anonymous_callers(operator_client):
    marked = {path for path, ops in SPEC["paths"].items() for op in ops.values() if "security" in op}
    refused = set()
    for path, ops in SPEC["paths"].items():
        for method in set(ops) & {"post", "delete"}:
            url = path.replace("{model_id}", "m1")
            res = operator_client.open(url, method=method.upper(), json={})
            if res.status_code == 401:
                assert res.headers["WWW-Authenticate"].startswith("Bearer"), path
                refused.add((path, method))
    assert refused == {(path, method) for path, ops in SPEC["paths"].items() for method, op in ops.items()
                       if "security" in op}
    assert marked == {path for path, _ in refused} == {
        "/api/retrain", "/api/models/{model_id}/promote", "/api/models/rollback", "/api/models/{model_id}/shadow",
        "/api/models/{model_id}/canary", "/api/models/canary"}
    for path, method in refused:
        assert {"401", "403", "404"} <= set(SPEC["paths"][path][method]["responses"]), path


def test_every_405_says_which_methods_are_allowed(client):
    """RFC 9110: a 405 carries ``Allow``; the JSON error body must not drop it."""
    for path, methods in (("/healthz", {"GET"}), ("/api/predict", {"POST"}),
                          ("/helpdata", {"GET", "POST"}), ("/api/jobs/" + "0" * 32, {"GET"})):
        res = client.open(path, method="TRACE")
        assert res.status_code == 405 and res.json["status"] == 405, path
        assert methods <= {m.strip() for m in res.headers["Allow"].split(",")}, (path, res.headers)


def test_the_document_admits_no_empty_image_and_no_empty_batch():
    predict = SPEC["paths"]["/api/predict"]["post"]["requestBody"]["content"]
    help_json = SPEC["paths"]["/helpdata"]["post"]["requestBody"]["content"]["application/json"]
    batch = SPEC["paths"]["/api/batches"]["post"]["requestBody"]["content"]
    for image in (predict["application/json"]["schema"]["properties"]["image"],
                  help_json["schema"]["properties"]["image"]):
        assert image["minLength"] >= 1 and not re.fullmatch(image["pattern"], "")
        assert not re.fullmatch(image["pattern"], "data:image/png;base64,")
        assert re.fullmatch(image["pattern"], EXAMPLE_PNG)
    assert predict["multipart/form-data"]["schema"]["properties"]["file"]["minLength"] == 1
    assert batch["application/json"]["schema"]["properties"]["images"]["minItems"] == 1
    assert batch["multipart/form-data"]["schema"]["properties"]["file"]["minItems"] == 1


def test_the_examples_are_requests_the_service_accepts(client):
    predict = SPEC["paths"]["/api/predict"]["post"]["requestBody"]["content"]["application/json"]["example"]
    assert client.post("/api/predict?wait=0", json=predict).status_code == 202
    batch = SPEC["paths"]["/api/batches"]["post"]["requestBody"]["content"]["application/json"]["example"]
    res = client.post("/api/batches", json=batch)
    assert res.status_code == 202 and res.json["invalid"] == 0


def test_csv_results_are_declared_and_an_unknown_format_is_refused(client):
    ok = SPEC["paths"]["/api/batches/{batch_id}"]["get"]["responses"]["200"]["content"]
    assert set(ok) == {"application/json", "text/csv"}
    batch_id = client.post("/api/batches", json={"images": [EXAMPLE_PNG]}).json["batch_id"]
    res = client.get(f"/api/batches/{batch_id}?format=xml")
    assert res.status_code == 400 and res.json["status"] == 400


def test_answers_naming_a_job_or_a_batch_link_to_where_it_is_read():
    ops = {op["operationId"]: op for ops in SPEC["paths"].values() for op in ops.values()}
    predict = ops["predict"]["responses"]
    for status in ("200", "202"):
        [link] = predict[status]["links"].values()
        assert link == {"operationId": "getJob", "parameters": {"job_id": "$response.body#/job_id"}}
    [link] = ops["submitBatch"]["responses"]["202"]["links"].values()
    assert link == {"operationId": "getBatch", "parameters": {"batch_id": "$response.body#/batch_id"}}
    for link in (lk for op in ops.values() for r in op["responses"].values() for lk in r.get("links", {}).values()):
        target = ops[link["operationId"]]
        assert set(link["parameters"]) == {p["name"] for p in target["parameters"] if p["in"] == "path"}
