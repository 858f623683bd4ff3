"""The ingress application: ``create_app(settings)`` wires the plain classes to HTTP and AMQP."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from infra import http
from ingress import cors, tracing
from ingress.admission import Admission
from ingress.batcher import MicroBatcher
from ingress.broker import BrokerLink
from ingress.errors import IngressError, error_body
from ingress.events import EventPublisher, EventSpool
from ingress.feedback import FeedbackBudget, FeedbackService
from ingress.feedback import add_routes as add_feedback_routes
from ingress.metrics import IngressMetrics
from ingress.oip import add_routes as add_oip_routes
from ingress.openapi import OPENAPI_JSON
from ingress.ratelimit import RateLimiter, ShareBook
from ingress.registry import Registry
from ingress.service import PredictionService
from ingress.settings import IngressSettings
from schemas import ErrorCode
from schemas.trace import TRACEPARENT

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
        try:
            return await http.read_body(request, limit)
        except http.BodyError as exc:
            raise IngressError(exc.status, ErrorCode(exc.code), exc.message, exc.details) from None

    answer = await service.predict(
        request.match_info["api_id"],
        _api_key(request),
        request.headers.get("Content-Type", ""),
        read_body,
    )
    return web.Response(status=answer.status, body=answer.body, headers=answer.headers)


async def health(request: web.Request) -> web.Response:
    # Name and instance id: `modelgate up` calls a service ready only when it answers as itself.
    body = {"status": "ok", "service": "ingress", "instance_id": request.app[SETTINGS].ingress_id}
    return _json_response(200, orjson.dumps(body))


async def ready(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    batcher = request.app[BATCHER]
    link = request.app[LINK]
    connected = link.connected.is_set()
    peers = link.peers
    # Rate-limit shares need the other replicas known: its hello answered (one round trip).
    peers_known = peers is None or peers.settled.is_set()
    state = {
        "broker": connected,
        "registry": registry.ready,
        "apis": len(registry),
        "predictors_online": batcher.predictors_online,
        "replicas": len(peers.book.live()) if peers is not None else 1,
        "peers_known": peers_known,
    }
    serving = (
        batcher.predictors_online or not request.app[SETTINGS].ingress_ready_requires_predictor
    )
    if connected and registry.ready and serving and peers_known:
        return _json_response(200, orjson.dumps({"status": "ready", **state}))
    code = (
        ErrorCode.REGISTRY_NOT_READY
        if connected and not registry.ready
        else ErrorCode.SERVICE_UNAVAILABLE
    )
    return _json_response(503, error_body(code, "ingress is not ready", state))


async def openapi_document(request: web.Request) -> web.Response:
    """This service's OpenAPI document (the prediction route, health, readiness, metrics)."""
    return _json_response(200, OPENAPI_JSON)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _edge_middleware(settings: IngressSettings) -> Middleware:
    """Everything ingress does around each handler, in one middleware (each layer of
    middleware costs a coroutine per request; on the prediction route that was ~10% of
    ingress's CPU): the body deadline; CORS preflights answered before anything else runs; the
    request's trace (``traceparent`` read, and written on every answer); aiohttp's errors and
    any unhandled exception as JSON errors; CORS and ``Server-Timing`` headers; the security
    headers."""
    timeout_s = settings.http_body_timeout_s
    policy = cors.Cors(settings.ingress_cors_origins)

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        # Armed first, for preflights too: a body still arriving after the answer (read and
        # dropped by aiohttp) is cut off at the deadline.
        deadline = http.arm_body_deadline(request, timeout_s)
        browser = cors.cors_path(request.path)
        allowed = policy.allowed(request) if browser else None
        if browser and request.method == "OPTIONS":
            response: web.StreamResponse = policy.preflight(allowed)
            http.add_security_headers(response)
            return response
        started = time.perf_counter()
        trace = tracing.request_trace(request)
        token = tracing.enter(trace)
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
        finally:
            tracing.leave(token)
            if deadline is not None and request.content.is_eof():
                deadline.cancel()  # else it stays armed: it also ends a lingering read
        if not response.prepared:
            response.headers[TRACEPARENT] = trace.traceparent()
            if browser:
                policy.finish(response, allowed, started)
            http.add_security_headers(response)
        return response

    return middleware


async def _broker(app: web.Application) -> AsyncIterator[None]:
    """The broker link (reconnecting by itself) and the event flusher; waits for the first
    session at start, drains the events at stop."""
    link, events, batcher = app[LINK], app[EVENTS], app[BATCHER]
    # Before the first request: what an earlier run left unconfirmed goes first.
    events.open_spool()
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
        # Shadow calls in flight get their answers (and events) while the batcher still can.
        await app[SERVICE].shadows.stop(timeout_s=2.0)
        batcher.close()
        await events.drain(timeout_s=5.0)
        events.close_spool()
        link_task.cancel()
        # A session stuck in a broker call must not hold the shutdown: wait a little, move on.
        await asyncio.wait([link_task], timeout=3.0)


def create_app(settings: IngressSettings) -> web.Application:
    """The ingress app for these settings; the broker is reached when the app starts."""
    app = web.Application(
        client_max_size=settings.ingress_max_body_bytes,
        middlewares=[_edge_middleware(settings)],
        handler_args=http.handler_args(settings),
    )
    registry = Registry(
        settings.ingress_default_rate_limit_per_minute, settings.ingress_warm_switch_timeout_s
    )
    metrics_ = IngressMetrics(
        settings.ingress_metrics_max_apis, lambda api_id: registry.get(api_id) is not None
    )
    batcher = MicroBatcher(
        settings.ingress_batch_max_rows,
        settings.ingress_batch_max_wait_ms / 1000.0,
        settings.ingress_request_timeout_s,
        on_batch_sent=metrics_.batch_sent,
        max_inflight=settings.ingress_batch_max_inflight,
        admission=Admission(
            settings.ingress_max_queue_delay_ms / 1000.0,
            settings.ingress_max_inflight_rows,
            settings.ingress_batch_max_rows,
            settings.ingress_shed_after_ms / 1000.0,
        ),
    )
    events = EventPublisher(
        settings.ingress_id,
        flush_s=settings.ingress_events_flush_ms / 1000.0,
        flush_max=settings.ingress_events_flush_max,
        buffer_max=settings.ingress_events_buffer_max,
        spool=EventSpool(
            Path(settings.ingress_events_spool_dir), settings.ingress_events_spool_segment_bytes
        )
        if settings.ingress_events_spool_dir
        else None,
    )
    metrics_.bind(metrics_.event_buffer, lambda: float(events.depth))
    metrics_.bind(metrics_.events_published, lambda: float(events.published))
    metrics_.bind(metrics_.events_dropped, lambda: float(events.dropped))
    metrics_.bind(metrics_.registry_apis, lambda: float(len(registry)))
    metrics_.bind(metrics_.warm_switches_pending, lambda: float(registry.pending_switches))
    metrics_.bind(metrics_.warm_switches_timed_out, lambda: float(registry.switches_timed_out))
    metrics_.bind(metrics_.inflight, lambda: float(batcher.waiting))
    metrics_.bind(metrics_.rows_waiting, lambda: float(batcher.admission.rows_pending))
    metrics_.bind(metrics_.queue_delay, lambda: batcher.admission.expected_delay_s)
    app[SETTINGS] = settings
    app[METRICS] = metrics_
    app[REGISTRY] = registry
    app[BATCHER] = batcher
    app[EVENTS] = events
    # Each replica's share of every rate limit (the whole limit while it knows no peer).
    shares = ShareBook(
        settings.ingress_id,
        expire_after_s=settings.ingress_peer_heartbeat_s
        * (settings.ingress_peer_expire_heartbeats + 0.5),
    )
    limiter = RateLimiter(shares=shares)
    metrics_.bind(metrics_.replicas_live, lambda: float(len(shares.live())))
    app[LINK] = BrokerLink(settings, batcher, events, registry, metrics_, limiter)
    app[SERVICE] = service = PredictionService(
        settings, registry, limiter, batcher, events, metrics_
    )
    metrics_.bind(metrics_.shadow_inflight, lambda: float(service.shadows.inflight))
    app.router.add_post("/api/predict/{api_id}", predict)
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi_document)
    add_oip_routes(app, service, ready, _api_key)  # Open Inference Protocol V2: /v2/...
    add_feedback_routes(  # ground truth of predictions: /api/predict/{api_id}/feedback
        app,
        FeedbackService(
            registry,
            FeedbackBudget(settings.ingress_feedback_items_per_minute),
            app[LINK].publish_feedback,
            settings.ingress_id,
            settings.ingress_feedback_max_body_bytes,
        ),
    )
    app.cleanup_ctx.append(_broker)
    return app
