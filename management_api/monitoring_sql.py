"""The monitoring SQL: pure functions building ClickHouse queries, and the checks and time
windows they need.

Every builder returns SQL text with server-side parameters (``{name:Type}``); only the database
name, checked against an identifier pattern, is written into the text. Unit tests check their
shape; ``management_api.queries.MonitoringQueries`` runs them.

Dashboards read the rollups (``request_stats_1m`` for the last day, ``request_stats_1h`` beyond,
``request_stats_1d`` for all-time figures); their requests, errors and latency leave out requests
rejected before authentication (counted apart as ``rejected_unauthenticated``, migration 0005);
the raw ``request_events`` table is read only for request history and slowest requests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from infra.clickhouse import is_identifier
from schemas.monitoring import BUCKET_SECONDS, MAX_POINTS, RANGE_SECONDS, RequestRecord

QUANTILES = "0.5, 0.9, 0.95, 0.99"
RECORD_COLUMN_OF: dict[str, str] = {name: name for name in RequestRecord.model_fields}
"""``request_events`` column of each ``RequestRecord`` field (a field renamed in the resource
keeps its column: column names are the analysts' contract)."""
RECORD_COLUMNS = ", ".join(
    column if column == name else f"{column} AS {name}" for name, column in RECORD_COLUMN_OF.items()
)
STATUS_CONDITIONS: dict[str, str] = {
    "success": "status_code < 400",
    "error": "status_code >= 400",
    "4xx": "status_code >= 400 AND status_code < 500",
    "5xx": "status_code >= 500",
}


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
    step = check_bucket(bucket)
    if step < 60:
        raise QueryError(f"bucket {bucket!r} is finer than the rollups (read from raw events)")
    return "request_stats_1m" if step < 3_600 else "request_stats_1h"


def is_raw_bucket(bucket: str) -> bool:
    """Buckets finer than a minute are counted from the raw events (the rollups are per minute)."""
    return check_bucket(bucket) < 60


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
    if count > MAX_POINTS:  # every bucket: 30d by minute was 43,200 points (8.7 MB)
        raise QueryError(
            f"bucket {bucket!r} over {range_!r} makes {count} points (at most "
            f"{MAX_POINTS}); pick a longer bucket"
        )
    start = current - (count - 1) * step
    return Window(
        start=datetime.fromtimestamp(start, UTC),
        end=datetime.fromtimestamp(current + step, UTC),
        step_seconds=step,
    )


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
    "15m": ("request_stats_1m", "request_stats_1m", 60, 60),
    "1h": ("request_stats_1m", "request_stats_1m", 60, 60),
    "6h": ("request_stats_1m", "request_stats_1m", 60, 60),
    "24h": ("request_stats_1h", "request_stats_1m", 3_600, 60),
    "7d": ("request_stats_1d", "request_stats_1h", 86_400, 3_600),
    "30d": ("request_stats_1d", "request_stats_1h", 86_400, 3_600),
}
_RANGE_COLUMNS = (
    "requests, successes, errors_4xx, errors_5xx, rejected_unauthenticated, latency_sum_ms, "
    "latency_count, latency_quantiles, latency_histogram"
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
    sum(rejected_unauthenticated) AS unauthenticated,
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
    """CPU time (ms, the events' ``cpu_ms``) spent on one API over the window's buckets: in all
    and in its busiest bucket, in one row (``MonitoringQueries.resources`` turns them into shares
    of the predictors' capacity)."""
    db = check_database(database)
    table = rollup_for_bucket(bucket)
    return f"""
SELECT sum(cpu) AS cpu_ms, max(cpu) AS cpu_peak_ms
FROM (
    SELECT bucket AS t, sum(cpu_ms) AS cpu
    FROM {db}.{table}
    WHERE api_id = {{api_id:String}}
      AND bucket >= toDateTime({{start:UInt32}}, 'UTC')
      AND bucket < toDateTime({{end:UInt32}}, 'UTC')
    GROUP BY t
)
"""


def cpu_by_api_sql(database: str, bucket: str) -> str:
    """CPU time (ms) each of several APIs spent over the window's buckets (the API list)."""
    db = check_database(database)
    table = rollup_for_bucket(bucket)
    return f"""
SELECT api_id, sum(cpu_ms) AS cpu_ms
FROM {db}.{table}
WHERE api_id IN {{api_ids:Array(String)}}
  AND bucket >= toDateTime({{start:UInt32}}, 'UTC') AND bucket < toDateTime({{end:UInt32}}, 'UTC')
GROUP BY api_id
"""


def predictor_workers_sql(database: str) -> str:
    """Every predictor worker that sampled since a time, with its latest per-model memory (MB by
    model store key, the figures ``WorkerSample.model_memory_mb`` carries) and when it was last
    seen: the predictors' capacity (one core per worker) and the models they hold now."""
    db = check_database(database)
    return f"""
SELECT
    worker_id,
    argMax(model_memory_mb, ts) AS latest_model_memory,
    max(ts) AS last_seen
FROM {db}.worker_samples
WHERE ts >= fromUnixTimestamp64Milli({{since_ms:Int64}}, 'UTC')
GROUP BY worker_id
ORDER BY worker_id
"""


def workers_sql(database: str) -> str:
    """Latest sample of each worker that held one of the given models in the range, with the
    memory of those models in its latest sample and at its peak (the sum over the models of
    ``model_memory_mb``; a model not in a sample counts 0)."""
    db = check_database(database)
    return f"""
SELECT
    worker_id,
    argMax(cpu_percent, ts) AS latest_cpu_percent,
    argMax(rss_mb, ts) AS latest_rss_mb,
    argMax(loaded_models, ts) AS latest_models,
    argMax(
        arraySum(arrayMap(m -> toFloat64(model_memory_mb[m]), {{models:Array(String)}})), ts
    ) AS latest_model_memory_mb,
    max(arraySum(arrayMap(m -> toFloat64(model_memory_mb[m]), {{models:Array(String)}})))
        AS peak_model_memory_mb,
    max(ts) AS last_seen
FROM {db}.worker_samples
WHERE ts >= fromUnixTimestamp64Milli({{since_ms:Int64}}, 'UTC')
GROUP BY worker_id
HAVING countIf(hasAny(loaded_models, {{models:Array(String)}})) > 0
ORDER BY worker_id
"""


def model_memory_series_sql(database: str) -> str:
    """Per bucket, the most memory the given models took in one worker's sample (gaps 0)."""
    db = check_database(database)
    return f"""
SELECT
    toDateTime(intDiv(toUInt32(toDateTime(ts)), {{step:UInt32}}) * {{step:UInt32}}, 'UTC') AS t,
    max(arraySum(arrayMap(m -> toFloat64(model_memory_mb[m]), {{models:Array(String)}})))
        AS memory_mb
FROM {db}.worker_samples
WHERE ts >= toDateTime({{start:UInt32}}, 'UTC') AND ts < toDateTime({{end:UInt32}}, 'UTC')
GROUP BY t
ORDER BY t WITH FILL
    FROM toDateTime({{start:UInt32}}, 'UTC') TO toDateTime({{end:UInt32}}, 'UTC')
    STEP {{step:UInt32}}
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
    sum(rejected_unauthenticated) AS unauthenticated,
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
    """A page of one API's requests, newest first, optionally one status class only (a shadow
    version's answers are not requests: left out, as from the rollups)."""
    db = check_database(database)
    return f"""
SELECT {RECORD_COLUMNS}
FROM {db}.request_events
WHERE api_id = {{api_id:String}} AND NOT shadow{_status_condition(status)}
ORDER BY ts DESC
LIMIT {{limit:UInt32}} OFFSET {{offset:UInt64}}
"""


def request_count_sql(database: str, status: str | None) -> str:
    db = check_database(database)
    return f"""
SELECT count() AS total FROM {db}.request_events
WHERE api_id = {{api_id:String}} AND NOT shadow{_status_condition(status)}
"""


def slowest_requests_sql(database: str) -> str:
    """The slowest requests of one API since a time (raw events; shadow answers left out)."""
    db = check_database(database)
    return f"""
SELECT {RECORD_COLUMNS}
FROM {db}.request_events
WHERE api_id = {{api_id:String}} AND ts >= fromUnixTimestamp64Milli({{since_ms:Int64}}, 'UTC')
  AND authenticated AND NOT shadow
ORDER BY total_ms DESC, ts DESC
LIMIT {{limit:UInt32}}
"""


def _status_condition(status: str | None) -> str:
    if status is None or status == "":
        return ""
    if status not in STATUS_CONDITIONS:
        raise QueryError(f"status must be one of {sorted(STATUS_CONDITIONS)}, not {status!r}")
    return f" AND {STATUS_CONDITIONS[status]}"


# --- split by version (canary and shadow, issue 11) -------------------------------------------
# The rollups hold the requests each version answered (``model_version``, shadows left out); a
# shadow version's own answers and their agreement with the primary's are read from the raw events
# (``shadow``, ``shadow_of``: migration 0006).

AGREEMENT_SLACK_MS = 60_000
"""A shadow answer is compared with its primary among primaries from this long before the range
(the primary is written first; a shadow near the range start may mirror one just before it)."""


def version_range_stats_sql(database: str, range_: str) -> str:
    """``range_stats_sql``'s counts and latency per ``model_version`` (see ``range_params``)."""
    db = check_database(database)
    check_range(range_)
    coarse, fine, _, _ = RANGE_ROLLUPS[range_]
    columns = f"model_version, {_RANGE_COLUMNS}"
    return f"""
SELECT
    model_version,
    sum(requests) AS total,
    sum(successes) AS ok,
    sum(errors_4xx) AS e4,
    sum(errors_5xx) AS e5,
    if(sum(latency_count) = 0, 0, sum(latency_sum_ms) / sum(latency_count)) AS latency_avg,
    quantilesTDigestMerge({QUANTILES})(latency_quantiles) AS q
FROM (
    SELECT {columns} FROM {db}.{coarse}
    WHERE api_id = {{api_id:String}} AND bucket >= toDateTime({{split:UInt32}}, 'UTC')
    UNION ALL
    SELECT {columns} FROM {db}.{fine}
    WHERE api_id = {{api_id:String}}
      AND bucket >= toDateTime({{since:UInt32}}, 'UTC')
      AND bucket < toDateTime({{split:UInt32}}, 'UTC')
)
GROUP BY model_version
HAVING total > 0
ORDER BY model_version
"""


def version_time_series_sql(database: str, bucket: str) -> str:
    """``time_series_sql``'s figures per bucket and ``model_version``; only buckets with rows
    (the caller fills the others per version)."""
    db = check_database(database)
    table = rollup_for_bucket(bucket)
    return f"""
SELECT
    toDateTime(intDiv(toUInt32(bucket), {{step:UInt32}}) * {{step:UInt32}}, 'UTC') AS t,
    model_version,
    sum(requests) AS n,
    sum(successes) AS ok,
    sum(errors_4xx) AS e4,
    sum(errors_5xx) AS e5,
    sum(rejected_unauthenticated) AS unauthenticated,
    if(sum(latency_count) = 0, 0, sum(latency_sum_ms) / sum(latency_count)) AS latency_avg,
    quantilesTDigestMerge({QUANTILES})(latency_quantiles) AS q,
    sum(cpu_ms) AS cpu
FROM {db}.{table}
WHERE api_id = {{api_id:String}}
  AND bucket >= toDateTime({{start:UInt32}}, 'UTC') AND bucket < toDateTime({{end:UInt32}}, 'UTC')
GROUP BY t, model_version
ORDER BY model_version, t
"""


def shadow_stats_sql(database: str) -> str:
    """Each shadow version's answers of one API since a time (raw shadow events): count, errors
    and latency (4xx left out of latency, as the rollups do)."""
    db = check_database(database)
    return f"""
SELECT
    model_version,
    count() AS total,
    countIf(status_code >= 400) AS errors,
    avgIf(total_ms, NOT (status_code >= 400 AND status_code < 500)) AS latency_avg,
    quantilesIf({QUANTILES})(total_ms, NOT (status_code >= 400 AND status_code < 500)) AS q
FROM {db}.request_events
WHERE api_id = {{api_id:String}} AND shadow
  AND ts >= fromUnixTimestamp64Milli({{since_ms:Int64}}, 'UTC')
GROUP BY model_version
ORDER BY model_version
"""


def shadow_agreement_sql(database: str) -> str:
    """Per shadow version: shadow answers whose primary (the event named by ``shadow_of``) also
    succeeded, and how many of them predicted the same as the primary."""
    db = check_database(database)
    return f"""
SELECT
    s.model_version AS model_version,
    count() AS compared,
    countIf(s.prediction = p.prediction) AS agreed
FROM (
    SELECT model_version, shadow_of, prediction FROM {db}.request_events
    WHERE api_id = {{api_id:String}} AND shadow AND status_code < 400
      AND ts >= fromUnixTimestamp64Milli({{since_ms:Int64}}, 'UTC')
) AS s
INNER JOIN (
    SELECT event_id, any(prediction) AS prediction FROM {db}.request_events
    WHERE api_id = {{api_id:String}} AND NOT shadow AND status_code < 400
      AND ts >= fromUnixTimestamp64Milli({{primary_since_ms:Int64}}, 'UTC')
    GROUP BY event_id
) AS p ON s.shadow_of = p.event_id
GROUP BY model_version
ORDER BY model_version
"""


# --- recent ranges and markers (issue 12) -----------------------------------------------------
# Buckets finer than a minute (15 min and 1 h ranges) are counted from the raw events with the
# rollups' rules: shadow answers left out, requests rejected before authentication apart, latency
# of the requests served (4xx left out). Quantiles are exact-ish (``quantiles``: a reservoir of
# 8,192 values per bucket, exact below that).

_RAW_SERVED = "authenticated AND NOT (status_code >= 400 AND status_code < 500)"
_RAW_FIGURES = f"""
    countIf(authenticated) AS n,
    countIf(authenticated AND status_code < 400) AS ok,
    countIf(authenticated AND status_code >= 400 AND status_code < 500) AS e4,
    countIf(authenticated AND status_code >= 500) AS e5,
    countIf(NOT authenticated) AS unauthenticated,
    if(countIf({_RAW_SERVED}) = 0, 0, sumIf(toFloat64(total_ms), {_RAW_SERVED})
        / countIf({_RAW_SERVED})) AS latency_avg,
    quantilesIf({QUANTILES})(total_ms, {_RAW_SERVED}) AS q,
    sumIf(toFloat64(cpu_ms), authenticated) AS cpu"""
_RAW_BUCKET = "toDateTime(intDiv(toUnixTimestamp(ts), {step:UInt32}) * {step:UInt32}, 'UTC') AS t"
_RAW_SPAN = (
    "ts >= toDateTime64({start:UInt32}, 3, 'UTC') AND ts < toDateTime64({end:UInt32}, 3, 'UTC')"
)


def raw_time_series_sql(database: str, all_apis: bool) -> str:
    """``time_series_sql`` from the raw events, for buckets finer than a minute (gaps filled)."""
    db = check_database(database)
    where = "api_id IN {api_ids:Array(String)}" if all_apis else "api_id = {api_id:String}"
    return f"""
SELECT
    {_RAW_BUCKET},{_RAW_FIGURES}
FROM {db}.request_events
WHERE {where} AND NOT shadow
  AND {_RAW_SPAN}
GROUP BY t
ORDER BY t WITH FILL
    FROM toDateTime({{start:UInt32}}, 'UTC') TO toDateTime({{end:UInt32}}, 'UTC')
    STEP {{step:UInt32}}
"""


def raw_version_time_series_sql(database: str) -> str:
    """``version_time_series_sql`` from the raw events (only buckets with rows)."""
    db = check_database(database)
    return f"""
SELECT
    {_RAW_BUCKET},
    model_version,{_RAW_FIGURES}
FROM {db}.request_events
WHERE api_id = {{api_id:String}} AND NOT shadow
  AND {_RAW_SPAN}
GROUP BY t, model_version
ORDER BY model_version, t
"""


def markers_sql(database: str) -> str:
    """The recorded changes of one API in a span, oldest first (migration 0007)."""
    db = check_database(database)
    return f"""
SELECT ts, kind, version_number, actor, detail
FROM {db}.api_changes
WHERE api_id = {{api_id:String}}
  AND {_RAW_SPAN}
ORDER BY ts
LIMIT 1000
"""
