"""The HTTP adapter's plumbing: the route table type, auth, body/query decoding, the error
middleware mapping ``ServiceError`` (and anything unexpected) to ``schemas.ErrorBody``."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm.exc import StaleDataError

from infra import http
from management_api.accounts import Principal
from management_api.docs_page import DOCS_HTML
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
JSON_MAX_BYTES = 1024 * 1024
"""Largest JSON body (decoded); uploads go as multipart, bounded by ``management_max_upload_mb``."""
MAX_REPORTED_ERRORS = 20
MAX_FIELD_CHARS = 100
_BOUNDARY = re.compile(r";\s*boundary=\S", re.IGNORECASE)


def _inline_hashes(html: str, tag: str) -> str:
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.S)
    return " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(b.encode()).digest()).decode() + "'"
        for b in blocks
    )


DASHBOARD_CSP = (
    "default-src 'self'; "
    f"script-src 'self' {_inline_hashes(DOCS_HTML, 'script')}; "
    # React and the charts set style attributes; styles cannot run code.
    "style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
"""CSP of the dashboard, ``/docs`` (its one inline script allowed by hash) and other HTML."""


_ORIGIN = re.compile(
    r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?"
)


def url_origin(url: str) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL, or None when it has none (or it would not be
    one plain CSP source)."""
    match = re.match(r"(https?://[^/?#]+)", url.strip())
    if match is None:
        return None
    origin = match.group(1)
    return origin if _ORIGIN.fullmatch(origin) else None


def dashboard_csp(public_ingress_url: str) -> str:
    """The dashboard's policy, which lets it reach ingress too: the API docs' "Try it" panel calls
    the prediction route from the browser."""
    origin = url_origin(public_ingress_url)
    if origin is None:
        return DASHBOARD_CSP
    return DASHBOARD_CSP.replace("connect-src 'self';", f"connect-src 'self' {origin};", 1)


def csp_for(public_ingress_url: str) -> Callable[[web.StreamResponse], str]:
    """The policy of an answer: the dashboard's for HTML, the data policy for everything else."""
    dashboard = dashboard_csp(public_ingress_url)

    def policy(response: web.StreamResponse) -> str:
        return dashboard if response.content_type == "text/html" else http.API_CSP

    return policy


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Auth = Literal["public", "user", "admin"]
Owned = Literal["model", "api", "job", "user", "webhook", "alert_rule"]


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
    errors: tuple[int, ...] = ()
    """Error statuses this operation answers beyond the common ones (documented in OpenAPI)."""

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
    headers = dict(error.headers)
    if error.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return web.Response(
        body=body.__pydantic_serializer__.to_json(body),
        status=error.status,
        content_type="application/json",
        headers=headers,
    )


def validation_details(exc: ValidationError) -> dict[str, Any]:
    """The first ``MAX_REPORTED_ERRORS`` problems (``error_count`` says how many in all)."""
    errors = exc.errors(include_url=False, include_input=False)
    details: dict[str, Any] = {
        "errors": [
            {
                "field": (".".join(str(p) for p in err["loc"]) or "(body)")[:MAX_FIELD_CHARS],
                "message": err["msg"][:200],
                "type": err["type"],
            }
            for err in errors[:MAX_REPORTED_ERRORS]
        ]
    }
    if len(errors) > MAX_REPORTED_ERRORS:
        details["error_count"] = len(errors)
    return details


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
    raw = await http.read_body(request, JSON_MAX_BYTES)
    if not raw.strip():
        data: Any = {}
    else:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidJson(f"the body is not valid JSON: {str(exc)[:200]}") from exc
    return validate(model, data)


def read_query(request: web.Request, model: type[M]) -> M:
    data = {k: v for k, v in request.query.items() if v != ""}
    return validate(model, data, "query")


def principal(request: web.Request) -> Principal:
    """Who is calling (set by ``with_auth``; only routes that are not public have one)."""
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
    request_id = request.headers.get("X-Request-Id", "")[:64] or uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    response = await _answer(request, handler, request_id)
    response.headers.setdefault("X-Request-Id", request_id)
    return response


async def _allowed_methods(request: web.Request) -> set[str]:
    """The methods of the first path template that matches, as routing tries them (aiohttp's own
    ``Allow`` joins every template that matches: ``/api/users/{id}`` would add its methods to
    ``/api/users/me``)."""
    template = None
    allowed_methods: set[str] = set()
    for resource in request.app.router.resources():
        if template is not None and resource.canonical != template:
            continue
        _, allowed = await resource.resolve(request)
        if allowed:
            template = resource.canonical
            allowed_methods |= allowed
    return allowed_methods


def _check_body_headers(request: web.Request) -> None:
    """gzip and deflate are inflated for JSON bodies only (``read_json``); a form parser would
    read the compressed bytes, so an encoded non-JSON body is refused (415). A multipart body
    without its boundary cannot be parsed (400)."""
    if request.content_type.startswith("multipart/") and not _BOUNDARY.search(
        request.headers.get("Content-Type", "")
    ):
        raise InvalidInput("a multipart body needs a boundary in its Content-Type")
    if request.body_exists and http.content_encoding(request) != "identity":
        if request.content_type != "application/json":
            raise UnsupportedMediaType(
                "only JSON bodies may be gzip or deflate encoded",
                details={"content_type": request.content_type[:100]},
            )


async def _answer(request: web.Request, handler: Handler, request_id: str) -> web.StreamResponse:
    try:
        _check_body_headers(request)
        return await handler(request)
    except asyncio.CancelledError:
        raise
    except ServiceError as exc:
        return error_response(exc)
    except (http.BodyError, ConnectionResetError) as exc:
        body_error = exc if isinstance(exc, http.BodyError) else http.ClientClosed()
        if body_error.status == 499:
            log.info("%s %s: the client left before its body arrived", request.method, request.path)
        return error_response(
            ServiceError(
                body_error.message,
                code=body_error.code,
                status=body_error.status,
                details=body_error.details,
            )
        )
    except StaleDataError:  # the row changed or went away between reading and writing it
        return error_response(
            ServiceError(
                "changed or deleted meanwhile; reload and retry", code="CONFLICT", status=409
            )
        )
    except HttpProcessingError as exc:  # a malformed multipart body
        return error_response(
            InvalidInput("malformed body", details={"reason": str(exc.message)[:200]})
        )
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
            error = NotFound(message, details={"path": request.path[:200]})
        if exc.status == 405:
            allowed = await _allowed_methods(request)
            if not allowed:
                error = NotFound("no such route", details={"path": request.path[:200]})
            else:
                error.headers = {"Allow": ", ".join(sorted(allowed))}
        return error_response(error)
    except Exception:
        log.exception(
            "unexpected error on %s %s (request %s)", request.method, request.path, request_id
        )
        return error_response(
            ServiceError("internal error; quote the request id when reporting it"), request_id
        )
