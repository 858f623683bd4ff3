"""The ingress application: ``create_app(settings)`` wires the plain classes to HTTP and AMQP."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ingress.batcher import MicroBatcher
from ingress.broker import BrokerLink
from ingress.errors import IngressError, error_body
from ingress.events import EventPublisher
from ingress.metrics import IngressMetrics
from ingress.ratelimit import RateLimiter
from ingress.registry import Registry
from ingress.service import PredictionService
from ingress.settings import IngressSettings
from schemas import ErrorCode

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", IngressSettings)
METRICS = web.AppKey("metrics", IngressMetrics)
REGISTRY = web.AppKey("registry", Registry)
BATCHER = web.AppKey("batcher", MicroBatcher)
EVENTS = web.AppKey("events", EventPublisher)
SERVICE = web.AppKey("service", PredictionService)
LINK = web.AppKey("link", BrokerLink)

HTTP_CODES = {
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
}
JSON = "application/json"
PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, X-API-Key, Authorization",
    "Access-Control-Max-Age": "600",
}
EXPOSED_HEADERS = "RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Retry-After"


def _json_response(status: int, body: bytes, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=body, headers=headers or {"Content-Type": JSON})


def _api_key(request: web.Request) -> str | None:
    key = request.headers.get("X-API-Key")
    if key:
        return key
    auth = request.headers.get("Authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return None


async def predict(request: web.Request) -> web.Response:
    """``POST /api/predict/{api_id}``: one object of features, or ``{"instances": [...]}``."""
    service = request.app[SERVICE]
    limit = service.settings.ingress_max_body_bytes

    async def read_body() -> bytes:
        length = request.content_length
        if length is not None and length > limit:
            raise IngressError(
                413,
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"the body is larger than {limit} bytes",
                {"max_bytes": limit},
            )
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise IngressError(
                413,
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"the body is larger than {limit} bytes",
                {"max_bytes": limit},
            ) from None

    answer = await service.predict(
        request.match_info["api_id"],
        _api_key(request),
        request.headers.get("Content-Type", ""),
        read_body,
    )
    return web.Response(status=answer.status, body=answer.body, headers=answer.headers)


async def preflight(request: web.Request) -> web.Response:
    """CORS preflight; the middleware adds ``Access-Control-Allow-Origin`` for allowed origins."""
    return web.Response(status=204, headers=PREFLIGHT_HEADERS)


async def health(request: web.Request) -> web.Response:
    return _json_response(200, b'{"status":"ok"}')


async def ready(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    batcher = request.app[BATCHER]
    connected = request.app[LINK].connected.is_set()
    state = {
        "broker": connected,
        "registry": registry.ready,
        "apis": len(registry),
        "predictors_online": batcher.predictors_online,
    }
    if connected and registry.ready:
        return _json_response(200, orjson.dumps({"status": "ready", **state}))
    code = ErrorCode.REGISTRY_NOT_READY if connected else ErrorCode.SERVICE_UNAVAILABLE
    return _json_response(503, error_body(code, "ingress is not ready", state))


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _edge_middleware(origins: list[str]) -> Middleware:
    any_origin = "*" in origins
    allowed = frozenset(origins)

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        response: web.StreamResponse
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            code = HTTP_CODES.get(exc.status, ErrorCode.INTERNAL_ERROR)
            message = exc.reason if exc.status < 500 else "internal error"
            response = _json_response(exc.status, error_body(code, message))
            if exc.status == 405:
                allow = exc.headers.get("Allow")
                if allow:
                    response.headers["Allow"] = allow
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            response = _json_response(500, error_body(ErrorCode.INTERNAL_ERROR, "internal error"))
        origin = request.headers.get("Origin")
        if origin is not None and (any_origin or origin in allowed):
            response.headers["Access-Control-Allow-Origin"] = "*" if any_origin else origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
            if not any_origin:
                response.headers["Vary"] = "Origin"
        return response

    return middleware


async def _broker(app: web.Application) -> AsyncIterator[None]:
    """The broker link (reconnecting by itself) and the event flusher; waits for the first
    session at start, drains the events at stop."""
    link, events, batcher = app[LINK], app[EVENTS], app[BATCHER]
    link_task = asyncio.create_task(link.run())
    flusher = asyncio.create_task(events.run())
    try:
        await asyncio.wait_for(link.connected.wait(), app[SETTINGS].ingress_registry_timeout_s * 3)
    except TimeoutError:
        log.error("no broker session yet; ingress answers 503 until RabbitMQ is reachable")
    try:
        yield
    finally:
        flusher.cancel()
        await asyncio.wait([flusher], timeout=1.0)
        batcher.close()
        await events.drain(timeout_s=5.0)
        link_task.cancel()
        # A session stuck in a broker call must not hold the shutdown: wait a little, move on.
        await asyncio.wait([link_task], timeout=3.0)


def create_app(settings: IngressSettings) -> web.Application:
    """The ingress app for these settings; the broker is reached when the app starts."""
    app = web.Application(
        client_max_size=settings.ingress_max_body_bytes,
        middlewares=[_edge_middleware(settings.ingress_cors_origins)],
    )
    metrics_ = IngressMetrics()
    registry = Registry(settings.ingress_default_rate_limit_per_minute)
    batcher = MicroBatcher(
        settings.ingress_batch_max_rows,
        settings.ingress_batch_max_wait_ms / 1000.0,
        settings.ingress_request_timeout_s,
        on_batch_sent=metrics_.batch_sent,
        max_inflight=settings.ingress_batch_max_inflight,
    )
    events = EventPublisher(
        settings.ingress_id,
        flush_s=settings.ingress_events_flush_ms / 1000.0,
        flush_max=settings.ingress_events_flush_max,
        buffer_max=settings.ingress_events_buffer_max,
    )
    metrics_.bind(metrics_.event_buffer, lambda: float(events.depth))
    metrics_.bind(metrics_.events_published, lambda: float(events.published))
    metrics_.bind(metrics_.events_dropped, lambda: float(events.dropped))
    metrics_.bind(metrics_.registry_apis, lambda: float(len(registry)))
    metrics_.bind(metrics_.inflight, lambda: float(batcher.waiting))
    app[SETTINGS] = settings
    app[METRICS] = metrics_
    app[REGISTRY] = registry
    app[BATCHER] = batcher
    app[EVENTS] = events
    app[LINK] = BrokerLink(settings, batcher, events, registry, metrics_)
    app[SERVICE] = PredictionService(settings, registry, RateLimiter(), batcher, events, metrics_)
    app.router.add_post("/api/predict/{api_id}", predict)
    app.router.add_route("OPTIONS", "/api/predict/{api_id}", preflight)
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics)
    app.cleanup_ctx.append(_broker)
    return app
