"""The OpenAPI document validates and lists every route the app registers (no services needed)."""

from __future__ import annotations

from pathlib import Path

from openapi_spec_validator import validate

from management_api.app import create_app
from management_api.openapi import build_openapi, openapi_path
from management_api.routes import ROUTES
from tests.management_support import management_settings


def test_document_is_valid_openapi_3_1(tmp_path: Path) -> None:
    document = build_openapi(ROUTES, management_settings(tmp_path))
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_every_registered_route_is_documented(tmp_path: Path) -> None:
    app = create_app(management_settings(tmp_path))
    registered = {
        (route.method, openapi_path(route.resource.canonical))
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    document = build_openapi(ROUTES)
    documented = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    assert registered == documented
    assert ("POST", "/api/export/{model_id}") in documented
    assert ("GET", "/api/monitoring/apis/{id}/timeseries") in documented


def test_operations_reference_their_schemas(tmp_path: Path) -> None:
    document = build_openapi(ROUTES)
    train = document["paths"]["/api/models/train"]["post"]
    assert set(train["requestBody"]["content"]) == {"application/json", "multipart/form-data"}
    created = document["paths"]["/api/export/{model_id}"]["post"]["responses"]["201"]
    ref = created["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert {"api", "api_key", "api_url"} <= set(schema["properties"])
    assert document["paths"]["/api/auth/token"]["post"].get("security") is None
    assert document["paths"]["/api/models"]["get"]["security"] == [{"bearerAuth": []}]
