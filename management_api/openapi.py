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

BODY_ERRORS = {
    "408": "The body did not arrive in time",
    "413": "The body (decoded) is larger than the limit",
    "415": "Wrong Content-Type, or a Content-Encoding other than gzip/deflate (JSON only)",
}
EXTRA_ERRORS = {
    "401": "Wrong username or password",
    "429": "Too many attempts; retry after Retry-After seconds",
}
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


def form_schema(
    form: type[BaseModel], file_field: str, components: dict[str, Any]
) -> dict[str, Any]:
    """One object schema of the multipart form as it travels: the model's text fields, the file,
    and JSON-valued fields (lists, objects) as JSON strings (their shape in the description)."""
    schema = form.model_json_schema(ref_template=REF)
    defs = schema.pop("$defs", {})
    for name, definition in defs.items():
        components.setdefault(name, definition)
    properties: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        if _json_valued(prop, defs):
            properties[name] = {
                "type": "string",
                "contentMediaType": "application/json",
                "description": f"JSON: {prop.get('description') or _shape(prop)}",
            }
        else:
            properties[name] = prop
    properties[file_field] = {"type": "string", "contentMediaType": "application/octet-stream"}
    return {
        "type": "object",
        "title": schema.get("title", form.__name__),
        "required": [*schema.get("required", []), file_field],
        "properties": properties,
        "additionalProperties": False,
    }


def _json_valued(prop: dict[str, Any], defs: dict[str, Any]) -> bool:
    for option in prop.get("anyOf", [prop]):
        if "$ref" in option:
            option = defs.get(option["$ref"].rsplit("/", 1)[-1], {})
        if option.get("type") in ("array", "object"):
            return True
    return False


def _shape(prop: dict[str, Any]) -> str:
    options = [o for o in prop.get("anyOf", [prop]) if o.get("type") != "null"]
    kinds = []
    for option in options:
        kind = option.get("type") or option.get("$ref", "").rsplit("/", 1)[-1]
        items = option.get("items", {})
        if kind == "array" and "$ref" in items:
            kind = f"array of {items['$ref'].rsplit('/', 1)[-1]}"
        kinds.append(kind)
    return " or ".join(k for k in kinds if k) or "a JSON value"


def _models(routes: list[Route]) -> list[tuple[type[BaseModel], Any]]:
    seen: dict[tuple[type[BaseModel], str], None] = {(ErrorBody, "serialization"): None}
    for route in routes:
        for model in (route.body, route.query):
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
            content["multipart/form-data"] = {
                "schema": form_schema(route.form, route.form_file or "file", components)
            }
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
        elif route.content_type == "text/plain":
            # Prometheus's text exposition format (its media type carries a version parameter).
            responses[str(route.status)] = {
                "description": "Plain text",
                "content": {"text/plain": {"schema": {"type": "string"}}},
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
        errors = dict(ERROR_STATUSES)
        if route.auth == "public":
            del errors["401"], errors["403"]
        if content:
            errors.update(BODY_ERRORS)
        for extra in route.errors:
            errors[str(extra)] = EXTRA_ERRORS.get(str(extra), "See the error code")
        for code, text in sorted(errors.items()):
            responses[code] = {
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
