"""The HTTP adapter's plumbing: the route table type, auth, body/query decoding, the error
middleware mapping ``ServiceError`` (and anything unexpected) to ``schemas.ErrorBody``."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from management_api.errors import (
    Forbidden,
    InvalidInput,
    InvalidJson,
    NotFound,
    PayloadTooLarge,
    ServiceError,
    Unauthorized,
    UnsupportedMediaType,
)
from management_api.keys import ACCOUNTS, PRINCIPAL, REQUEST_ID
from schemas import ErrorBody, ErrorCode

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Auth = Literal["public", "user", "admin"]
Owned = Literal["model", "api", "job", "user"]


@dataclass(frozen=True)
class Route:
    """One operation: how aiohttp routes it and how ``/openapi.json`` documents it."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    auth: Auth = "user"
    body: type[BaseModel] | None = None
    form: type[BaseModel] | None = None
    form_file: str | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    owns: Owned | None = None
    content_type: str = "application/json"
    description: str = ""

    @property
    def operation_id(self) -> str:
        return self.handler.__name__.strip("_")


def json_response(model: BaseModel | None, status: int = 200) -> web.Response:
    if model is None:
        return web.Response(status=status)
    return web.Response(
        body=model.__pydantic_serializer__.to_json(model),
        status=status,
        content_type="application/json",
    )


def error_response(error: ServiceError, request_id: str | None = None) -> web.Response:
    details = dict(error.details)
    if request_id is not None:
        details.setdefault("request_id", request_id)
    body = ErrorBody.of(str(error.code), error.message, details)
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return web.Response(
        body=body.__pydantic_serializer__.to_json(body),
        status=error.status,
        content_type="application/json",
        headers=headers,
    )


def validation_details(exc: ValidationError) -> dict[str, Any]:
    return {
        "errors": [
            {
                "field": ".".join(str(p) for p in err["loc"]) or "(body)",
                "message": err["msg"],
                "type": err["type"],
            }
            for err in exc.errors(include_url=False, include_input=False)
        ]
    }


def validate(model: type[M], data: Any, what: str = "body") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(f"invalid request {what}", details=validation_details(exc)) from exc


async def read_json(request: web.Request, model: type[M]) -> M:
    if request.content_type not in ("application/json", "") and request.can_read_body:
        raise UnsupportedMediaType(
            "send a JSON body with Content-Type: application/json",
            details={"content_type": request.content_type},
        )
    raw = await request.read()
    if not raw.strip():
        data: Any = {}
    else:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidJson(f"the body is not valid JSON: {exc}") from exc
    return validate(model, data)


def read_query(request: web.Request, model: type[M]) -> M:
    data = {k: v for k, v in request.query.items() if v != ""}
    return validate(model, data, "query")


def principal(request: web.Request) -> Any:
    return request[PRINCIPAL]


def with_auth(route: Route) -> Handler:
    """Wrap a handler so it runs only for a valid bearer token (and admin role, if asked)."""
    if route.auth == "public":
        return route.handler

    async def handler(request: web.Request) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("log in and send Authorization: Bearer <token>")
        who = await request.app[ACCOUNTS].authenticate(token.strip())
        if route.auth == "admin" and not who.is_admin:
            raise Forbidden("this needs the admin role")
        request[PRINCIPAL] = who
        return await route.handler(request)

    handler.__name__ = route.handler.__name__
    return handler


HTTP_ERRORS: dict[int, str] = {
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure leaves as ``{"error": ...}``; unexpected ones are logged, never leaked."""
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    response = await _answer(request, handler, request_id)
    response.headers.setdefault("X-Request-Id", request_id)
    return response


async def _answer(request: web.Request, handler: Handler, request_id: str) -> web.StreamResponse:
    try:
        return await handler(request)
    except asyncio.CancelledError:
        raise
    except ServiceError as exc:
        return error_response(exc)
    except web.HTTPRequestEntityTooLarge as exc:
        return error_response(
            PayloadTooLarge("the request body is too large", details={"limit": exc.text})
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = HTTP_ERRORS.get(exc.status, f"HTTP_{exc.status}")
        message = {404: "no such route", 405: f"method {request.method} not allowed here"}.get(
            exc.status, exc.reason
        )
        error = ServiceError(message, code=code, status=exc.status)
        if exc.status == 404:
            error = NotFound(message, details={"path": request.path})
        return error_response(error)
    except Exception:
        log.exception(
            "unexpected error on %s %s (request %s)", request.method, request.path, request_id
        )
        return error_response(
            ServiceError("internal error; quote the request id when reporting it"), request_id
        )
