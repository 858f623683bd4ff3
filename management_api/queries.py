"""Running the monitoring queries: ``MonitoringQueries`` sends the SQL of
``management_api.monitoring_sql`` to one clickhouse-connect async client and shapes the rows (read
by name) into ``schemas.monitoring`` models.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.asyncclient import AsyncClient

from management_api.monitoring_sql import (
    AGREEMENT_SLACK_MS,
    QueryError,
    bucket_window,
    check_database,
    check_range,
    cpu_by_api_sql,
    cpu_memory_series_sql,
    is_raw_bucket,
    markers_sql,
    model_memory_series_sql,
    overview_totals_sql,
    predictor_workers_sql,
    range_params,
    range_stats_sql,
    raw_time_series_sql,
    raw_version_time_series_sql,
    recent_window_params,
    request_count_sql,
    request_history_sql,
    resource_figures_sql,
    shadow_agreement_sql,
    shadow_stats_sql,
    slowest_requests_sql,
    summaries_recent_sql,
    summaries_totals_sql,
    time_series_sql,
    version_range_stats_sql,
    version_time_series_sql,
    workers_sql,
)
from schemas.monitoring import (
    ApiStats,
    ApiSummary,
    Bucket,
    HistogramBucket,
    Marker,
    Overview,
    Range,
    RequestPage,
    RequestRecord,
    Resources,
    SeriesPoint,
    ShadowFigures,
    StatusFilter,
    TimeSeries,
    ValuePoint,
    VersionFigures,
    VersionSeries,
    WorkerResources,
)

Row = dict[str, Any]
"""One ClickHouse row by column name (clickhouse-connect's ``named_results()``)."""

# Upper edges of the latency histogram in the rollups' map; 0 stands for +inf (see migration 0001).
HISTOGRAM_EDGES_MS: tuple[int, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 0)
# A worker counts as "now" in resources when sampled within this many seconds.
RECENT_SECONDS = 300


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


def record_from_row(row: Row) -> RequestRecord:
    """A ``RECORD_COLUMNS`` row (by name) as the resource."""
    values = {**row, "ts": utc(row["ts"]) or datetime.fromtimestamp(0, UTC)}
    values["total_ms"] = finite(row["total_ms"])
    values["inference_ms"] = finite(row["inference_ms"])
    return RequestRecord.model_validate(values)


def rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _epoch(value: datetime) -> int:
    """Times travel as epoch numbers (converted in SQL with 'UTC'), so no time zone of client or
    server can shift them."""
    return int(value.timestamp())


def _epoch_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def series_point(row: Row, step: int = 0) -> SeriesPoint:
    """A ``time_series_sql`` (or per-version, or raw) row as a point of a ``step``-second bucket."""
    n, q = int(row["n"]), row["q"]
    return SeriesPoint(
        ts=utc(row["t"]) or row["t"],
        requests=n,
        successes=int(row["ok"]),
        errors_4xx=int(row["e4"]),
        errors_5xx=int(row["e5"]),
        rejected_unauthenticated=int(row["unauthenticated"]),
        avg_ms=finite(row["latency_avg"]),
        p50_ms=quantile(q, 0) if n else 0.0,
        p95_ms=quantile(q, 2) if n else 0.0,
        p99_ms=quantile(q, 3) if n else 0.0,
        cpu_ms=finite(row["cpu"]),
        requests_per_s=n / step if step else 0.0,
    )


def marker_from_row(row: Row) -> Marker:
    number = int(row["version_number"])
    return Marker(
        ts=utc(row["ts"]) or datetime.fromtimestamp(0, UTC),
        kind=row["kind"],
        version_number=number or None,
        actor=row["actor"],
        detail=row["detail"],
    )


@dataclass(frozen=True)
class Predictors:
    """What ``MonitoringQueries.predictors`` found: the workers that sampled since a time (one
    core each, at least 1) and the per-model memory (MB by model store key) in the latest sample
    of each worker seen in the last ``RECENT_SECONDS``."""

    cores: int
    held: list[dict[str, float]]


def cpu_share(cpu_ms: float, wall_s: float, cores: int) -> float:
    """An API's share (%) of the predictors' CPU capacity: the CPU time its predictions took
    (the events' ``cpu_ms``) over the wall time times the cores. Each predictor worker predicts
    on one thread, so its capacity is one core: ``cores`` is the number of workers that sampled
    in the window (at least 1). 100 means the API alone kept every predictor busy."""
    if wall_s <= 0:
        return 0.0
    return cpu_ms / (wall_s * 1000.0 * max(1, cores)) * 100.0


def api_memory_mb(workers: Sequence[dict[str, float]], versions: Sequence[str]) -> float:
    """The memory (MB) of the model versions an API serves, from the per-model figures of each
    worker's latest sample (``WorkerSample.model_memory_mb``): summed over the API's versions
    (a canary or shadow version beside the served one) within a worker, then the most of any
    worker. Not summed across workers: each holds its own copy, and an API's figure (and its
    memory alert) should not grow with the number of predictor replicas. Two APIs serving the
    same version both show it; a version loaded nowhere now counts 0."""
    keys = list(dict.fromkeys(versions))
    return max((sum(held.get(key, 0.0) for key in keys) for held in workers), default=0.0)


def version_order(figure: VersionFigures | VersionSeries) -> tuple[int, str]:
    """By version number, versions no longer in the model last."""
    number = figure.version_number
    return (number if number is not None else 1 << 30, figure.model_version_id)


# ---------------------------------------------------------------------------------------------
# Running them
# ---------------------------------------------------------------------------------------------


class MonitoringQueries:
    """The monitoring figures of docs/api-contract.md, answered from one ClickHouse database."""

    def __init__(self, client: AsyncClient, database: str) -> None:
        self.client = client
        self.database = check_database(database)

    async def _rows(self, sql: str, parameters: dict[str, Any]) -> list[Row]:
        """The rows of a query, each by column name (never by position)."""
        result = await self.client.query(sql, parameters=parameters)
        return list(result.named_results())

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
        recent_by_id = {
            row["api_id"]: (int(row["last_24h"]), int(row["last_7d"])) for row in recent
        }
        result = {api_id: ApiSummary() for api_id in ids}
        for row in totals:
            total, ok, q = int(row["total"]), int(row["ok"]), row["q"]
            last_24h, last_7d = recent_by_id.get(row["api_id"], (0, 0))
            result[row["api_id"]] = ApiSummary(
                total_requests=total,
                requests_24h=last_24h,
                requests_7d=last_7d,
                success_rate=rate(ok, total),
                error_rate=rate(total - ok, total),
                avg_ms=finite(row["latency_avg"]),
                p50_ms=quantile(q, 0),
                p95_ms=quantile(q, 2),
                p99_ms=quantile(q, 3),
                last_request_at=utc(row["last_at"]),
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
        row = totals[0]
        total = int(row["total"] or 0)
        return Overview(
            total_apis=len(ids),
            active_apis=len(ids) if active_apis is None else active_apis,
            total_requests=total,
            requests_24h=sum(int(recent_row["last_24h"]) for recent_row in recent),
            success_rate=rate(int(row["ok"] or 0), total),
            avg_ms=finite(row["latency_avg"]),
            p95_ms=quantile(row["q"] or [], 2),
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
        row = range_rows[0]
        total, ok, q = int(row["total"]), int(row["ok"]), row["q"]
        return ApiStats(
            range=range_,
            total_requests=summary.total_requests,
            requests_24h=summary.requests_24h,
            requests_7d=summary.requests_7d,
            requests_in_range=total,
            success_count=ok,
            errors_4xx=int(row["e4"]),
            errors_5xx=int(row["e5"]),
            rejected_unauthenticated=int(row["unauthenticated"]),
            success_rate=rate(ok, total),
            error_rate=rate(total - ok, total),
            avg_ms=finite(row["latency_avg"]),
            p50_ms=quantile(q, 0),
            p90_ms=quantile(q, 1),
            p95_ms=quantile(q, 2),
            p99_ms=quantile(q, 3),
            histogram=histogram_buckets(dict(row["histogram"])),
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
        """One point per bucket of the range for one API (or, with ``api_id`` None, ``api_ids``),
        with the API's markers; buckets finer than a minute are counted from the raw events."""
        window = bucket_window(self._now(), range_, bucket)
        params: dict[str, Any] = {
            "step": window.step_seconds,
            "start": _epoch(window.start),
            "end": _epoch(window.end),
        }
        if api_id is None:
            params["api_ids"] = list(dict.fromkeys(api_ids or []))
        else:
            params["api_id"] = api_id
        all_apis = api_id is None
        sql = (
            raw_time_series_sql(self.database, all_apis)
            if is_raw_bucket(bucket)
            else time_series_sql(self.database, bucket, all_apis=all_apis)
        )
        rows, marker_rows = await asyncio.gather(
            self._rows(sql, params),
            _no_rows() if api_id is None else self._rows(markers_sql(self.database), params),
        )
        return TimeSeries(
            range=range_,
            bucket=bucket,
            step_seconds=window.step_seconds,
            points=[series_point(row, window.step_seconds) for row in rows],
            markers=[marker_from_row(row) for row in marker_rows],
        )

    async def record_change(
        self,
        api_id: str,
        at: datetime,
        kind: str,
        version_number: int | None,
        actor: str = "",
        detail: str = "",
    ) -> None:
        """Store one change of an API (a chart marker, migration 0007)."""
        await self.client.insert(
            "api_changes",
            [[api_id, at, kind, version_number or 0, actor, detail]],
            column_names=["api_id", "ts", "kind", "version_number", "actor", "detail"],
            database=self.database,
        )

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
            total=int(count[0]["total"]),
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
        """CPU and memory of one API over a range (see ``cpu_share`` and ``api_memory_mb``),
        with the workers holding ``model_versions`` (model store keys: the versions the API
        serves, canary or shadow included) and their latest sample. With ``series`` False only
        the figures are computed (``cpu`` and ``memory`` lists stay empty)."""
        now = self._now()
        bucket: Bucket = "minute" if check_range(range_) <= 86_400 else "hour"
        window = bucket_window(now, range_, bucket)
        window_params = {
            "api_id": api_id,
            "step": window.step_seconds,
            "start": _epoch(window.start),
            "end": _epoch(window.end),
        }
        models = list(dict.fromkeys(model_versions))
        figures, predictors, worker_rows, cpu_rows, memory_rows = await asyncio.gather(
            self._rows(resource_figures_sql(self.database, bucket), window_params),
            self.predictors(window.start),
            self._rows(
                workers_sql(self.database),
                {
                    "since_ms": _epoch_ms(now - timedelta(seconds=check_range(range_))),
                    "models": models,
                },
            )
            if models
            else _no_rows(),
            self._rows(cpu_memory_series_sql(self.database, bucket), window_params)
            if series
            else _no_rows(),
            self._rows(model_memory_series_sql(self.database), {**window_params, "models": models})
            if series and models
            else _no_rows(),
        )
        cores = predictors.cores
        workers = [
            WorkerResources(
                worker_id=row["worker_id"],
                cpu_percent=finite(row["latest_cpu_percent"]),
                rss_mb=finite(row["latest_rss_mb"]),
                loaded_models=list(row["latest_models"]),
                last_seen=utc(row["last_seen"]) or row["last_seen"],
            )
            for row in worker_rows
        ]
        wall_s = max(1.0, (now - window.start).total_seconds())
        cpu = [
            ValuePoint(
                ts=utc(row["t"]) or row["t"],
                value=finite(row["cpu_percent"]) / cores,
            )
            for row in cpu_rows
        ]
        memory_by_t = {_epoch(utc(r["t"]) or r["t"]): finite(r["memory_mb"]) for r in memory_rows}
        memory = [ValuePoint(ts=p.ts, value=memory_by_t.get(_epoch(p.ts), 0.0)) for p in cpu]
        recent_since = now - timedelta(seconds=RECENT_SECONDS)
        recent = [
            finite(row["latest_model_memory_mb"])
            for row in worker_rows
            if (utc(row["last_seen"]) or now) >= recent_since
        ]
        return Resources(
            cpu=cpu,
            memory=memory,
            cpu_percent=cpu_share(finite(figures[0]["cpu_ms"]), wall_s, cores),
            peak_cpu_percent=cpu_share(
                finite(figures[0]["cpu_peak_ms"]), window.step_seconds, cores
            ),
            memory_mb=max(recent, default=0.0),
            peak_memory_mb=max(
                (finite(row["peak_model_memory_mb"]) for row in worker_rows), default=0.0
            ),
            workers=workers,
        )

    async def usage(
        self, versions_by_api: dict[str, list[str]], range_: Range = "24h"
    ) -> dict[str, tuple[float, float]]:
        """``(cpu_percent, memory_mb)`` of each API (the API list), as ``resources`` computes
        them: ``versions_by_api`` maps an API id to the model store keys it serves."""
        if not versions_by_api:
            return {}
        now = self._now()
        bucket: Bucket = "minute" if check_range(range_) <= 86_400 else "hour"
        window = bucket_window(now, range_, bucket)
        cpu_rows, predictors = await asyncio.gather(
            self._rows(
                cpu_by_api_sql(self.database, bucket),
                {
                    "api_ids": list(versions_by_api),
                    "start": _epoch(window.start),
                    "end": _epoch(window.end),
                },
            ),
            self.predictors(window.start),
        )
        wall_s = max(1.0, (now - window.start).total_seconds())
        cpu_ms = {row["api_id"]: finite(row["cpu_ms"]) for row in cpu_rows}
        return {
            api_id: (
                cpu_share(cpu_ms.get(api_id, 0.0), wall_s, predictors.cores),
                api_memory_mb(predictors.held, versions),
            )
            for api_id, versions in versions_by_api.items()
        }

    async def predictors(self, since: datetime) -> Predictors:
        """The predictors' capacity since a time and the per-model memory they hold now: with
        ``cpu_share`` and ``api_memory_mb``, an API's CPU and memory over any window (the alert
        rules' windows as well as the ranges)."""
        rows = await self._rows(
            predictor_workers_sql(self.database), {"since_ms": _epoch_ms(since)}
        )
        recent_since = self._now() - timedelta(seconds=RECENT_SECONDS)
        held = [
            {str(k): finite(v) for k, v in dict(row["latest_model_memory"]).items()}
            for row in rows
            if (utc(row["last_seen"]) or recent_since) >= recent_since
        ]
        return Predictors(cores=max(1, len(rows)), held=held)

    async def version_stats(
        self, api_id: str, range_: Range, numbers: dict[str, int], classifier: bool
    ) -> list[VersionFigures]:
        """One entry per version that answered (or shadowed) in the range; ``numbers`` maps
        model store keys to version numbers. Agreement is None for a regressor."""
        since = self._now() - timedelta(seconds=check_range(range_))
        since_ms = _epoch_ms(since)
        raw: dict[str, Any] = {"api_id": api_id, "since_ms": since_ms}
        served, shadows, agreement = await asyncio.gather(
            self._rows(
                version_range_stats_sql(self.database, range_),
                {"api_id": api_id, **range_params(self._now(), range_)},
            ),
            self._rows(shadow_stats_sql(self.database), raw),
            self._rows(
                shadow_agreement_sql(self.database),
                {**raw, "primary_since_ms": since_ms - AGREEMENT_SLACK_MS},
            )
            if classifier
            else _no_rows(),
        )
        figures: dict[str, VersionFigures] = {}

        def entry(key: str) -> VersionFigures:
            if key not in figures:
                figures[key] = VersionFigures(version_number=numbers.get(key), model_version_id=key)
            return figures[key]

        for row in served:
            total, ok, q = int(row["total"]), int(row["ok"]), row["q"]
            figure = entry(row["model_version"])
            figure.requests, figure.success_count = total, ok
            figure.errors_4xx, figure.errors_5xx = int(row["e4"]), int(row["e5"])
            figure.success_rate, figure.error_rate = rate(ok, total), rate(total - ok, total)
            figure.avg_ms = finite(row["latency_avg"])
            figure.p50_ms, figure.p95_ms = quantile(q, 0), quantile(q, 2)
            figure.p99_ms = quantile(q, 3)
        agreed = {row["model_version"]: row for row in agreement}
        for row in shadows:
            total, errors, q = int(row["total"]), int(row["errors"]), row["q"]
            match = agreed.get(row["model_version"])
            compared = int(match["compared"]) if match else 0
            agree = int(match["agreed"]) if match else 0
            entry(row["model_version"]).shadow = ShadowFigures(
                requests=total,
                errors=errors,
                error_rate=rate(errors, total),
                avg_ms=finite(row["latency_avg"]),
                p50_ms=quantile(q, 0),
                p95_ms=quantile(q, 2),
                p99_ms=quantile(q, 3),
                compared=compared,
                agreed=agree,
                agreement_rate=agree / compared if classifier and compared else None,
            )
        return sorted(figures.values(), key=version_order)

    async def version_time_series(
        self, api_id: str, range_: Range, bucket: Bucket, numbers: dict[str, int]
    ) -> list[VersionSeries]:
        """Every bucket of the range for each version that answered in it (zeros filled)."""
        window = bucket_window(self._now(), range_, bucket)
        raw = is_raw_bucket(bucket)
        rows = await self._rows(
            raw_version_time_series_sql(self.database)
            if raw
            else version_time_series_sql(self.database, bucket),
            {
                "api_id": api_id,
                "step": window.step_seconds,
                "start": _epoch(window.start),
                "end": _epoch(window.end),
            },
        )
        by_key: dict[str, dict[int, SeriesPoint]] = {}
        for row in rows:
            point = series_point(row, window.step_seconds)
            by_key.setdefault(row["model_version"], {})[_epoch(point.ts)] = point
        series = []
        for key, points in by_key.items():
            filled = []
            for i in range(window.buckets):
                ts = window.start + timedelta(seconds=i * window.step_seconds)
                filled.append(points.get(_epoch(ts)) or SeriesPoint(ts=ts))
            series.append(
                VersionSeries(version_number=numbers.get(key), model_version_id=key, points=filled)
            )
        return sorted(series, key=version_order)


async def _no_rows() -> list[Row]:
    return []
