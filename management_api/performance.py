"""Live model performance from ground-truth feedback (issue 15): the SQL (pure builders with
server-side parameters, as ``management_api.monitoring_sql``) and the figures built from it.

Feedback (ClickHouse ``feedback``, migration 0009) is joined with ``request_events`` by request id
(``request_id = event_id``); of several reports for one request the latest (``received_at``, then
``feedback_id``) is the truth. Only the API's successful, authenticated, non-shadow requests count:
their ``prediction`` text is compared with ``actual`` (classification) or both read as numbers
(regression). The route's range selects requests by the time they were made (the feedback may
come later); the alert rule ``accuracy_drop`` reads the feedback received in its window.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from management_api.db import ExportedApi, Model
from management_api.drift import QUERY_SETTINGS
from management_api.monitoring_sql import check_database, check_range
from management_api.queries import MonitoringQueries
from schemas import Task
from schemas.performance import Performance, PerformancePoint, VersionPerformance

SERIES_BUCKET_SECONDS: dict[str, int] = {
    "15m": 60,
    "1h": 300,
    "6h": 900,
    "24h": 3_600,
    "7d": 6 * 3_600,
    "30d": 86_400,
}
"""A series bucket per range: coarser than the traffic charts' (feedback is sparser)."""
CLOCK_SKEW_S = 60
"""Feedback of a request is received after it was made; this much earlier is still looked at
(ingress replicas' clocks may differ a little)."""
FEEDBACK_LOOKBACK_S = 7 * 86_400
"""The alert rule joins feedback received in its window with requests made up to this long
before the window."""


@dataclass(frozen=True)
class VersionInfo:
    """What the figures need of a model version: its number, test metrics and classes."""

    number: int
    test_metrics: dict[str, Any]
    classes: list[str] | None = None


def _joined(db: str) -> str:
    """``fb`` (latest truth per request reported since the range's start) and ``ev`` (the
    range's successful requests that have some), as a WITH clause."""
    return f"""
WITH
fb AS (
    SELECT request_id, argMax(actual, (received_at, feedback_id)) AS actual
    FROM {db}.feedback
    WHERE api_id = {{api_id:String}}
      AND received_at >= toDateTime64({{start:UInt32}} - {CLOCK_SKEW_S}, 3, 'UTC')
    GROUP BY request_id
),
ev AS (
    SELECT event_id, ts, model_version, prediction
    FROM {db}.request_events
    WHERE api_id = {{api_id:String}}
      AND ts >= toDateTime64({{start:UInt32}}, 3, 'UTC')
      AND ts < toDateTime64({{end:UInt32}}, 3, 'UTC')
      AND authenticated AND NOT shadow AND status_code < 400
      AND event_id IN (SELECT request_id FROM fb)
)"""


def confusion_sql(database: str) -> str:
    """Classification: requests with feedback per (version, predicted, actual)."""
    db = check_database(database)
    return f"""{_joined(db)}
SELECT ev.model_version AS version_key, ev.prediction AS predicted, fb.actual AS actual,
       count() AS n
FROM ev INNER JOIN fb ON fb.request_id = ev.event_id
GROUP BY version_key, predicted, actual
"""


def errors_sql(database: str) -> str:
    """Regression: per version, requests with a numeric truth and their MAE and RMSE."""
    db = check_database(database)
    return f"""{_joined(db)}
SELECT version_key, count() AS n, avg(abs(err)) AS mae, sqrt(avg(err * err)) AS rmse
FROM (
    SELECT ev.model_version AS version_key,
           toFloat64OrNull(fb.actual) - toFloat64OrNull(ev.prediction) AS err
    FROM ev INNER JOIN fb ON fb.request_id = ev.event_id
)
WHERE err IS NOT NULL
GROUP BY version_key
"""


def series_sql(database: str) -> str:
    """Per bucket (request time) and version: requests with feedback, accuracy and MAE."""
    db = check_database(database)
    return f"""{_joined(db)}
SELECT
    toStartOfInterval(ev.ts, toIntervalSecond({{step:UInt32}}), 'UTC') AS t,
    ev.model_version AS version_key,
    count() AS n,
    avg(ev.prediction = fb.actual) AS accuracy,
    avgOrNull(abs(toFloat64OrNull(fb.actual) - toFloat64OrNull(ev.prediction))) AS mae
FROM ev INNER JOIN fb ON fb.request_id = ev.event_id
GROUP BY t, version_key
ORDER BY t, version_key
"""


def unmatched_sql(database: str) -> str:
    """Requests reported on since the range's start, and how many of them are the API's
    successful requests of the range."""
    db = check_database(database)
    return f"""
WITH reported AS (
    SELECT DISTINCT request_id FROM {db}.feedback
    WHERE api_id = {{api_id:String}}
      AND received_at >= toDateTime64({{start:UInt32}}, 3, 'UTC')
)
SELECT
    count() AS reported,
    countIf(request_id IN (
        SELECT event_id FROM {db}.request_events
        WHERE api_id = {{api_id:String}}
          AND ts >= toDateTime64({{start:UInt32}}, 3, 'UTC')
          AND ts < toDateTime64({{end:UInt32}}, 3, 'UTC')
          AND authenticated AND NOT shadow AND status_code < 400
          AND event_id IN (SELECT request_id FROM reported)
    )) AS found
FROM reported
"""


def window_feedback_sql(database: str) -> str:
    """Per API and window length (``ARRAY JOIN``, as ``alert_engine.window_figures_sql``): the
    requests whose latest feedback was received in the window [end - 60 - w, end), their
    accuracy and their RMSE (NaN when no truth is a number)."""
    db = check_database(database)
    return f"""
WITH
fb AS (
    SELECT api_id, request_id, argMax(actual, (received_at, feedback_id)) AS actual,
           max(received_at) AS at
    FROM {db}.feedback
    WHERE api_id IN {{api_ids:Array(String)}}
      AND received_at >= toDateTime64({{since:UInt32}}, 3, 'UTC')
      AND received_at < toDateTime64({{end:UInt32}}, 3, 'UTC')
    GROUP BY api_id, request_id
),
ev AS (
    SELECT api_id, event_id, prediction
    FROM {db}.request_events
    WHERE api_id IN {{api_ids:Array(String)}}
      AND ts >= toDateTime64({{since:UInt32}} - {FEEDBACK_LOOKBACK_S}, 3, 'UTC')
      AND ts < toDateTime64({{end:UInt32}}, 3, 'UTC')
      AND authenticated AND NOT shadow AND status_code < 400
      AND event_id IN (SELECT request_id FROM fb)
)
SELECT
    fb.api_id AS api_id,
    w,
    count() AS n,
    avg(ev.prediction = fb.actual) AS accuracy,
    sqrt(avgOrNull(pow(toFloat64OrNull(fb.actual) - toFloat64OrNull(ev.prediction), 2))) AS rmse
FROM fb INNER JOIN ev ON ev.event_id = fb.request_id AND ev.api_id = fb.api_id
ARRAY JOIN {{windows:Array(UInt32)}} AS w
WHERE fb.at >= toDateTime64({{end:UInt32}} - 60 - w, 3, 'UTC')
GROUP BY api_id, w
"""


# --- figures ------------------------------------------------------------------------------------


def f1_score(counts: Mapping[tuple[str, str], int], classes: Sequence[str] | None) -> float | None:
    """F1 from (predicted, actual) counts as the training computes its test F1: for two classes
    the binary F1 of the last one, else the macro F1 over the labels predicted or true."""
    if not counts:
        return None
    tp: dict[str, int] = defaultdict(int)
    fp: dict[str, int] = defaultdict(int)
    fn: dict[str, int] = defaultdict(int)
    for (predicted, actual), n in counts.items():
        if predicted == actual:
            tp[predicted] += n
        else:
            fp[predicted] += n
            fn[actual] += n

    def f1(label: str) -> float:
        denominator = 2 * tp[label] + fp[label] + fn[label]
        return 2 * tp[label] / denominator if denominator else 0.0

    if classes is not None and len(classes) == 2:
        return f1(str(classes[-1]))
    labels = {label for pair in counts for label in pair}
    return sum(f1(label) for label in labels) / len(labels)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


async def measure(
    queries: MonitoringQueries,
    api_id: str,
    task: Task,
    range_: str,
    versions: Mapping[str, VersionInfo],
    now: datetime | None = None,
) -> Performance:
    """The performance route's answer for one API (``versions``: by model store key)."""
    span = check_range(range_)
    now = now or datetime.now(UTC)
    end = int(now.timestamp()) + 1
    params: dict[str, Any] = {"api_id": api_id, "start": end - span, "end": end}
    step = SERIES_BUCKET_SECONDS.get(range_, 3_600)
    client = queries.client
    db = queries.database
    classifier = task is Task.CLASSIFICATION

    def number_of(key: str) -> int:
        info = versions.get(key)
        return info.number if info is not None else 0

    def info_of(key: str) -> VersionInfo:
        return versions.get(key) or VersionInfo(0, {})

    figures: list[VersionPerformance] = []
    if classifier:
        counts: dict[str, dict[tuple[str, str], int]] = defaultdict(dict)
        result = await client.query(confusion_sql(db), parameters=params, settings=QUERY_SETTINGS)
        for row in result.named_results():
            counts[row["version_key"]][(row["predicted"], row["actual"])] = int(row["n"])
        for key, pairs in counts.items():
            n = sum(pairs.values())
            right = sum(c for (predicted, actual), c in pairs.items() if predicted == actual)
            info = info_of(key)
            figures.append(
                VersionPerformance(
                    version=info.number,
                    n=n,
                    accuracy=right / n if n else None,
                    f1=f1_score(pairs, info.classes),
                    test_metrics=info.test_metrics,
                )
            )
    else:
        result = await client.query(errors_sql(db), parameters=params, settings=QUERY_SETTINGS)
        for row in result.named_results():
            info = info_of(row["version_key"])
            figures.append(
                VersionPerformance(
                    version=info.number,
                    n=int(row["n"]),
                    mae=_number(row["mae"]),
                    rmse=_number(row["rmse"]),
                    test_metrics=info.test_metrics,
                )
            )
    figures.sort(key=lambda v: v.version)
    series_rows = await client.query(
        series_sql(db), parameters={**params, "step": step}, settings=QUERY_SETTINGS
    )
    series = [
        PerformancePoint(
            t=row["t"].replace(tzinfo=UTC) if row["t"].tzinfo is None else row["t"],
            version=number_of(row["version_key"]),
            n=int(row["n"]),
            accuracy=_number(row["accuracy"]) if classifier else None,
            mae=None if classifier else _number(row["mae"]),
        )
        for row in series_rows.named_results()
    ]
    reported = next(
        iter(
            (
                await client.query(unmatched_sql(db), parameters=params, settings=QUERY_SETTINGS)
            ).named_results()
        )
    )
    matched = sum(v.n for v in figures)
    return Performance(
        api_id=api_id,
        task="classification" if classifier else "regression",
        range=range_,
        matched=matched,
        unmatched=max(0, int(reported["reported"]) - int(reported["found"])),
        versions=figures,
        series=series,
        bucket_seconds=step,
    )


@dataclass(frozen=True)
class FeedbackFigures:
    """What an ``accuracy_drop`` rule reads of one API over one window."""

    n: int
    accuracy: float | None
    rmse: float | None


async def window_feedback(
    queries: MonitoringQueries,
    api_ids: Sequence[str],
    windows: Sequence[int],
    end: int,
) -> dict[tuple[str, int], FeedbackFigures]:
    """Feedback figures per (api_id, window_s) for the alert engine (``end``: epoch seconds,
    the end of the current minute)."""
    if not api_ids or not windows:
        return {}
    result = await queries.client.query(
        window_feedback_sql(queries.database),
        parameters={
            "api_ids": list(api_ids),
            "windows": sorted(set(windows)),
            "end": end,
            "since": end - 60 - max(windows),
        },
    )
    return {
        (row["api_id"], int(row["w"])): FeedbackFigures(
            int(row["n"]), _number(row["accuracy"]), _number(row["rmse"])
        )
        for row in result.named_results()
    }


async def classifier_apis(session: AsyncSession, api_ids: Sequence[str]) -> set[str]:
    """Which of these APIs serve a classifier (their model's task)."""
    rows = await session.execute(
        select(ExportedApi.id)
        .join(Model, Model.id == ExportedApi.model_id)
        .where(ExportedApi.id.in_(list(api_ids)), Model.task == Task.CLASSIFICATION.value)
    )
    return {api_id for (api_id,) in rows}
