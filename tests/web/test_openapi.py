"""GET /openapi.json documents exactly the routes the app serves under the API prefixes."""
import re

from web.openapi import SPEC

DOCUMENTED_PREFIXES = ("/api", "/helpdata", "/healthz", "/readyz")


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


def test_the_routes_marked_as_operator_only_are_exactly_those_refusing_anonymous_callers(client):
    marked = {path for path, ops in SPEC["paths"].items() for op in ops.values() if "security" in op}
    refused = set()
    for path, ops in SPEC["paths"].items():
        if "post" in ops:
            url = path.replace("{model_id}", "m1")
            if client.post(url, json={}).status_code in (401, 403):
                refused.add(path)
    assert marked == refused == {"/api/retrain", "/api/models/{model_id}/promote", "/api/models/rollback"}
