"""Monitoring for the routes: ownership from the metadata DB, figures from ClickHouse
(``management_api.queries``), sorting by usage, and alerts against each API's thresholds."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, TypeVar

from aiohttp import web
from clickhouse_connect.driver.exceptions import OperationalError

from management_api.accounts import Principal
from management_api.errors import InvalidInput, ServiceUnavailable, TooManyRequests
from management_api.exports import ApiFilter, Exports
from management_api.monitoring_sql import QueryError
from management_api.performance import measure
from management_api.queries import MonitoringQueries
from schemas import ApiChanged, ApiChangeKind, ApiStatus, Task
from schemas.monitoring import (
    Alert,
    AlertList,
    ApiStats,
    ApiSummary,
    Bucket,
    Overview,
    Range,
    RequestPage,
    Resources,
    StatusFilter,
    TimeSeries,
)
from schemas.performance import Performance
from schemas.resources import AlertThresholds, ApiPublic, SortKey

log = logging.getLogger(__name__)

T = TypeVar("T")
SplitBy = Literal["version"]
CRITICAL_FACTOR = 1.5
"""A value this many times its threshold is critical rather than a warning."""
MIN_REQUESTS_FOR_RATES = 10
"""Error rate and p95 alerts need this many requests in 24 h to mean something."""

# Drift and live-performance reports each scan a sample of logged inputs or the feedback join
# (bounded in rows and server time). One user runs at most HEAVY_REPORTS_PER_USER at once; more
# wait their turn (a page switching ranges quickly), up to HEAVY_REPORT_WAITING of them for at
# most HEAVY_REPORT_WAIT_S, so a script firing reports in parallel gets 429s instead of taking
# ClickHouse's connections from everyone else.
HEAVY_REPORTS_PER_USER = 2
HEAVY_REPORT_WAITING = 4
HEAVY_REPORT_WAIT_S = 3.0


@dataclass
class _ReportSlots:
    """One user's running and waiting heavy reports."""

    running: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(HEAVY_REPORTS_PER_USER)
    )
    holding: int = 0
    waiting: int = 0


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

MARKER_OF: dict[ApiChangeKind, str] = {
    ApiChangeKind.CREATED: "created",
    ApiChangeKind.DEPLOYED: "deploy",
    ApiChangeKind.KEY_ROTATED: "key_rotated",
    ApiChangeKind.STATUS: "status",
}
"""The control events recorded as chart markers (a rename or a threshold change is not one)."""

_REQUEST: ContextVar[web.Request | None] = ContextVar("monitoring_request", default=None)
"""The request being handled, so a change's marker names who made it (``current_actor``)."""


@web.middleware
async def actor_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Keep the request in a context variable while it is handled (its principal is set later,
    by the route's authentication, and read when a change is recorded)."""
    token = _REQUEST.set(request)
    try:
        return await handler(request)
    finally:
        _REQUEST.reset(token)


def current_actor() -> str:
    """The username of the caller whose request is being handled ("" outside a request)."""
    from management_api.keys import PRINCIPAL  # here: keys imports this module

    request = _REQUEST.get()
    who = None if request is None else request.get(PRINCIPAL)
    return "" if who is None else who.username


UNREACHABLE: tuple[type[Exception], ...] = (OperationalError, ConnectionError)
"""What an unreachable ClickHouse raises: clickhouse-connect wraps refused, reset and timed-out
connections (and a 429/503/504 still answered after its retries) as ``OperationalError``; a bare
``ConnectionError`` from the socket layer is the same outage."""


def sort_apis(apis: list[ApiPublic], sort: SortKey, descending: bool) -> list[ApiPublic]:
    """Order APIs by a column of the list; usage columns read the attached stats."""

    def key(api: ApiPublic) -> tuple[float | str | datetime, str]:
        stats = api.stats or ApiSummary()
        value: float | str | datetime
        if sort == "name":
            value = api.name.lower()
        elif sort == "created_at":
            value = api.created_at
        elif sort == "requests":
            value = float(stats.total_requests)
        elif sort == "last_used":
            value = stats.last_request_at or _EPOCH
        else:
            value = stats.error_rate
        return value, api.id

    return sorted(apis, key=key, reverse=descending)


def serving_versions(api: ApiPublic) -> list[str]:
    """The model store keys an API has loaded in the predictors: the version it serves and a
    canary or shadow version beside it (their memory is the API's memory)."""
    versions = [api.model_version_id]
    if api.traffic is not None and api.traffic.model_version_id not in versions:
        versions.append(api.traffic.model_version_id)
    return versions


def compute_alerts(stats: ApiStats, thresholds: AlertThresholds) -> list[Alert]:
    """The thresholds an API crosses now: CPU, memory, error rate and p95 over its stats."""
    checks: list[
        tuple[Literal["cpu_percent", "memory_mb", "error_rate", "p95_ms"], float, float, str]
    ] = [
        ("cpu_percent", stats.cpu_percent, thresholds.cpu_percent, "CPU {v:.1f}% above {t:g}%"),
        ("memory_mb", stats.memory_mb, thresholds.memory_mb, "memory {v:.0f} MB above {t:g} MB"),
    ]
    if stats.requests_in_range >= MIN_REQUESTS_FOR_RATES:
        checks += [
            (
                "error_rate",
                stats.error_rate,
                thresholds.error_rate,
                "error rate {v:.1%} above {t:.1%}",
            ),
            ("p95_ms", stats.p95_ms, thresholds.p95_ms, "p95 latency {v:.0f} ms above {t:g} ms"),
        ]
    alerts = []
    for metric, value, threshold, template in checks:
        if value > threshold:
            critical = value >= threshold * CRITICAL_FACTOR and threshold > 0
            alerts.append(
                Alert(
                    metric=metric,
                    value=round(value, 4),
                    threshold=threshold,
                    severity="critical" if critical else "warning",
                    message=template.format(v=value, t=threshold),
                )
            )
    return alerts


QueriesFactory = Callable[[], Awaitable[MonitoringQueries]]


class Monitoring:
    """Answers the monitoring routes for the APIs a caller may see.

    The ClickHouse client is made on first use, so the service starts (and manages APIs) while
    ClickHouse is still coming up or down; monitoring routes answer 503 until it is back.
    """

    def __init__(self, exports: Exports, connect: QueriesFactory, timeout_s: float) -> None:
        self._exports = exports
        self._connect = connect
        self._queries: MonitoringQueries | None = None
        self._lock = asyncio.Lock()
        self._timeout_s = timeout_s
        self._recording: set[asyncio.Task[None]] = set()
        self._heavy: dict[str, _ReportSlots] = {}

    @asynccontextmanager
    async def heavy_report(self, principal: Principal) -> AsyncIterator[None]:
        """Run within one of the caller's report slots, waiting a little for one; else 429."""
        slots = self._heavy.setdefault(principal.user_id, _ReportSlots())
        if slots.holding >= HEAVY_REPORTS_PER_USER and slots.waiting >= HEAVY_REPORT_WAITING:
            raise self._busy()
        slots.waiting += 1
        try:
            await asyncio.wait_for(slots.running.acquire(), HEAVY_REPORT_WAIT_S)
        except BaseException as exc:  # no slot in time, or the client went away
            slots.waiting -= 1
            self._forget(principal.user_id, slots)
            if isinstance(exc, TimeoutError):
                raise self._busy() from None
            raise
        slots.waiting -= 1
        slots.holding += 1
        try:
            yield
        finally:
            slots.holding -= 1
            slots.running.release()
            self._forget(principal.user_id, slots)

    def _forget(self, user_id: str, slots: _ReportSlots) -> None:
        if slots.holding == 0 and slots.waiting == 0 and self._heavy.get(user_id) is slots:
            del self._heavy[user_id]

    @staticmethod
    def _busy() -> TooManyRequests:
        return TooManyRequests(
            f"at most {HEAVY_REPORTS_PER_USER} drift or performance reports run at once per "
            "user, and others are waiting; retry when one has answered",
            details={"limit": HEAVY_REPORTS_PER_USER, "retry_after_s": 1},
            headers={"Retry-After": "1"},
        )

    async def queries(self) -> MonitoringQueries:
        if self._queries is None:
            async with self._lock:
                if self._queries is None:
                    self._queries = await asyncio.wait_for(self._connect(), self._timeout_s)
        return self._queries

    async def close(self) -> None:
        if self._recording:
            await asyncio.wait(self._recording, timeout=self._timeout_s)
        if self._queries is not None:
            await self._queries.client.close()
            self._queries = None

    async def _ask(self, call: Callable[[MonitoringQueries], Awaitable[T]]) -> T:
        try:
            return await asyncio.wait_for(self._run(call), self._timeout_s)
        except asyncio.CancelledError:
            raise
        except QueryError as exc:
            raise InvalidInput(str(exc)) from exc
        except TimeoutError as exc:
            raise ServiceUnavailable("the monitoring store did not answer in time; retry") from exc
        except UNREACHABLE as exc:
            # Only an outage is a 503; anything else (a query ClickHouse refuses, a bug) goes on
            # to the error middleware: logged with its traceback, answered 500 with a request id.
            log.warning("monitoring store unreachable: %s: %s", type(exc).__name__, exc)
            raise ServiceUnavailable(
                "the monitoring store (ClickHouse) is unavailable; retry shortly"
            ) from exc

    async def _run(self, call: Callable[[MonitoringQueries], Awaitable[T]]) -> T:
        return await call(await self.queries())

    async def attach_summaries(self, apis: list[ApiPublic], required: bool) -> list[ApiPublic]:
        """Fill ``stats`` of each API; when ClickHouse is down, leave them None unless required."""
        if not apis:
            return apis
        versions = {a.id: serving_versions(a) for a in apis}
        try:
            summaries, usage = await self._ask(
                lambda q: asyncio.gather(q.summaries([a.id for a in apis]), q.usage(versions))
            )
        except ServiceUnavailable:
            if required:
                raise
            return apis
        result = []
        for a in apis:
            cpu_percent, memory_mb = usage.get(a.id, (0.0, 0.0))
            summary = summaries.get(a.id, ApiSummary()).model_copy(
                update={"cpu_percent": cpu_percent, "memory_mb": memory_mb}
            )
            result.append(a.model_copy(update={"stats": summary}))
        return result

    async def list_apis(
        self,
        principal: Principal,
        filters: ApiFilter,
        sort: SortKey,
        descending: bool,
        require_stats: bool = False,
    ) -> list[ApiPublic]:
        apis = await self._exports.search(principal, filters)
        needs_stats = require_stats or sort in {"requests", "last_used", "error_rate"}
        apis = await self.attach_summaries(apis, required=needs_stats)
        return sort_apis(apis, sort, descending)

    async def overview(self, principal: Principal) -> Overview:
        apis = await self._exports.search(principal, ApiFilter())
        active = sum(1 for a in apis if a.status == ApiStatus.ACTIVE)
        overview = await self._ask(lambda q: q.overview([a.id for a in apis], active))
        return overview.model_copy(update={"total_apis": len(apis), "active_apis": active})

    async def stats(
        self, principal: Principal, api_id: str, range_: Range, by: SplitBy | None = None
    ) -> ApiStats:
        api = await self._exports.get(principal, api_id)
        stats = await self._ask(lambda q: q.api_stats(api.id, range_, serving_versions(api)))
        if by == "version":
            numbers = await self._exports.version_numbers(principal, api_id)
            classifier = api.task is Task.CLASSIFICATION
            by_version = await self._ask(
                lambda q: q.version_stats(api.id, range_, numbers, classifier)
            )
            stats = stats.model_copy(update={"by_version": by_version})
        return stats

    async def time_series(
        self,
        principal: Principal,
        api_id: str,
        range_: Range,
        bucket: Bucket,
        by: SplitBy | None = None,
    ) -> TimeSeries:
        api = await self._exports.get(principal, api_id)
        series = await self._ask(lambda q: q.time_series(api.id, range_, bucket))
        if by == "version":
            numbers = await self._exports.version_numbers(principal, api_id)
            by_version = await self._ask(
                lambda q: q.version_time_series(api.id, range_, bucket, numbers)
            )
            series = series.model_copy(update={"by_version": by_version})
        return series

    async def overview_time_series(
        self, principal: Principal, range_: Range, bucket: Bucket
    ) -> TimeSeries:
        """Requests, errors and latency per bucket over every API the caller can see."""
        ids = [a.id for a in await self._exports.search(principal, ApiFilter())]
        return await self._ask(lambda q: q.time_series(None, range_, bucket, api_ids=ids))

    def record_change(self, change: ApiChanged) -> None:
        """Store a deploy, key rotation, status change or creation as a chart marker, in the
        background: never raises nor delays the change (a marker lost to an outage is logged)."""
        kind = MARKER_OF.get(change.kind)
        if kind is None or change.api is None:
            return
        record = change.api
        detail = record.status.value if change.kind is ApiChangeKind.STATUS else ""
        actor = current_actor()

        async def store() -> None:
            try:
                await asyncio.wait_for(
                    self._run(
                        lambda q: q.record_change(
                            change.api_id, change.at, kind, record.version_number, actor, detail
                        )
                    ),
                    self._timeout_s,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("chart marker %s of %s not stored: %r", kind, change.api_id, exc)

        task = asyncio.create_task(store())
        self._recording.add(task)
        task.add_done_callback(self._recording.discard)

    async def requests(
        self,
        principal: Principal,
        api_id: str,
        page: int,
        page_size: int,
        status: StatusFilter | None,
    ) -> RequestPage:
        api = await self._exports.get(principal, api_id)
        return await self._ask(lambda q: q.request_history(api.id, page, page_size, status))

    async def performance(self, principal: Principal, api_id: str, range_: Range) -> Performance:
        """Live accuracy / F1 or MAE / RMSE per version from feedback (``performance``)."""
        api = await self._exports.get(principal, api_id)
        versions = await self._exports.version_infos(principal, api_id)
        async with self.heavy_report(principal):
            return await self._ask(lambda q: measure(q, api.id, api.task, range_, versions))

    async def resources(self, principal: Principal, api_id: str, range_: Range) -> Resources:
        api = await self._exports.get(principal, api_id)
        return await self._ask(lambda q: q.resources(api.id, range_, serving_versions(api)))

    async def alerts(self, principal: Principal, api_id: str) -> AlertList:
        api = await self._exports.get(principal, api_id)
        stats = await self._ask(lambda q: q.api_stats(api.id, "24h", serving_versions(api)))
        return AlertList(items=compute_alerts(stats, api.alert_thresholds))
