"""Recent ranges (issue 12): the bucket each range gets by default, how many points that makes,
and which source (raw events or a rollup) each bucket is counted from."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from management_api import monitoring_sql as ms
from schemas.monitoring import BUCKET_SECONDS, DEFAULT_BUCKET, RANGE_SECONDS
from schemas.resources import TimeSeriesQuery

NOW = datetime(2026, 3, 14, 15, 9, 26, 535_000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("range_", "bucket", "points"),
    [
        ("15m", "10s", 90),
        ("1h", "30s", 120),
        ("6h", "5m", 72),
        ("24h", "15m", 96),
        ("7d", "hour", 168),
        ("30d", "6h", 120),
    ],
)
def test_each_range_has_a_readable_default_bucket(range_: str, bucket: str, points: int) -> None:
    assert DEFAULT_BUCKET[range_] == bucket
    window = ms.bucket_window(NOW, range_, bucket)
    assert window.buckets == points <= 200
    assert window.start <= NOW < window.end
    assert int(window.start.timestamp()) % BUCKET_SECONDS[bucket] == 0


def test_every_range_has_a_default_and_the_short_ones_are_finer_than_a_minute() -> None:
    assert set(DEFAULT_BUCKET) == set(RANGE_SECONDS)
    assert [r for r in RANGE_SECONDS if ms.is_raw_bucket(DEFAULT_BUCKET[r])] == ["15m", "1h"]
    assert TimeSeriesQuery.model_validate({"range": "15m"}).range == "15m"


def test_raw_buckets_read_the_events_without_shadows_and_rollups_the_minutes() -> None:
    raw = ms.raw_time_series_sql("db", all_apis=False)
    assert "FROM db.request_events" in raw and "NOT shadow" in raw and "WITH FILL" in raw
    assert "countIf(authenticated) AS n" in raw and "countIf(NOT authenticated)" in raw
    assert "NOT shadow" in ms.raw_version_time_series_sql("db")
    assert "request_stats_1m" in ms.time_series_sql("db", "5m", all_apis=True)
    assert "request_stats_1h" in ms.time_series_sql("db", "6h", all_apis=True)
    with pytest.raises(ms.QueryError):
        ms.rollup_for_bucket("10s")  # the rollups are per minute: a 10 s series must go raw


def test_a_raw_series_is_bounded() -> None:
    assert ms.bucket_window(NOW, "6h", "30s").buckets == 720
    with pytest.raises(ms.QueryError, match="at most"):
        ms.bucket_window(NOW, "30d", "10s")
    with pytest.raises(ms.QueryError):
        ms.bucket_window(NOW, "1y", "10s")


def test_short_ranges_read_only_the_minute_rollup() -> None:
    for range_ in ("15m", "1h", "6h"):
        sql = ms.range_stats_sql("db", range_)
        assert "request_stats_1m" in sql and "request_stats_1h" not in sql
        params = ms.range_params(NOW, range_)
        assert params["since"] == params["split"]
        assert int(NOW.timestamp()) - params["since"] < RANGE_SECONDS[range_] + 60
