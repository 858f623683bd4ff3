"""Monitoring queries over ClickHouse for the management API.

Pure builders return SQL text with server-side parameters (``{name:Type}``); only the database
name, checked against an identifier pattern, is written into the text. ``MonitoringQueries`` runs
them on one clickhouse-connect async client and shapes rows into ``schemas.monitoring`` models.

Dashboards read the rollups (``request_stats_1m`` for the last day, ``request_stats_1h`` beyond,
``request_stats_1d`` for all-time figures);
the raw ``request_events`` table is read only for request history and slowest requests.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from infra.clickhouse import is_identifier
from schemas.monitoring import (
    BUCKET_SECONDS,
    RANGE_SECONDS,
    ApiStats,
    ApiSummary,
    Bucket,
    HistogramBucket,
    Overview,
    Range,
    RequestPage,
    RequestRecord,
    Resources,
    SeriesPoint,
    StatusFilter,
    TimeSeries,
    ValuePoint,
    WorkerResources,
)

# Upper edges of the latency histogram in the rollups' map; 0 stands for +inf (see migration 0001).
HISTOGRAM_EDGES_MS: tuple[int, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 0)
QUANTILES = "0.5, 0.9, 0.95, 0.99"
RECORD_COLUMNS = (
    "event_id, ts, status_code, error_code, total_ms, inference_ms, model_version, "
    "prediction, input, output, worker_id"
)
STATUS_CONDITIONS: dict[str, str] = {
    "success": "status_code < 400",
    "error": "status_code >= 400",
    "4xx": "status_code >= 400 AND status_code < 500",
    "5xx": "status_code >= 500",
}
# A worker counts as "now" in resources when sampled within this many seconds.
RECENT_SECONDS = 300


class QueryError(ValueError):
    """A monitoring query was asked for something it cannot answer (bad range, bucket, filter)."""


def check_database(database: str) -> str:
    if not is_identifier(database):
        raise QueryError(f"invalid ClickHouse database name {database!r}")
    return database


def check_range(range_: str) -> int:
    if range_ not in RANGE_SECONDS:
        raise QueryError(f"range must be one of {sorted(RANGE_SECONDS)}, not {range_!r}")
    return RANGE_SECONDS[range_]


def check_bucket(bucket: str) -> int:
    if bucket not in BUCKET_SECONDS:
        raise QueryError(f"bucket must be one of {sorted(BUCKET_SECONDS)}, not {bucket!r}")
    return BUCKET_SECONDS[bucket]


def rollup_for_bucket(bucket: str) -> str:
    return "request_stats_1m" if check_bucket(bucket) < 3_600 else "request_stats_1h"


@dataclass(frozen=True)
class Window:
    """A half-open span [start, end) of whole buckets ending with the bucket holding ``now``."""

    start: datetime
    end: datetime
    step_seconds: int

    @property
    def buckets(self) -> int:
        return int((self.end - self.start).total_seconds()) // self.step_seconds


def bucket_window(now: datetime, range_: str, bucket: str) -> Window:
    """Buckets covering ``range_`` up to now: ceil(range / bucket) of them, the last one current."""
    span = check_range(range_)
    step = check_bucket(bucket)
    epoch = int(now.timestamp())
    current = epoch - epoch % step
    count = max(1, math.ceil(span / step))
    start = current - (count - 1) * step
    return Window(
        start=datetime.fromtimestamp(start, UTC),
        end=datetime.fromtimestamp(current + step, UTC),
        step_seconds=step,
    )


# ---------------------------------------------------------------------------------------------
# Pure SQL builders
# ---------------------------------------------------------------------------------------------


def summaries_totals_sql(database: str) -> str:
    """All-time totals and latency per API from the daily rollup (compact TDigest states)."""
    db = check_database(database)
    return f"""
SELECT
    api_id,
    sum(requests) AS total,
    sum(successes) AS ok,
    if(sum(latency_count) = 0, 0, sum(latency_sum_ms) / sum(latency_count)) AS latency_avg,
    quantilesTDigestMerge({QUANTILES})(latency_quantiles) AS q,
    max(last_ts) AS last_at
FROM {db}.request_stats_1d
WHERE api_id IN {{api_ids:Array(String)}}
GROUP BY api_id
"""


def overview_totals_sql(database: str) -> str:
    """All-time totals and latency over a set of APIs, from the daily rollup."""
    db = check_database(database)
    return f"""
SELECT
    sum(requests) AS total,
    sum(successes) AS ok,
    if(sum(latency_count) = 0, 0, sum(latency_sum_ms) / sum(latency_count)) AS latency_avg,
    quantilesTDigestMerge({QUANTILES})(latency_quantiles) AS q
FROM {db}.request_stats_1d
WHERE api_id IN {{api_ids:Array(String)}}
"""


def summaries_recent_sql(database: str) -> str:
    """Requests per API in the last 24 h and 7 d, exact to the minute yet cheap: whole hours
    from the hourly rollup, the partial hour at each window's start from the minute rollup."""
    db = check_database(database)
    return f"""
SELECT api_id, sum(n_24h) AS last_24h, sum(n_7d) AS last_7d
FROM (
    SELECT api_id,
        if(bucket >= toDateTime({{hour_24h:UInt32}}, 'UTC'), requests, 0) AS n_24h,
        requests AS n_7d
    FROM {db}.request_stats_1h
    WHERE api_id IN {{api_ids:Array(String)}}
      AND bucket >= toDateTime({{hour_7d:UInt32}}, 'UTC')
    UNION ALL
    SELECT api_id,
        if(bucket >= toDateTime({{since_24h:UInt32}}, 'UTC')
           AND bucket < toDateTime({{hour_24h:UInt32}}, 'UTC'), requests, 0) AS n_24h,
        if(bucket < toDateTime({{hour_7d:UInt32}}, 'UTC'), requests, 0) AS n_7d
    FROM {db}.request_stats_1m
    WHERE api_id IN {{api_ids:Array(String)}}
      AND ((bucket >= toDateTime({{since_7d:UInt32}}, 'UTC')
            AND bucket < toDateTime({{hour_7d:UInt32}}, 'UTC'))
        OR (bucket >= toDateTime({{since_24h:UInt32}}, 'UTC')
            AND bucket < toDateTime({{hour_24h:UInt32}}, 'UTC')))
)
GROUP BY api_id
"""


def recent_window_params(now: datetime) -> dict[str, int]:
    """Window starts (to the minute) and the first whole hour after each, in epoch seconds."""
    params: dict[str, int] = {}
    for name, days in (("24h", 1), ("7d", 7)):
        since = int((now - timedelta(days=days)).timestamp())
        since -= since % 60
        params[f"since_{name}"] = since
        params[f"hour_{name}"] = since + (-since) % 3600
    return params


# Range figures combine a coarse rollup for whole coarse buckets with a fine one for the partial
# coarse bucket at the range start: exact to the fine bucket, yet few (compact) states to merge.
RANGE_ROLLUPS: dict[str, tuple[str, str, int, int]] = {
    "24h": ("request_stats_1h", "request_stats_1m", 3_600, 60),
    "7d": ("request_stats_1d", "request_stats_1h", 86_400, 3_600),
    "30d": ("request_stats_1d", "request_stats_1h", 86_400, 3_600),
}
_RANGE_COLUMNS = (
    "requests, successes, errors_4xx, errors_5xx, latency_sum_ms, latency_count, "
    "latency_quantiles, latency_histogram"
)


def range_stats_sql(database: str, range_: str) -> str:
    """Counts, latency figures and histogram of one API over a range (see ``range_params``)."""
    db = check_database(database)
    check_range(range_)
    coarse, fine, _, _ = RANGE_ROLLUPS[range_]
    return f"""
SELECT
    sum(requests) AS total,
    sum(successes) AS ok,
    sum(errors_4xx) AS e4,
    sum(errors_5xx) AS e5,
    if(sum(latency_count) = 0, 0, sum(latency_sum_ms) / sum(latency_count)) AS latency_avg,
    quantilesTDigestMerge({QUANTILES})(latency_quantiles) AS q,
    sumMap(latency_histogram) AS histogram
FROM (
    SELECT {_RANGE_COLUMNS} FROM {db}.{coarse}
    WHERE api_id = {{api_id:String}} AND bucket >= toDateTime({{split:UInt32}}, 'UTC')
    UNION ALL
    SELECT {_RANGE_COLUMNS} FROM {db}.{fine}
    WHERE api_id = {{api_id:String}}
      AND bucket >= toDateTime({{since:UInt32}}, 'UTC')
      AND bucket < toDateTime({{split:UInt32}}, 'UTC')
)
"""


def range_params(now: datetime, range_: str) -> dict[str, int]:
    """Start of the range (down to the fine bucket) and the first coarse bucket after it."""
    span = check_range(range_)
    _, _, coarse_step, fine_step = RANGE_ROLLUPS[range_]
    since = int(now.timestamp()) - span
    since -= since % fine_step
    return {"since": since, "split": since + (-since) % coarse_step}


def cpu_memory_series_sql(database: str, bucket: str) -> str:
    """Per-bucket CPU percent (of one core) spent on one API, and its workers' RSS, gaps filled."""
    db = check_database(database)
    table = rollup_for_bucket(bucket)
    return f"""
SELECT
    toDateTime(intDiv(toUInt32(bucket), {{step:UInt32}}) * {{step:UInt32}}, 'UTC') AS t,
    sum(cpu_ms) / ({{step:UInt32}} * 1000) * 100 AS cpu_percent,
    max(worker_rss_max_mb) AS rss_max_mb
FROM {db}.{table}
WHERE api_id = {{api_id:String}}
  AND bucket >= toDateTime({{start:UInt32}}, 'UTC') AND bucket < toDateTime({{end:UInt32}}, 'UTC')
GROUP BY t
ORDER BY t WITH FILL
    FROM toDateTime({{start:UInt32}}, 'UTC') TO toDateTime({{end:UInt32}}, 'UTC')
    STEP {{step:UInt32}}
"""


def resource_figures_sql(database: str, bucket: str) -> str:
    """The figures of ``cpu_memory_series_sql`` without the series: CPU and RSS of the latest
    bucket with traffic, and their peaks (what the stats page needs, in one row)."""
    db = check_database(database)
    table = rollup_for_bucket(bucket)
    return f"""
SELECT
    argMaxIf(cpu, t, cpu > 0 OR rss > 0) AS cpu_now,
    max(cpu) AS cpu_peak,
    argMaxIf(rss, t, cpu > 0 OR rss > 0) AS rss_now,
    max(rss) AS rss_peak
FROM (
    SELECT bucket AS t, sum(cpu_ms) / ({{step:UInt32}} * 1000) * 100 AS cpu,
        max(worker_rss_max_mb) AS rss
    FROM {db}.{table}
    WHERE api_id = {{api_id:String}}
      AND bucket >= toDateTime({{start:UInt32}}, 'UTC')
      AND bucket < toDateTime({{end:UInt32}}, 'UTC')
    GROUP BY t
)
"""


def workers_sql(database: str) -> str:
    """Latest sample and peak RSS of each worker holding one of the given models in the range."""
    db = check_database(database)
    return f"""
SELECT
    worker_id,
    argMax(cpu_percent, ts) AS latest_cpu_percent,
    argMax(rss_mb, ts) AS latest_rss_mb,
    argMax(loaded_models, ts) AS latest_models,
    max(ts) AS last_seen,
    max(rss_mb) AS peak_rss_mb
FROM {db}.worker_samples
WHERE ts >= fromUnixTimestamp64Milli({{since_ms:Int64}}, 'UTC')
  AND hasAny(loaded_models, {{models:Array(String)}})
GROUP BY worker_id
ORDER BY worker_id
"""


def time_series_sql(database: str, bucket: str, all_apis: bool) -> str:
    """Requests, outcomes, latency and CPU per bucket, every bucket present (``WITH FILL``)."""
    db = check_database(database)
    table = rollup_for_bucket(bucket)
    where = "api_id IN {api_ids:Array(String)}" if all_apis else "api_id = {api_id:String}"
    return f"""
SELECT
    toDateTime(intDiv(toUInt32(bucket), {{step:UInt32}}) * {{step:UInt32}}, 'UTC') AS t,
    sum(requests) AS n,
    sum(successes) AS ok,
    sum(errors_4xx) AS e4,
    sum(errors_5xx) AS e5,
    if(sum(latency_count) = 0, 0, sum(latency_sum_ms) / sum(latency_count)) AS latency_avg,
    quantilesTDigestMerge({QUANTILES})(latency_quantiles) AS q,
    sum(cpu_ms) AS cpu
FROM {db}.{table}
WHERE {where}
  AND bucket >= toDateTime({{start:UInt32}}, 'UTC') AND bucket < toDateTime({{end:UInt32}}, 'UTC')
GROUP BY t
ORDER BY t WITH FILL
    FROM toDateTime({{start:UInt32}}, 'UTC') TO toDateTime({{end:UInt32}}, 'UTC')
    STEP {{step:UInt32}}
"""


def request_history_sql(database: str, status: str | None) -> str:
    """A page of one API's requests, newest first, optionally one status class only."""
    db = check_database(database)
    return f"""
SELECT {RECORD_COLUMNS}
FROM {db}.request_events
WHERE api_id = {{api_id:String}}{_status_condition(status)}
ORDER BY ts DESC
LIMIT {{limit:UInt32}} OFFSET {{offset:UInt64}}
"""


def request_count_sql(database: str, status: str | None) -> str:
    db = check_database(database)
    return f"""
SELECT count() FROM {db}.request_events
WHERE api_id = {{api_id:String}}{_status_condition(status)}
"""


def slowest_requests_sql(database: str) -> str:
    """The slowest requests of one API since a time (raw events)."""
    db = check_database(database)
    return f"""
SELECT {RECORD_COLUMNS}
FROM {db}.request_events
WHERE api_id = {{api_id:String}} AND ts >= fromUnixTimestamp64Milli({{since_ms:Int64}}, 'UTC')
ORDER BY total_ms DESC, ts DESC
LIMIT {{limit:UInt32}}
"""


def _status_condition(status: str | None) -> str:
    if status is None or status == "":
        return ""
    if status not in STATUS_CONDITIONS:
        raise QueryError(f"status must be one of {sorted(STATUS_CONDITIONS)}, not {status!r}")
    return f" AND {STATUS_CONDITIONS[status]}"


# ---------------------------------------------------------------------------------------------
# Shaping rows
# ---------------------------------------------------------------------------------------------


def finite(value: Any) -> float:
    """A float safe for JSON: NaN and infinities (an empty TDigest) become 0.0."""
    number = float(value or 0.0)
    return number if math.isfinite(number) else 0.0


def quantile(values: Sequence[Any], index: int) -> float:
    return finite(values[index]) if len(values) > index else 0.0


def utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    # An empty max(DateTime64) is the epoch: nothing was ever recorded.
    return None if value.timestamp() <= 0 else value


def histogram_buckets(counts: dict[int, int]) -> list[HistogramBucket]:
    """Every edge of the histogram in order, zero counts included; edge 0 is +inf (le_ms None)."""
    return [
        HistogramBucket(le_ms=float(edge) if edge else None, count=int(counts.get(edge, 0)))
        for edge in HISTOGRAM_EDGES_MS
    ]


def record_from_row(row: Sequence[Any]) -> RequestRecord:
    ts = utc(row[1]) or datetime.fromtimestamp(0, UTC)
    return RequestRecord(
        event_id=row[0],
        ts=ts,
        status_code=int(row[2]),
        error_code=row[3],
        total_ms=finite(row[4]),
        inference_ms=finite(row[5]),
        model_version=row[6],
        prediction=row[7],
        input=row[8],
        output=row[9],
        worker_id=row[10],
    )


def rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _epoch(value: datetime) -> int:
    """Times travel as epoch numbers (converted in SQL with 'UTC'), so no time zone of client or
    server can shift them."""
    return int(value.timestamp())


def _epoch_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


# ---------------------------------------------------------------------------------------------
# Running them
# ---------------------------------------------------------------------------------------------


class MonitoringQueries:
    """The monitoring figures of docs/api-contract.md, answered from one ClickHouse database."""

    def __init__(self, client: Any, database: str) -> None:
        self.client = client
        self.database = check_database(database)

    async def _rows(self, sql: str, parameters: dict[str, Any]) -> list[Sequence[Any]]:
        result = await self.client.query(sql, parameters=parameters)
        return list(result.result_rows)

    @staticmethod
    def _now() -> datetime:
        return datetime.now(UTC)

    async def summaries(self, api_ids: Sequence[str]) -> dict[str, ApiSummary]:
        """An ``ApiSummary`` for each id asked (zeros for an API never called)."""
        ids = list(dict.fromkeys(api_ids))
        if not ids:
            return {}
        now = self._now()
        totals, recent = await asyncio.gather(
            self._rows(summaries_totals_sql(self.database), {"api_ids": ids}),
            self._rows(
                summaries_recent_sql(self.database),
                {"api_ids": ids, **recent_window_params(now)},
            ),
        )
        recent_by_id = {row[0]: (int(row[1]), int(row[2])) for row in recent}
        result = {api_id: ApiSummary() for api_id in ids}
        for api_id, total, ok, latency_avg, q, last_at in totals:
            total, ok = int(total), int(ok)
            last_24h, last_7d = recent_by_id.get(api_id, (0, 0))
            result[api_id] = ApiSummary(
                total_requests=total,
                requests_24h=last_24h,
                requests_7d=last_7d,
                success_rate=rate(ok, total),
                error_rate=rate(total - ok, total),
                avg_ms=finite(latency_avg),
                p50_ms=quantile(q, 0),
                p95_ms=quantile(q, 2),
                p99_ms=quantile(q, 3),
                last_request_at=utc(last_at),
            )
        return result

    async def overview(self, api_ids: Sequence[str], active_apis: int | None = None) -> Overview:
        """Totals over the given APIs; ``active_apis`` comes from the metadata database."""
        ids = list(dict.fromkeys(api_ids))
        if not ids:
            return Overview(active_apis=active_apis or 0)
        totals, recent = await asyncio.gather(
            self._rows(overview_totals_sql(self.database), {"api_ids": ids}),
            self._rows(
                summaries_recent_sql(self.database),
                {"api_ids": ids, **recent_window_params(self._now())},
            ),
        )
        total, ok, latency_avg, q = totals[0]
        total = int(total or 0)
        return Overview(
            total_apis=len(ids),
            active_apis=len(ids) if active_apis is None else active_apis,
            total_requests=total,
            requests_24h=sum(int(row[1]) for row in recent),
            success_rate=rate(int(ok or 0), total),
            avg_ms=finite(latency_avg),
            p95_ms=quantile(q or [], 2),
        )

    async def api_stats(
        self, api_id: str, range_: Range, model_versions: Sequence[str] = ()
    ) -> ApiStats:
        """Everything the API detail page shows for one range (slowest: top 10 raw events)."""
        summaries, range_rows, slowest, resources = await asyncio.gather(
            self.summaries([api_id]),
            self._rows(
                range_stats_sql(self.database, range_),
                {"api_id": api_id, **range_params(self._now(), range_)},
            ),
            self.slowest_requests(api_id, range_, 10),
            self.resources(api_id, range_, model_versions, series=False),
        )
        summary = summaries[api_id]
        total, ok, e4, e5, latency_avg, q, histogram = range_rows[0]
        total, ok = int(total), int(ok)
        return ApiStats(
            range=range_,
            total_requests=summary.total_requests,
            requests_24h=summary.requests_24h,
            requests_7d=summary.requests_7d,
            requests_in_range=total,
            success_count=ok,
            errors_4xx=int(e4),
            errors_5xx=int(e5),
            success_rate=rate(ok, total),
            error_rate=rate(total - ok, total),
            avg_ms=finite(latency_avg),
            p50_ms=quantile(q, 0),
            p90_ms=quantile(q, 1),
            p95_ms=quantile(q, 2),
            p99_ms=quantile(q, 3),
            histogram=histogram_buckets(dict(histogram)),
            slowest=slowest,
            last_request_at=summary.last_request_at,
            cpu_percent=resources.cpu_percent,
            peak_cpu_percent=resources.peak_cpu_percent,
            memory_mb=resources.memory_mb,
            peak_memory_mb=resources.peak_memory_mb,
        )

    async def time_series(
        self,
        api_id: str | None,
        range_: Range,
        bucket: Bucket,
        api_ids: Sequence[str] | None = None,
    ) -> TimeSeries:
        """One point per bucket of the range for one API (or, with ``api_id`` None, ``api_ids``)."""
        window = bucket_window(self._now(), range_, bucket)
        params: dict[str, Any] = {
            "step": window.step_seconds,
            "start": _epoch(window.start),
            "end": _epoch(window.end),
        }
        if api_id is None:
            params["api_ids"] = list(api_ids or [])
        else:
            params["api_id"] = api_id
        rows = await self._rows(
            time_series_sql(self.database, bucket, all_apis=api_id is None), params
        )
        points = []
        for t, n, ok, e4, e5, latency_avg, q, cpu in rows:
            n = int(n)
            points.append(
                SeriesPoint(
                    ts=utc(t) or t,
                    requests=n,
                    successes=int(ok),
                    errors_4xx=int(e4),
                    errors_5xx=int(e5),
                    avg_ms=finite(latency_avg),
                    p50_ms=quantile(q, 0) if n else 0.0,
                    p95_ms=quantile(q, 2) if n else 0.0,
                    p99_ms=quantile(q, 3) if n else 0.0,
                    cpu_ms=finite(cpu),
                )
            )
        return TimeSeries(range=range_, bucket=bucket, points=points)

    async def request_history(
        self, api_id: str, page: int = 1, page_size: int = 50, status: StatusFilter | None = None
    ) -> RequestPage:
        """One page (1-based) of an API's requests, newest first."""
        if page < 1 or not 1 <= page_size <= 1000:
            raise QueryError("page must be >= 1 and page_size between 1 and 1000")
        rows, count = await asyncio.gather(
            self._rows(
                request_history_sql(self.database, status),
                {"api_id": api_id, "limit": page_size, "offset": (page - 1) * page_size},
            ),
            self._rows(request_count_sql(self.database, status), {"api_id": api_id}),
        )
        return RequestPage(
            items=[record_from_row(row) for row in rows],
            page=page,
            page_size=page_size,
            total=int(count[0][0]),
        )

    async def slowest_requests(
        self, api_id: str, range_: Range, limit: int = 10
    ) -> list[RequestRecord]:
        since = self._now() - timedelta(seconds=check_range(range_))
        rows = await self._rows(
            slowest_requests_sql(self.database),
            {"api_id": api_id, "since_ms": _epoch_ms(since), "limit": max(1, min(limit, 1000))},
        )
        return [record_from_row(row) for row in rows]

    async def resources(
        self,
        api_id: str,
        range_: Range,
        model_versions: Sequence[str] = (),
        *,
        series: bool = True,
    ) -> Resources:
        """CPU spent on the API and RSS of the workers serving it, per bucket, with the workers
        holding ``model_versions`` (model store keys) and their latest sample. With ``series``
        False only the figures are computed (``cpu`` and ``memory`` lists stay empty)."""
        now = self._now()
        bucket: Bucket = "minute" if range_ == "24h" else "hour"
        window = bucket_window(now, range_, bucket)
        window_params = {
            "api_id": api_id,
            "step": window.step_seconds,
            "start": _epoch(window.start),
            "end": _epoch(window.end),
        }
        sql = (cpu_memory_series_sql if series else resource_figures_sql)(self.database, bucket)
        rows, worker_rows = await asyncio.gather(
            self._rows(sql, window_params),
            self._rows(
                workers_sql(self.database),
                {
                    "since_ms": _epoch_ms(now - timedelta(seconds=check_range(range_))),
                    "models": list(model_versions),
                },
            )
            if model_versions
            else _no_rows(),
        )
        workers = [
            WorkerResources(
                worker_id=row[0],
                cpu_percent=finite(row[1]),
                rss_mb=finite(row[2]),
                loaded_models=list(row[3]),
                last_seen=utc(row[4]) or row[4],
            )
            for row in worker_rows
        ]
        cpu: list[ValuePoint] = []
        memory: list[ValuePoint] = []
        if series:
            cpu = [ValuePoint(ts=utc(row[0]) or row[0], value=finite(row[1])) for row in rows]
            memory = [ValuePoint(ts=utc(row[0]) or row[0], value=finite(row[2])) for row in rows]
            # "Now" is the latest bucket with traffic (the current one may have just begun).
            busy = [(c, m) for c, m in zip(cpu, memory, strict=True) if c.value or m.value]
            cpu_now, rss_now = (busy[-1][0].value, busy[-1][1].value) if busy else (0.0, 0.0)
            cpu_peak = max((p.value for p in cpu), default=0.0)
            rss_peak = max((p.value for p in memory), default=0.0)
        else:
            cpu_now, cpu_peak, rss_now, rss_peak = (finite(v) for v in rows[0])
        recent_since = now - timedelta(seconds=RECENT_SECONDS)
        recent_workers = [w for w in workers if w.last_seen >= recent_since]
        peak_worker_rss = max((finite(row[5]) for row in worker_rows), default=0.0)
        return Resources(
            cpu=cpu,
            memory=memory,
            cpu_percent=cpu_now,
            peak_cpu_percent=cpu_peak,
            memory_mb=max(w.rss_mb for w in recent_workers) if recent_workers else rss_now,
            peak_memory_mb=max(rss_peak, peak_worker_rss),
            workers=workers,
        )


async def _no_rows() -> list[Sequence[Any]]:
    return []
