"""Prometheus metrics of the management API, and who may read them.

Series: HTTP requests by route template (``/api/apis/{api_id}``, never the path itself, so no id,
username or value from a request becomes a label), method and status; their duration; requests
being answered. The route templates are the route table's, so the label values are bounded.

Unlike ingress, predictors and the metrics consumer (whose ``/metrics`` are on their own loopback
port, or ingress's, which only serves predictions), ``/metrics`` here sits on the port of the
dashboard, which is often exposed. So it answers only:

- with ``Authorization: Bearer <MODELGATE_MANAGEMENT_METRICS_TOKEN>`` when that setting is set
  (a Prometheus server uses ``authorization: {credentials_file: ...}``), from anywhere;
- when it is not set, to a client on the loopback interface whose request came through no proxy
  (no ``Forwarded``, ``X-Forwarded-For`` or ``X-Real-IP`` header): what runs on the machine.

Anything else gets 403 ``FORBIDDEN`` (no metric leaks), the same error shape as every route.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from management_api.errors import Forbidden

PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")
UNMATCHED = "unmatched"
"""``route`` of requests no route took (404s): any path may be sent, so none becomes a label."""


class ManagementMetrics:
    """HTTP requests by route template, method and status; duration; in flight."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "management_http_requests_total",
            "Requests answered, by route template, method and HTTP status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "management_http_request_duration_seconds",
            "Time from request to answer",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=self.registry,
        )
        self.inflight = Gauge(
            "management_http_requests_inflight",
            "Requests being answered",
            registry=self.registry,
        )

    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        """Counts every answer, errors included (put it outside the error mapping)."""

        @web.middleware
        async def count(
            request: web.Request,
            handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        ) -> web.StreamResponse:
            started = time.perf_counter()
            self.inflight.inc()
            status = 500
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as exc:
                status = exc.status
                raise
            finally:
                self.inflight.dec()
                self.duration.observe(time.perf_counter() - started)
                self.requests.labels(_route(request), request.method, str(status)).inc()

        return count

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _route(request: web.Request) -> str:
    info = request.match_info
    if isinstance(info, web.UrlMappingMatchInfo) and not info.http_exception:
        canonical = info.route.resource.canonical if info.route.resource is not None else ""
        if canonical:
            return canonical
    return UNMATCHED


def _loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def may_read(request: web.Request, token: str) -> bool:
    """Whether this request may read ``/metrics`` (see the module's docstring)."""
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), token.encode()
        )
    if any(name in request.headers for name in PROXY_HEADERS):
        return False
    return _loopback(request.remote)


METRICS = web.AppKey("management_metrics", ManagementMetrics)
METRICS_TOKEN = web.AppKey("management_metrics_token", str)
"""Kept here rather than in ``keys`` (which imports every service class): only this module and
``create_app`` use them."""


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus text, for the readers the module's docstring names."""
    if not may_read(request, request.app[METRICS_TOKEN]):
        raise Forbidden(
            "metrics are readable from this machine's loopback interface, or with "
            "Authorization: Bearer <MODELGATE_MANAGEMENT_METRICS_TOKEN>"
        )
    body = request.app[METRICS].exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
