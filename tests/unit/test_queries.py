"""Shape of the monitoring SQL, the bucket arithmetic and row shaping (no services)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from management_api import monitoring_sql as ms
from management_api import queries as q
from schemas.monitoring import ApiStats, HistogramBucket

NOW = datetime(2026, 3, 4, 12, 34, 56, tzinfo=UTC)


def test_every_value_is_a_server_side_parameter() -> None:
    sql = ms.request_history_sql("modelgate", "4xx")
    assert "{api_id:String}" in sql and "{limit:UInt32}" in sql and "{offset:UInt64}" in sql
    assert "status_code >= 400 AND status_code < 500" in sql
    assert "{api_ids:Array(String)}" in ms.summaries_totals_sql("modelgate")


def test_database_names_are_checked_not_interpolated_blindly() -> None:
    with pytest.raises(ms.QueryError):
        ms.summaries_totals_sql("modelgate; DROP TABLE x")


def test_unknown_range_bucket_or_status_is_refused() -> None:
    with pytest.raises(ms.QueryError):
        ms.range_stats_sql("db", "1y")
    with pytest.raises(ms.QueryError):
        ms.time_series_sql("db", "week", all_apis=False)
    with pytest.raises(ms.QueryError):
        ms.request_history_sql("db", "teapot")


def test_dashboards_read_rollups_and_history_reads_raw_events() -> None:
    assert "request_stats_1m" in ms.range_stats_sql("db", "24h")
    assert "request_stats_1h" in ms.range_stats_sql("db", "30d")
    assert "quantilesTDigestMerge" in ms.time_series_sql("db", "minute", all_apis=False)
    assert "WITH FILL" in ms.time_series_sql("db", "day", all_apis=True)
    assert "request_stats_1h" in ms.time_series_sql("db", "day", all_apis=True)
    assert "FROM db.request_events" in ms.slowest_requests_sql("db")


@pytest.mark.parametrize(
    ("range_", "bucket", "count", "step"),
    [
        ("24h", "minute", 1440, 60),
        ("24h", "hour", 24, 3600),
        ("7d", "day", 7, 86400),
        ("30d", "hour", 720, 3600),
    ],
)
def test_bucket_window_ends_with_the_current_bucket(
    range_: str, bucket: str, count: int, step: int
) -> None:
    window = ms.bucket_window(NOW, range_, bucket)
    assert window.buckets == count and window.step_seconds == step
    assert window.start <= NOW < window.end
    assert window.end - window.start == timedelta(seconds=count * step)
    assert int(window.start.timestamp()) % step == 0


def test_histogram_lists_every_edge_with_inf_last() -> None:
    buckets = q.histogram_buckets({5: 3, 0: 1})
    assert buckets[2] == HistogramBucket(le_ms=5.0, count=3)
    assert buckets[-1] == HistogramBucket(le_ms=None, count=1)
    assert sum(b.count for b in buckets) == 4 and len(buckets) == len(q.HISTOGRAM_EDGES_MS)


def test_empty_digests_become_zero_not_nan() -> None:
    assert q.finite(float("nan")) == 0.0 and q.quantile([], 2) == 0.0
    assert ApiStats(range="24h").model_dump_json()  # no NaN in JSON


def test_recent_windows_start_on_the_minute_and_split_at_the_next_whole_hour() -> None:
    params = ms.recent_window_params(NOW)
    since = int((NOW - timedelta(days=1)).timestamp())
    assert params["since_24h"] == since - since % 60
    assert params["hour_24h"] % 3600 == 0
    assert 0 <= params["hour_24h"] - params["since_24h"] < 3600
    assert params["hour_7d"] - params["since_7d"] < 3600
    assert "request_stats_1d" in ms.overview_totals_sql("db")
    assert "request_stats_1d" in ms.summaries_totals_sql("db")


@pytest.mark.parametrize(("range_", "fine", "coarse"), [("24h", 60, 3600), ("30d", 3600, 86400)])
def test_range_splits_into_whole_coarse_buckets_and_a_fine_edge(
    range_: str, fine: int, coarse: int
) -> None:
    params = ms.range_params(NOW, range_)
    assert params["since"] % fine == 0 and params["split"] % coarse == 0
    assert 0 <= params["split"] - params["since"] < coarse
    sql = ms.range_stats_sql("db", range_)
    assert sql.count("UNION ALL") == 1 and "{split:UInt32}" in sql
