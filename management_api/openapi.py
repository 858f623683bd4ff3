"""``/openapi.json`` (OpenAPI 3.1) generated from the route table and the pydantic models."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from management_api.http import Route
from management_api.settings import ManagementSettings
from schemas import ErrorBody

REF = "#/components/schemas/{model}"
_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")

ERROR_STATUSES = {
    "400": "Invalid input (the details name every problem)",
    "401": "Missing, invalid or expired token",
    "403": "Not allowed for this role",
    "404": "Not found (or not yours)",
    "409": "Conflicts with the current state",
    "503": "A dependency is unavailable; retry",
}


def openapi_path(path: str) -> str:
    """aiohttp's ``/{path:.*}`` as OpenAPI's ``/{path}``."""
    return _PARAM.sub(lambda m: "{" + m.group(1) + "}", path)


def _models(routes: list[Route]) -> list[tuple[type[BaseModel], Any]]:
    seen: dict[tuple[type[BaseModel], str], None] = {(ErrorBody, "serialization"): None}
    for route in routes:
        for model in (route.body, route.form, route.query):
            if model is not None:
                seen[(model, "validation")] = None
        if route.response is not None:
            seen[(route.response, "serialization")] = None
    return list(seen)


def build_openapi(
    routes: list[Route], settings: ManagementSettings | None = None
) -> dict[str, Any]:
    """The whole document: one operation per route, schemas from the route's pydantic models."""
    keys, top = models_json_schema(_models(routes), ref_template=REF)
    components: dict[str, Any] = top.get("$defs", {})

    def ref(model: type[BaseModel], mode: str) -> dict[str, Any]:
        return dict(keys[(model, mode)])  # type: ignore[index]

    error_ref = ref(ErrorBody, "serialization")
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        path = openapi_path(route.path)
        operation: dict[str, Any] = {
            "operationId": route.operation_id + ("_spa" if route.path.startswith("/{") else ""),
            "summary": route.summary,
            "tags": [route.tag],
        }
        if route.description:
            operation["description"] = route.description
        parameters: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PARAM.findall(route.path)
        ]
        if route.query is not None:
            schema = route.query.model_json_schema(ref_template=REF)
            required = set(schema.get("required", []))
            for name, prop in schema.get("properties", {}).items():
                param: dict[str, Any] = {
                    "name": name,
                    "in": "query",
                    "required": name in required,
                    "schema": {k: v for k, v in prop.items() if k not in {"title", "description"}},
                }
                if "description" in prop:
                    param["description"] = prop["description"]
                parameters.append(param)
        if parameters:
            operation["parameters"] = parameters
        content: dict[str, Any] = {}
        if route.body is not None:
            content["application/json"] = {"schema": ref(route.body, "validation")}
        if route.form is not None:
            form_schema = {
                "allOf": [
                    ref(route.form, "validation"),
                    {
                        "type": "object",
                        "required": [route.form_file or "file"],
                        "properties": {
                            route.form_file or "file": {
                                "type": "string",
                                "contentMediaType": "application/octet-stream",
                            }
                        },
                    },
                ],
                "description": "JSON-valued fields (params, features, classes) go as JSON strings.",
            }
            content["multipart/form-data"] = {"schema": form_schema}
        if content:
            operation["requestBody"] = {"required": True, "content": content}
        responses: dict[str, Any] = {}
        if route.status == 204:
            responses["204"] = {"description": "Done (no content)"}
        elif route.content_type == "text/html":
            responses[str(route.status)] = {
                "description": "HTML page",
                "content": {"text/html": {"schema": {"type": "string"}}},
            }
        else:
            schema = (
                ref(route.response, "serialization")
                if route.response is not None
                else {"type": "object"}
            )
            responses[str(route.status)] = {
                "description": "Success",
                "content": {"application/json": {"schema": schema}},
            }
        for status, text in ERROR_STATUSES.items():
            if route.auth == "public" and status in {"401", "403"}:
                continue
            responses[status] = {
                "description": text,
                "content": {"application/json": {"schema": error_ref}},
            }
        operation["responses"] = responses
        if route.auth != "public":
            operation["security"] = [{"bearerAuth": []}]
        paths.setdefault(path, {})[route.method.lower()] = operation
    servers = []
    if settings is not None:
        servers = [{"url": "/", "description": "this server"}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "modelgate management API",
            "version": "1.0.0",
            "description": (
                "Accounts, models and training, exported prediction APIs and their monitoring. "
                "Log in with POST /api/auth/token and send `Authorization: Bearer <token>`. "
                "Predictions themselves go to ingress: POST /api/predict/{api_id} with X-API-Key."
            ),
        },
        "servers": servers,
        "tags": [{"name": t} for t in dict.fromkeys(r.tag for r in routes)],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }
