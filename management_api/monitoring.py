"""Monitoring for the routes: ownership from the metadata DB, figures from ClickHouse
(``management_api.queries``), sorting by usage, and alerts against each API's thresholds."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Literal, TypeVar

from management_api.accounts import Principal
from management_api.errors import InvalidInput, ServiceUnavailable
from management_api.exports import ApiFilter, Exports
from management_api.queries import MonitoringQueries, QueryError
from schemas import ApiStatus
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
from schemas.resources import AlertThresholds, ApiPublic, SortKey

log = logging.getLogger(__name__)

T = TypeVar("T")
CRITICAL_FACTOR = 1.5
"""A value this many times its threshold is critical rather than a warning."""
MIN_REQUESTS_FOR_RATES = 10
"""Error rate and p95 alerts need this many requests in 24 h to mean something."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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

    async def queries(self) -> MonitoringQueries:
        if self._queries is None:
            async with self._lock:
                if self._queries is None:
                    self._queries = await asyncio.wait_for(self._connect(), self._timeout_s)
        return self._queries

    async def close(self) -> None:
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
        except Exception as exc:
            log.warning("monitoring query failed: %s: %s", type(exc).__name__, exc)
            raise ServiceUnavailable(
                "the monitoring store (ClickHouse) is unavailable; retry shortly"
            ) from exc

    async def _run(self, call: Callable[[MonitoringQueries], Awaitable[T]]) -> T:
        return await call(await self.queries())

    async def attach_summaries(self, apis: list[ApiPublic], required: bool) -> list[ApiPublic]:
        """Fill ``stats`` of each API; when ClickHouse is down, leave them None unless required."""
        if not apis:
            return apis
        try:
            summaries = await self._ask(lambda q: q.summaries([a.id for a in apis]))
        except ServiceUnavailable:
            if required:
                raise
            return apis
        return [a.model_copy(update={"stats": summaries.get(a.id, ApiSummary())}) for a in apis]

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

    async def stats(self, principal: Principal, api_id: str, range_: Range) -> ApiStats:
        api = await self._exports.get(principal, api_id)
        return await self._ask(lambda q: q.api_stats(api.id, range_, [api.model_version_id]))

    async def time_series(
        self, principal: Principal, api_id: str, range_: Range, bucket: Bucket
    ) -> TimeSeries:
        api = await self._exports.get(principal, api_id)
        return await self._ask(lambda q: q.time_series(api.id, range_, bucket))

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

    async def resources(self, principal: Principal, api_id: str, range_: Range) -> Resources:
        api = await self._exports.get(principal, api_id)
        return await self._ask(lambda q: q.resources(api.id, range_, [api.model_version_id]))

    async def alerts(self, principal: Principal, api_id: str) -> AlertList:
        api = await self._exports.get(principal, api_id)
        stats = await self._ask(lambda q: q.api_stats(api.id, "24h", [api.model_version_id]))
        return AlertList(items=compute_alerts(stats, api.alert_thresholds))
